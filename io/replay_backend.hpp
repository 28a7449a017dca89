#pragma once
// The `replay` inference backend: answers each request with the output recorded in a run file's
// transcripts (docs/hdf5-schema.md), matched by (prompt hash, seed) — order and batch independent, no
// model needed. A run replayed from its own file reproduces it bit for bit: the recorded text parses to
// the same values, and the recorded token counts and times are returned with it.
#include <cstdint>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "sim/inference/backend.hpp"

namespace herdsim::io {

struct Transcripts;

class ReplayBackend final : public inference::Backend {
 public:
  /// Reads every transcript of the run file at `path` (complete files only), or only those of run group
  /// `group` and/or population `population` when they are not empty. Throws IoError for an unreadable
  /// file and BackendError when nothing matches the filter.
  explicit ReplayBackend(const std::string& path, const std::string& group = "",
                         const std::string& population = "");
  /// Answers from transcripts already read (what the file constructor does once it has read them); `source`
  /// names them in messages. Throws BackendError when there are none.
  ReplayBackend(const std::string& source, const std::vector<Transcripts>& transcripts);

  /// The recorded answers; throws BackendError naming the first request (prompt hash, seed) that the file
  /// does not hold, or holds with two different outputs.
  [[nodiscard]] std::vector<inference::Response> generate(
      const std::vector<inference::Request>& requests) override;
  [[nodiscard]] std::string name() const override { return "replay"; }
  /// {"backend": "replay", "file": ..., "group": ..., "population": ..., "answers": N, "recorded_backends":
  /// [...]}.
  [[nodiscard]] std::string describe() const override;
  /// Distinct (prompt hash, seed) keys held.
  [[nodiscard]] std::size_t size() const { return answers_.size(); }

  /// The prompt hash of a request: investalign::Prompt::hash() of the prompt it was made from.
  [[nodiscard]] static std::uint64_t prompt_hash(const inference::Request& request);

 private:
  struct Answer {
    std::string text;
    int prompt_tokens = 0;
    int cached_tokens = 0;
    int completion_tokens = 0;
    double time_ms = 0.0;
    bool ambiguous = false;  ///< recorded twice with different outputs
  };
  void add(const Transcripts& t);
  struct KeyHash {
    std::size_t operator()(const std::pair<std::uint64_t, std::uint64_t>& k) const {
      return static_cast<std::size_t>(k.first ^ (k.second * 0x9E3779B97F4A7C15ULL));
    }
  };
  std::string path_, group_, population_;
  std::vector<std::string> recorded_backends_;
  std::unordered_map<std::pair<std::uint64_t, std::uint64_t>, Answer, KeyHash> answers_;
};

/// The backend factory of `herdsim run`: "replay" reads a run file (ReplayBackend); "reference" is a
/// reference answerer (investalign::ReferenceBackend, spec.answerer); anything else is a
/// plugin name or path loaded with inference::load_plugin and configured from the spec (model, lora,
/// threads, batch, prefix_sharing as JSON).
/// With `decision_cache` (a folder), plugin backends answer through a CachedBackend (io/decision_cache.hpp).
/// `gpu_slot` >= 0 (a rank's local rank under MPI, docs/cluster.md): the llama.cpp plugins ("llama",
/// "llama_cuda", "auto") are told to use CUDA device gpu_slot modulo the devices they see (the CPU plugin
/// ignores it); -1: the plugin's own choice, the first device.
[[nodiscard]] inference::BackendFactory default_backend_factory(const std::string& decision_cache = {},
                                                                int gpu_slot = -1);

/// The JSON configuration a plugin receives for an inference spec (with `gpu_slot` >= 0, for the llama.cpp
/// plugins: "device": gpu_slot).
[[nodiscard]] std::string plugin_config_json(const sim::InferenceSpec& spec, int gpu_slot = -1);

}  // namespace herdsim::io
