#pragma once
// The llama.cpp engine: batched decoding of many requests as separate sequences of one context, with
// the prompt prefix they share decoded once.
//
// One generate() call decides many agents: their chat-formatted prompts are decoded as separate
// sequences of one llama.cpp context (one KV stream per sequence, kv_unified = false), in chunks of at
// most `batch` sequences; the token prefix common to a chunk's prompts is decoded once and its KV cache
// copied to the other sequences; then one llama_decode per step generates the next token of every
// unfinished sequence. Each request samples with its own random stream (its seed) and its own grammar
// state, and llama.cpp is built and configured batch invariant (no llamafile GEMM, no flash attention,
// no repacked or panel kernels), so an answer is bitwise the same whatever else shares the batch. The
// CUDA build (every layer on the GPU; cuBLAS picks kernels by shape) is repeatable for the same batch
// but not batch invariant, and says so in describe() (docs/gpu.md).
#include <ggml-backend.h>
#include <llama.h>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "gguf_check.hpp"
#include "grammar_masks.hpp"
#include "llama_config.hpp"
#include "plugin_shim.hpp"
#include "sampling.hpp"

namespace herdsim::llama {

struct SamplerFree {
  void operator()(llama_sampler* s) const { llama_sampler_free(s); }
};
/// A llama.cpp sampler (here: a grammar) owned by its user.
using SamplerPtr = std::unique_ptr<llama_sampler, SamplerFree>;

struct Job;

/// The engine of the llama.cpp plugins (CPU and CUDA).
class LlamaEngine final : public plugin::Engine {
 public:
  /// Checks the model and adapter files, loads them and creates the context; throws plugin::Error.
  explicit LlamaEngine(Config config);
  ~LlamaEngine() override;

  /// Decides the requests; per-request problems go into each answer's status.
  void generate(std::span<const herdsim_request> requests, std::span<plugin::Answer> answers) override;

  /// Fixed at creation, plus the count of checked grammar masks when checks are on and the device
  /// memory in use now (CUDA plugin).
  const std::string& describe() override;

 private:
  void init();
  ggml_backend_dev_t find_gpu();
  void free_all() noexcept;

  void prepare(const herdsim_request& r, Job& j, std::map<std::string, SamplerPtr>& grammars);
  void prepare_or_throw(const herdsim_request& r, Job& j, std::map<std::string, SamplerPtr>& grammars);
  [[nodiscard]] std::string format_prompt(const char* system, const char* user) const;
  [[nodiscard]] std::vector<llama_token> tokenize(const std::string& text) const;
  [[nodiscard]] std::string detokenize(const std::vector<llama_token>& tokens) const;
  void batch_add(llama_token token, llama_pos pos, llama_seq_id seq, bool logits);
  void decode(llama_seq_id pad_seq);
  [[nodiscard]] int32_t chunk_tokens(std::size_t rest) const;
  void sample(Job& j, int32_t row);
  void run_chunk(const std::vector<Job*>& jobs);
  void generate_chunk(const std::vector<Job*>& jobs);
  void compact(std::vector<Job*>& active);
  [[nodiscard]] std::string describe_json(const gguf::Info& info) const;

  std::mutex mutex_;
  Config config_;
  llama_model* model_ = nullptr;
  const llama_vocab* vocab_ = nullptr;
  llama_context* ctx_ = nullptr;
  std::vector<llama_adapter_lora*> adapters_;
  std::vector<float> scales_;
  std::string chat_template_;
  llama_token eog_ = LLAMA_TOKEN_NULL;
  int32_t n_vocab_ = 0;
  int n_ctx_seq_ = 0;
  int n_batch_ = 0;
  int chunk_ = 0;     ///< requests decoded together (batch, less the padding stream where llama.cpp's 256
                      ///< streams need it)
  bool pad_ = false;  ///< pads decodes that would hand llama.cpp a one-column product (decode())
  llama_batch batch_{};
  std::unique_ptr<GrammarMasks> masks_;
  std::unique_ptr<Sampler> sampler_;
  ggml_backend_dev_t gpu_ = nullptr;             ///< the CUDA plugin's device
  std::vector<ggml_backend_dev_t> gpu_devices_;  ///< {gpu_, nullptr}: llama_model_params::devices
  bool check_masks_ = false;
  bool trace_logits_ = false;                  ///< HERDSIM_LLAMA_TRACE_LOGITS: digests for describe()
  std::vector<std::uint64_t> logits_digests_;  ///< per request of the last generate(), when tracing
  std::int64_t generated_tokens_ = 0;          ///< since creation, for describe(): the forced share
  std::int64_t forced_tokens_ = 0;
  std::int64_t deduplicated_ = 0;  ///< requests answered by an identical one's decision
  std::string description_;
  std::string description_checked_;
};

}  // namespace herdsim::llama
