// The llama.cpp engine: batched decoding with a shared prefix (llama_engine.hpp).
#include "llama_engine.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <tuple>
#include <utility>

#include "build_flags.hpp"
#include "llama_log.hpp"
#include "utf8.hpp"

namespace herdsim::llama {

using plugin::fail;

namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

/// A test switch read at creation: set, not empty and not "0".
bool env_flag(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr && value[0] != '\0' && std::strcmp(value, "0") != 0;
}

/// The GGUF check of a model or adapter file; its errors are model errors.
gguf::Info check_gguf(const std::string& path, const char* what) {
  try {
    return gguf::check_file(path, what);
  } catch (const gguf::Error& e) {
    fail(HERDSIM_ERR_MODEL, e.what());
  }
}

}  // namespace

/// One request on its way through generate().
struct Job {
  std::size_t index = 0;  ///< position in the caller's arrays
  std::vector<llama_token> prompt;
  SamplerPtr grammar;        ///< nullptr: unconstrained
  float temperature = 0.0F;  ///< 0: greedy
  std::mt19937_64 rng;       ///< this request's own stream, seeded with its seed
  int max_tokens = 0;
  std::vector<llama_token> generated;
  int cached = 0;
  int forced = 0;                    ///< generated tokens the grammar forced (jump-forward)
  llama_pos pos = 0;                 ///< position of the next token to decode
  llama_seq_id seq = 0;              ///< its sequence (KV stream) in the context
  std::vector<llama_token> pending;  ///< sampled (and then forced), still to be decoded
  std::size_t next = 0;              ///< the next of `pending` to decode (one per step)
  std::uint64_t logits_digest = 14695981039346656037ULL;  ///< FNV-1a of its logits rows (trace only)
  std::size_t same_as = 0;  ///< a duplicate (dedup): the index of the job that decides it
  bool duplicate = false;
  bool done = false;
  int32_t status = HERDSIM_OK;
  std::string error;
  double own_ms = 0.0;  ///< formatting, tokenising, sampler set-up
  double share_ms = 0.0;
};

LlamaEngine::LlamaEngine(Config config) : config_(std::move(config)) {
  try {
    init();
  } catch (...) {
    free_all();  // what a failed create() had loaded
    throw;
  }
}

LlamaEngine::~LlamaEngine() {
  free_all();
}

const std::string& LlamaEngine::describe() {
  const std::lock_guard lock(mutex_);
  json d = json::parse(description_);
  d["generated_tokens"] = generated_tokens_;
  d["forced_tokens"] = forced_tokens_;
  d["deduplicated_requests"] = deduplicated_;
  if (check_masks_) d["grammar_masks_checked"] = masks_->checked();
  if (trace_logits_) d["logits_digests"] = logits_digests_;
  if (gpu_ != nullptr) {
    std::size_t free_bytes = 0;
    std::size_t total_bytes = 0;
    ggml_backend_dev_memory(gpu_, &free_bytes, &total_bytes);
    d["device_memory_used_bytes"] = total_bytes - free_bytes;
  }
  description_checked_ = d.dump();
  return description_checked_;
}

