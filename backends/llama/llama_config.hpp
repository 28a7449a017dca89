#pragma once
// The llama.cpp plugin's configuration: the JSON of create() parsed and checked (unknown keys, types
// and ranges are errors naming the key).
#include <string>
#include <vector>

namespace herdsim::llama {

/// A LoRA adapter applied to the model.
struct LoraSpec {
  std::string path;    ///< GGUF adapter file
  float scale = 1.0F;  ///< strength
};

/// How the engine configures llama.cpp's kernels (docs/investagents.md, "Batch-invariant and fast mode").
enum class Mode {
  batch_invariant,  ///< no flash attention, no repacked weights: an answer does not depend on its batch
  fast,  ///< llama.cpp's defaults (flash attention auto, repacked weights): faster, batch dependent
};

/// The mode's name in the configuration and in describe().
const char* mode_name(Mode m);

/// The engine's configuration (docs/investagents.md, "The llama.cpp backend").
struct Config {
  std::string model;  ///< GGUF model file
  std::vector<LoraSpec> lora;
  int n_ctx = 2048;  ///< context per sequence, in tokens
  int batch = 64;    ///< sequences decoded together
  int threads = 1;
  bool prefix_sharing = true;
  int prefix_min_tokens = 16;  ///< shorter common prefixes are not worth a separate decode
  Mode mode = Mode::batch_invariant;
  bool jump_forward = true;  ///< tokens the grammar forces are appended without sampling (greedy requests)
  bool dedup = true;         ///< identical requests of one generate() call are decided once
  /// CUDA build: which of the visible CUDA devices (taken modulo their count: gpu_index); -1: the first.
  /// `herdsim run` under MPI passes the rank's local rank (docs/cluster.md). The CPU build ignores it.
  int device = -1;
};

/// The CUDA device a configuration's `device` selects among `device_count` visible ones (device_count >=
/// 1): device modulo device_count, so that local ranks 0, 1, 2, ... of a node take its GPUs in turn (more
/// ranks than GPUs share them); a negative device (not set) is device 0.
[[nodiscard]] constexpr int gpu_index(int device, int device_count) {
  return device < 0 ? 0 : device % device_count;
}

/// Parses create()'s JSON; throws plugin::Error (HERDSIM_ERR_INVALID_ARGUMENT) naming the key.
Config parse_config(const char* text);

}  // namespace herdsim::llama