/// Checks the files, loads the model and the adapters, creates the context.
void LlamaEngine::init() {
  init_llama_once();
  take_log_errors();
  const gguf::Info info = check_gguf(config_.model, "model");
  if (info.type == "adapter")
    fail(HERDSIM_ERR_MODEL,
         "model " + config_.model + " is a LoRA adapter, not a model (put it under 'lora')");
  for (const LoraSpec& l : config_.lora) check_gguf(l.path, "LoRA adapter");

  llama_model_params mp = llama_model_default_params();
  mp.n_gpu_layers = 0;
  if (cuda_build) {
    gpu_ = find_gpu();
    // Every layer (and the output) on the one GPU: no split across devices, no CPU layers.
    mp.n_gpu_layers = std::numeric_limits<int32_t>::max();
    mp.split_mode = LLAMA_SPLIT_MODE_NONE;
    mp.devices = gpu_devices_.data();
  }
  // Repacked weight layouts (quantised types) have separate one-token and many-token kernels: off in
  // batch-invariant mode, so that a sequence's logits do not depend on how many tokens share its decode.
  const bool invariant = config_.mode == Mode::batch_invariant;
  mp.use_extra_bufts = !invariant;
  model_ = llama_model_load_from_file(config_.model.c_str(), mp);
  if (model_ == nullptr)
    fail(HERDSIM_ERR_MODEL, "llama.cpp cannot load the model " + config_.model + llama_said());
  vocab_ = llama_model_get_vocab(model_);
  n_vocab_ = llama_vocab_n_tokens(vocab_);
  if (llama_model_has_encoder(model_) || !llama_model_has_decoder(model_) ||
      llama_model_is_recurrent(model_) || llama_model_is_hybrid(model_) || llama_model_is_diffusion(model_))
    fail(HERDSIM_ERR_MODEL, "model " + config_.model + " (" + info.architecture +
                                ") is not a decoder-only transformer, which this backend needs");
  eog_ = llama_vocab_eot(vocab_);
  if (eog_ == LLAMA_TOKEN_NULL) eog_ = llama_vocab_eos(vocab_);
  if (const char* t = llama_model_chat_template(model_, nullptr); t != nullptr) chat_template_ = t;

  for (const LoraSpec& l : config_.lora) {
    llama_adapter_lora* a = llama_adapter_lora_init(model_, l.path.c_str());
    if (a == nullptr)
      fail(HERDSIM_ERR_MODEL,
           "llama.cpp cannot load the LoRA adapter " + l.path + " for model " + config_.model + llama_said());
    adapters_.push_back(a);
    scales_.push_back(l.scale);
  }

  llama_context_params cp = llama_context_default_params();
  // ggml's llamafile GEMM serves matrix products of two or more columns and rounds differently from
  // the one-column kernel that takes the rest, so in batch-invariant mode no decode may hand llama.cpp
  // a one-column product (see generate_chunk): one extra KV stream holds a padding token where needed.
  pad_ = llamafile_build && invariant && !cuda_build;
  // One KV stream per sequence (kv_unified = false): a sequence attends over its own cells only, so
  // its logits do not depend on the others; the context is split evenly, n_ctx per sequence.
  // llama.cpp allows 256 streams (LLAMA_MAX_SEQ): with padding, chunks of at most 255 requests.
  const int n_seq = std::min(config_.batch + (pad_ ? 1 : 0), 256);
  chunk_ = n_seq - (pad_ ? 1 : 0);
  cp.kv_unified = false;
  cp.n_seq_max = static_cast<std::uint32_t>(n_seq);
  cp.n_ctx = static_cast<std::uint32_t>(config_.n_ctx) * static_cast<std::uint32_t>(n_seq);
  n_batch_ = std::max(512, n_seq);
  cp.n_batch = static_cast<std::uint32_t>(n_batch_);
  cp.n_ubatch = static_cast<std::uint32_t>(n_batch_);
  cp.n_threads = config_.threads;
  cp.n_threads_batch = config_.threads;
  cp.no_perf = true;
  // ggml's CPU flash attention has three kernels (one query per stream; queries in tiles; the KV split
  // across threads for a lone sequence), chosen by the shape of each decode: a sequence's attention
  // would round differently with different company. The plain path (Q.K, soft_max, V.softmax, one
  // dot product per element over the KV cells, padded to 256) is the same for any batch.
  // Fast mode keeps llama.cpp's default (flash attention where the device supports it).
  cp.flash_attn_type = invariant ? LLAMA_FLASH_ATTN_TYPE_DISABLED : LLAMA_FLASH_ATTN_TYPE_AUTO;
  ctx_ = llama_init_from_model(model_, cp);
  if (ctx_ == nullptr)
    fail(HERDSIM_ERR_OUT_OF_MEMORY, "llama.cpp cannot create a context of " + std::to_string(config_.batch) +
                                        " x " + std::to_string(config_.n_ctx) + " tokens" + llama_said());
  n_ctx_seq_ = static_cast<int>(llama_n_ctx_seq(ctx_));
  if (!adapters_.empty() &&
      llama_set_adapters_lora(ctx_, adapters_.data(), adapters_.size(), scales_.data()) != 0)
    fail(HERDSIM_ERR_MODEL, "llama.cpp cannot apply the LoRA adapters" + llama_said());
  batch_ = llama_batch_init(n_batch_, 0, 1);
  check_masks_ = env_flag("HERDSIM_LLAMA_CHECK_MASKS");
  trace_logits_ = env_flag("HERDSIM_LLAMA_TRACE_LOGITS");
  masks_ = std::make_unique<GrammarMasks>(vocab_, eog_, check_masks_);
  sampler_ = std::make_unique<Sampler>(n_vocab_, *masks_);
  description_ = describe_json(info);
}

/// The first GPU ggml registered (the CUDA plugin); HERDSIM_ERR_DEVICE when there is none, with
/// what ggml-cuda logged (e.g. "failed to initialize CUDA: no CUDA-capable device is detected").
ggml_backend_dev_t LlamaEngine::find_gpu() {
  std::vector<ggml_backend_dev_t> gpus;
  for (std::size_t i = 0; i < ggml_backend_dev_count(); ++i) {
    ggml_backend_dev_t dev = ggml_backend_dev_get(i);
    if (ggml_backend_dev_type(dev) == GGML_BACKEND_DEVICE_TYPE_GPU) gpus.push_back(dev);
  }
  if (gpus.empty()) fail(HERDSIM_ERR_DEVICE, "no usable CUDA device" + llama_said());
  // config `device` (a rank's local rank under MPI): the ranks of a node take its GPUs in turn.
  ggml_backend_dev_t dev =
      gpus[static_cast<std::size_t>(gpu_index(config_.device, static_cast<int>(gpus.size())))];
  gpu_devices_ = {dev, nullptr};
  return dev;
}

void LlamaEngine::free_all() noexcept {
  if (batch_.token != nullptr) llama_batch_free(batch_);
  batch_ = {};
  if (ctx_ != nullptr) llama_free(ctx_);
  ctx_ = nullptr;
  for (auto* a : adapters_) llama_adapter_lora_free(a);
  adapters_.clear();
  if (model_ != nullptr) llama_model_free(model_);
  model_ = nullptr;
}

void LlamaEngine::generate(std::span<const herdsim_request> requests, std::span<plugin::Answer> answers) {
  const std::lock_guard lock(mutex_);  // one llama_context: one call at a time
  take_log_errors();
  const std::size_t n = requests.size();
  std::vector<Job> jobs(n);
  std::map<std::string, SamplerPtr> grammars;  // parsed once per call, cloned per request
  for (std::size_t i = 0; i < n; ++i) {
    jobs[i].index = i;
    prepare(requests[i], jobs[i], grammars);
  }
  // Identical requests (prompt, grammar, max_tokens, temperature, and the seed when sampling) have the
  // same answer: decided once, copied to the others.
  std::map<std::tuple<std::vector<llama_token>, std::string, int, float, std::uint64_t>, std::size_t> seen;
  std::vector<Job*> ready;
  for (Job& j : jobs) {
    if (j.status != HERDSIM_OK) continue;
    if (config_.dedup) {
      const herdsim_request& r = requests[j.index];
      auto key = std::make_tuple(j.prompt, std::string(r.grammar != nullptr ? r.grammar : ""), j.max_tokens,
                                 j.temperature, j.temperature > 0.0F ? r.seed : std::uint64_t{0});
      const auto [it, fresh] = seen.try_emplace(std::move(key), j.index);
      if (!fresh) {
        j.duplicate = true;
        j.same_as = it->second;
        j.grammar.reset();
        ++deduplicated_;
        continue;
      }
    }
    ready.push_back(&j);
  }
  const auto chunk = static_cast<std::size_t>(chunk_);
  for (std::size_t b = 0; b < ready.size(); b += chunk) {
    const std::vector<Job*> part(
        ready.begin() + static_cast<std::ptrdiff_t>(b),
        ready.begin() + static_cast<std::ptrdiff_t>(std::min(ready.size(), b + chunk)));
    run_chunk(part);
  }
  for (Job& j : jobs) {
    if (!j.duplicate) continue;
    const Job& o = jobs[j.same_as];
    j.status = o.status;
    j.error = o.error;
    j.generated = o.generated;
    j.cached = o.cached;
    j.share_ms = o.share_ms;
  }
  if (trace_logits_) {
    logits_digests_.clear();
    for (const Job& j : jobs)
      logits_digests_.push_back(jobs[j.duplicate ? j.same_as : j.index].logits_digest);
  }
  for (std::size_t i = 0; i < n; ++i) {
    Job& j = jobs[i];
    plugin::Answer& a = answers[i];
    a.status = j.status;
    if (j.status == HERDSIM_OK) a.text = detokenize(j.generated);
    a.error = std::move(j.error);
    a.prompt_tokens = static_cast<int32_t>(j.prompt.size());
    a.cached_tokens = j.cached;
    a.completion_tokens = static_cast<int32_t>(j.generated.size());
    a.time_ms = j.own_ms + j.share_ms;
  }
}

void LlamaEngine::prepare(const herdsim_request& r, Job& j, std::map<std::string, SamplerPtr>& grammars) {
  try {
    prepare_or_throw(r, j, grammars);
  } catch (const plugin::Error& e) {
    j.status = e.status();
    j.error = e.what();
    j.grammar.reset();
  }
}

/// Validates a request, formats and tokenises its prompt, builds its samplers; a problem becomes the
/// request's own status.
void LlamaEngine::prepare_or_throw(const herdsim_request& r, Job& j,
                                   std::map<std::string, SamplerPtr>& grammars) {
  const auto t0 = Clock::now();
  if (r.user == nullptr) fail(HERDSIM_ERR_INVALID_ARGUMENT, "request has no user message (NULL)");
  if (r.max_tokens < 1)
    fail(HERDSIM_ERR_INVALID_ARGUMENT, "max_tokens must be at least 1, got " + std::to_string(r.max_tokens));
  if (!std::isfinite(r.temperature) || r.temperature < 0.0F)
    fail(HERDSIM_ERR_INVALID_ARGUMENT,
         "temperature must be finite and >= 0, got " + std::to_string(r.temperature));
  j.max_tokens = r.max_tokens;
  j.prompt = tokenize(format_prompt(r.system != nullptr ? r.system : "", r.user));
  if (j.prompt.empty()) fail(HERDSIM_ERR_INVALID_ARGUMENT, "the prompt has no tokens");
  const auto need = static_cast<std::int64_t>(j.prompt.size()) + r.max_tokens;
  if (need > n_ctx_seq_)
    fail(HERDSIM_ERR_CONTEXT, "prompt of " + std::to_string(j.prompt.size()) + " tokens + max_tokens " +
                                  std::to_string(r.max_tokens) + " exceed the context of " +
                                  std::to_string(n_ctx_seq_) + " tokens per sequence (config n_ctx)");
  if (r.grammar != nullptr && r.grammar[0] != '\0') {
    auto it = grammars.find(r.grammar);
    if (it == grammars.end()) {
      take_log_errors();
      SamplerPtr g(llama_sampler_init_grammar(vocab_, r.grammar, "root"));
      it = grammars.emplace(r.grammar, std::move(g)).first;
    }
    if (it->second == nullptr) fail(HERDSIM_ERR_GRAMMAR, "the GBNF grammar does not compile" + llama_said());
    j.grammar.reset(llama_sampler_clone(it->second.get()));
  }
  j.temperature = r.temperature;
  j.rng.seed(r.seed);
  j.own_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

std::string LlamaEngine::format_prompt(const char* system, const char* user) const {
  std::vector<llama_chat_message> msgs;
  if (system[0] != '\0') msgs.push_back({"system", system});
  msgs.push_back({"user", user});
  if (chat_template_.empty()) {  // no template in the model: plain text
    return system[0] != '\0' ? std::string(system) + "\n\n" + user : std::string(user);
  }
  std::vector<char> buf(2 * (std::strlen(system) + std::strlen(user)) + 256);
  int32_t len = llama_chat_apply_template(chat_template_.c_str(), msgs.data(), msgs.size(), true, buf.data(),
                                          static_cast<int32_t>(buf.size()));
  if (len > static_cast<int32_t>(buf.size())) {
    buf.resize(static_cast<std::size_t>(len));
    len = llama_chat_apply_template(chat_template_.c_str(), msgs.data(), msgs.size(), true, buf.data(), len);
  }
  if (len < 0) fail(HERDSIM_ERR_MODEL, "llama.cpp does not know the model's chat template");
  return {buf.data(), static_cast<std::size_t>(len)};
}

std::vector<llama_token> LlamaEngine::tokenize(const std::string& text) const {
  if (text.size() > static_cast<std::size_t>(std::numeric_limits<int32_t>::max() / 2))
    fail(HERDSIM_ERR_CONTEXT, "the prompt is too long");
  const auto len = static_cast<int32_t>(text.size());
  std::vector<llama_token> tokens(text.size() + 8);
  int32_t n = llama_tokenize(vocab_, text.data(), len, tokens.data(), static_cast<int32_t>(tokens.size()),
                             true, true);
  if (n < 0) {
    tokens.resize(static_cast<std::size_t>(-n));
    n = llama_tokenize(vocab_, text.data(), len, tokens.data(), -n, true, true);
  }
  if (n < 0) fail(HERDSIM_ERR_INTERNAL, "llama_tokenize failed");
  tokens.resize(static_cast<std::size_t>(n));
  return tokens;
}

std::string LlamaEngine::detokenize(const std::vector<llama_token>& tokens) const {
  if (tokens.empty()) return {};
  std::string text(tokens.size() * 8 + 16, '\0');
  const auto n_tok = static_cast<int32_t>(tokens.size());
  int32_t n = llama_detokenize(vocab_, tokens.data(), n_tok, text.data(), static_cast<int32_t>(text.size()),
                               false, false);
  if (n < 0) {
    text.resize(static_cast<std::size_t>(-n));
    n = llama_detokenize(vocab_, tokens.data(), n_tok, text.data(), -n, false, false);
  }
  if (n < 0) fail(HERDSIM_ERR_INTERNAL, "llama_detokenize failed");
  text.resize(static_cast<std::size_t>(n));
  // Invalid UTF-8 (a generation cut inside a character, stray bytes) becomes U+FFFD.
  std::string valid;
  utf8::append_valid(text, valid);
  return valid;
}

void LlamaEngine::batch_add(llama_token token, llama_pos pos, llama_seq_id seq, bool logits) {
  const auto i = static_cast<std::size_t>(batch_.n_tokens);
  batch_.token[i] = token;
  batch_.pos[i] = pos;
  batch_.n_seq_id[i] = 1;
  batch_.seq_id[i][0] = seq;
  batch_.logits[i] = logits ? 1 : 0;
  ++batch_.n_tokens;
}

/// Decodes batch_ (and empties it); on failure throws plugin::Error for the chunk. With padding on, a
/// batch of one token or with one logits row gets a padding token (with logits) in the empty KV stream
/// `pad_seq`, next to the batch's last sequence id (llama.cpp decodes a run of consecutive ids in one
/// pass), so that no matrix product has one column; the padding cell is removed afterwards.
void LlamaEngine::decode(llama_seq_id pad_seq) {
  int32_t outputs = 0;
  for (int32_t i = 0; i < batch_.n_tokens; ++i) outputs += batch_.logits[i] != 0 ? 1 : 0;
  const bool padded = pad_ && (batch_.n_tokens == 1 || outputs == 1);
  llama_memory_t mem = llama_get_memory(ctx_);
  if (padded) {
    llama_memory_seq_rm(mem, pad_seq, -1, -1);
    batch_add(0, 0, pad_seq, true);
  }
  const int32_t rc = llama_decode(ctx_, batch_);
  const int32_t n_tokens = batch_.n_tokens - (padded ? 1 : 0);
  batch_.n_tokens = 0;
  if (padded) llama_memory_seq_rm(mem, pad_seq, -1, -1);
  if (rc == 0) return;
  const std::string what =
      "llama_decode failed (code " + std::to_string(rc) + ") on " + std::to_string(n_tokens) + " tokens";
  if (rc == 1) fail(HERDSIM_ERR_OUT_OF_MEMORY, what + ": no room in the KV cache" + llama_said());
  fail(HERDSIM_ERR_INTERNAL, what + llama_said());
}

/// Samples job j's next token from the logits of batch row `row` and advances its state.
void LlamaEngine::sample(Job& j, int32_t row) {
  const float* logits = llama_get_logits_ith(ctx_, row);
  if (logits == nullptr) fail(HERDSIM_ERR_INTERNAL, "llama.cpp returned no logits" + llama_said());
  if (trace_logits_) {  // the bits of every row it samples from (tests of batch invariance)
    const auto* bytes = reinterpret_cast<const unsigned char*>(logits);
    for (std::size_t b = 0; b < static_cast<std::size_t>(n_vocab_) * sizeof(float); ++b)
      j.logits_digest = (j.logits_digest ^ bytes[b]) * 1099511628211ULL;
  }
  const std::optional<llama_token> next = j.temperature > 0.0F
                                              ? sampler_->draw(j.grammar.get(), j.temperature, j.rng, logits)
                                              : sampler_->greedy(j.grammar.get(), logits);
  if (!next) {
    j.done = true;
    j.status = HERDSIM_ERR_GRAMMAR;
    j.error = "the grammar admits no further token after " + std::to_string(j.generated.size()) +
              " generated tokens (it cannot be completed with this vocabulary)";
    return;
  }
  const llama_token token = *next;
  if (llama_vocab_is_eog(vocab_, token)) {
    j.done = true;
    return;
  }
  if (j.grammar != nullptr) llama_sampler_accept(j.grammar.get(), token);
  j.generated.push_back(token);
  j.pending.assign(1, token);
  j.next = 0;
  ++generated_tokens_;
  // Jump-forward (greedy requests): while the grammar admits one token only, it is appended without
  // sampling and decoded in the next steps without logits (no output layer). Greedy decoding would have
  // chosen it, so the answer is the same; a draw (temperature > 0) would have used random numbers, so
  // sampling does not.
  while (true) {
    if (static_cast<int>(j.generated.size()) >= j.max_tokens ||
        (j.grammar != nullptr && masks_->finished(j.grammar.get()))) {
      j.done = true;
      return;
    }
    if (!config_.jump_forward || j.grammar == nullptr || j.temperature > 0.0F) return;
    const std::optional<llama_token> forced = masks_->forced(j.grammar.get());
    if (!forced) return;
    llama_sampler_accept(j.grammar.get(), *forced);
    j.generated.push_back(*forced);
    j.pending.push_back(*forced);
    ++j.forced;
    ++generated_tokens_;
    ++forced_tokens_;
  }
}

/// Decodes the prompts of up to `batch` jobs and generates until every one is done.
void LlamaEngine::run_chunk(const std::vector<Job*>& jobs) {
  const auto t0 = Clock::now();
  auto fail_chunk = [&](int32_t status, const std::string& message) {
    for (Job* j : jobs) {
      if (j->status == HERDSIM_OK) {
        j->status = status;
        j->error = message;
        j->generated.clear();
      }
    }
  };
  try {
    generate_chunk(jobs);
  } catch (const plugin::Error& e) {
    fail_chunk(e.status(), e.what());
  } catch (const std::bad_alloc&) {
    fail_chunk(HERDSIM_ERR_OUT_OF_MEMORY, "out of memory while generating");
  } catch (const std::exception& e) {  // llama.cpp reports some failures by exception
    fail_chunk(HERDSIM_ERR_INTERNAL, std::string("llama.cpp failed while generating: ") + e.what());
  }
  // Wall time shared in proportion to the tokens each job had evaluated and generated.
  const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  double work = 0.0;
  for (const Job* j : jobs)
    work += static_cast<double>(j->prompt.size()) - j->cached + static_cast<double>(j->generated.size());
  for (Job* j : jobs) {
    const double w =
        static_cast<double>(j->prompt.size()) - j->cached + static_cast<double>(j->generated.size());
    j->share_ms = work > 0.0 ? ms * w / work : ms / static_cast<double>(jobs.size());
  }
}

/// How many of `rest` tokens the next decode of one sequence takes: at most a batch, and with padding
/// never leaving one token for a decode of its own (a one-column product, see decode()).
int32_t LlamaEngine::chunk_tokens(std::size_t rest) const {
  std::size_t size = std::min(rest, static_cast<std::size_t>(n_batch_));
  if (pad_ && rest - size == 1) --size;
  return static_cast<int32_t>(size);
}

// How a decode is laid out so that a sequence's logits do not depend on its company (batch invariance,
// docs/investagents.md). ggml computes each element of a matrix product in an order that depends only on
// the kernel: the llamafile GEMM for two or more columns, a dot product per element for one. So
//  * every prompt (its tail after the shared prefix) is decoded on its own, in chunks of two or more
//    tokens, with logits for its last two tokens: its weight, attention and output products have two or
//    more columns whatever the batch (a one-token prompt is padded);
//  * generation decodes one token per sequence per step, ids contiguous from 0 (llama.cpp splits a
//    batch over separate KV streams into runs of consecutive ids with the same token count each): a
//    token's attention is always a one-column product over its own stream, and decode() pads a step of
//    one token or one logits row so the weight and output products have two columns.
void LlamaEngine::generate_chunk(const std::vector<Job*>& jobs) {
  llama_memory_t mem = llama_get_memory(ctx_);
  // Metadata only: stale cells hold finite values that attention masks out exactly.
  llama_memory_clear(mem, false);
  batch_.n_tokens = 0;
  const std::size_t n = jobs.size();
  // Tokens every prompt keeps of its own: one (its logits start the generation), two with padding.
  const std::size_t own = pad_ ? 2 : 1;

  // The prefix common to all prompts.
  std::size_t prefix = 0;
  if (config_.prefix_sharing && n > 1) {
    const auto& first = jobs[0]->prompt;
    prefix = first.size() > own ? first.size() - own : 0;
    for (const Job* j : jobs) {
      const auto& p = j->prompt;
      std::size_t m = 0;
      const std::size_t cap = p.size() > own ? std::min(prefix, p.size() - own) : 0;
      while (m < cap && p[m] == first[m]) ++m;
      prefix = m;
    }
    if (prefix < static_cast<std::size_t>(config_.prefix_min_tokens)) prefix = 0;
  }
  if (prefix > 0) {  // decoded once, in sequence 0, then copied to the others' KV streams
    for (std::size_t t = 0; t < prefix;) {
      const int32_t size = chunk_tokens(prefix - t);
      for (int32_t i = 0; i < size; ++i, ++t)
        batch_add(jobs[0]->prompt[t], static_cast<llama_pos>(t), 0, false);
      decode(1);
    }
    for (std::size_t k = 1; k < n; ++k) {
      llama_memory_seq_cp(mem, 0, static_cast<llama_seq_id>(k), -1, -1);
      jobs[k]->cached = static_cast<int>(prefix);
    }
  }

  // The rest of every prompt, one sequence per decode; the job samples from its last token's logits.
  for (std::size_t k = 0; k < n; ++k) {
    Job& j = *jobs[k];
    const auto seq = static_cast<llama_seq_id>(k);
    for (std::size_t t = prefix; t < j.prompt.size();) {
      const int32_t size = chunk_tokens(j.prompt.size() - t);
      const bool final = t + static_cast<std::size_t>(size) == j.prompt.size();
      for (int32_t i = 0; i < size; ++i, ++t) {
        const bool logits = final && t + own >= j.prompt.size();
        batch_add(j.prompt[t], static_cast<llama_pos>(t), seq, logits);
      }
      const int32_t last_row = batch_.n_tokens - 1;
      decode(seq + 1);  // the next stream is still empty: prompts are decoded in order
      if (final) sample(j, last_row);
    }
    j.pos = static_cast<llama_pos>(j.prompt.size());
    j.seq = seq;
  }

  // Generation: one decode per step, one token per unfinished sequence (sampled or forced), with logits
  // where it is the sequence's last pending token.
  std::vector<Job*> active;
  for (Job* j : jobs)
    if (!j->done) active.push_back(j);
  std::vector<std::pair<Job*, int32_t>> rows;  // (job, row in batch_)
  while (!active.empty()) {
    compact(active);
    std::sort(active.begin(), active.end(), [](const Job* a, const Job* b) { return a->seq < b->seq; });
    for (Job* j : active) {
      const bool last = j->next + 1 == j->pending.size();
      if (last) rows.emplace_back(j, batch_.n_tokens);
      batch_add(j->pending[j->next++], j->pos++, j->seq, last);
    }
    decode(static_cast<llama_seq_id>(active.size()));  // compact() left the ids from here free
    for (const auto& [j, row] : rows) sample(*j, row);
    rows.clear();
    std::erase_if(active, [](const Job* j) { return j->done; });
  }
}

/// Keeps the unfinished sequences' ids contiguous from 0: llama.cpp splits a decode over separate KV
/// streams into one micro-batch (one pass over the weights) per run of consecutive sequence ids, so
/// the holes finished answers leave would multiply the cost of every later step. The highest ids
/// move into the holes (one KV stream copy each, exact); an answer does not depend on its sequence id.
void LlamaEngine::compact(std::vector<Job*>& active) {
  const auto m = static_cast<llama_seq_id>(active.size());
  std::vector<bool> used(static_cast<std::size_t>(m), false);
  for (const Job* j : active)
    if (j->seq < m) used[static_cast<std::size_t>(j->seq)] = true;
  llama_memory_t mem = llama_get_memory(ctx_);
  llama_seq_id hole = 0;
  for (Job* j : active) {
    if (j->seq < m) continue;
    while (used[static_cast<std::size_t>(hole)]) ++hole;
    llama_memory_seq_cp(mem, j->seq, hole, -1, -1);
    llama_memory_seq_rm(mem, j->seq, -1, -1);
    used[static_cast<std::size_t>(hole)] = true;
    j->seq = hole;
  }
}

std::string LlamaEngine::describe_json(const gguf::Info& info) const {
  char buf[256];
  json d;
  d["backend"] = cuda_build ? "llama-cuda" : "llama-cpu";
  d["device"] = cuda_build ? "cuda" : "cpu";
  if (gpu_ != nullptr) {
    std::size_t free_bytes = 0;
    std::size_t total_bytes = 0;
    ggml_backend_dev_memory(gpu_, &free_bytes, &total_bytes);
    d["device_name"] = ggml_backend_dev_description(gpu_);
    d["device_id"] = ggml_backend_dev_name(gpu_);
    d["device_memory_total_bytes"] = total_bytes;
    d["device_memory_used_bytes"] = total_bytes - free_bytes;  // by every process, after loading
  }
  d["model"] = config_.model;
  d["architecture"] = info.architecture;
  d["gguf_version"] = info.version;
  if (llama_model_desc(model_, buf, sizeof buf) >= 0) d["model_desc"] = buf;
  if (llama_model_meta_val_str(model_, "general.name", buf, sizeof buf) >= 0) d["model_name"] = buf;
  d["n_params"] = llama_model_n_params(model_);
  d["size_bytes"] = llama_model_size(model_);
  d["n_vocab"] = n_vocab_;
  d["n_layer"] = llama_model_n_layer(model_);
  d["n_embd"] = llama_model_n_embd(model_);
  d["n_ctx_train"] = llama_model_n_ctx_train(model_);
  d["n_ctx"] = n_ctx_seq_;
  d["batch"] = config_.batch;
  d["threads"] = config_.threads;
  d["prefix_sharing"] = config_.prefix_sharing;
  d["prefix_min_tokens"] = config_.prefix_min_tokens;
  d["mode"] = mode_name(config_.mode);
  d["jump_forward"] = config_.jump_forward;
  d["dedup"] = config_.dedup;
  d["chat_template"] = chat_template_.empty() ? "none (plain text)" : "model";
  json lora = json::array();
  for (const LoraSpec& l : config_.lora) lora.push_back({{"path", l.path}, {"scale", l.scale}});
  d["lora"] = lora;
  d["batch_invariant"] = batch_invariant_build && config_.mode == Mode::batch_invariant;
  d["llama_cpp"] = {
      {"version", llama_version()}, {"origin", llama_origin}, {"system_info", llama_print_system_info()}};
  return d.dump();
}

}  // namespace herdsim::llama
