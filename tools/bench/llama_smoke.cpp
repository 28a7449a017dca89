// llama_smoke: the whole llama.cpp chain on a (tiny) GGUF model, through the C API of the pinned
// version (tools/fetch_llama_cpp.sh). Four chat prompts are decoded as four sequences in ONE
// llama_batch, then up to 16 tokens per sequence are generated in batched steps (one llama_decode
// per step for all live sequences): sequences 0 and 1 greedy, 2 seeded sampling, 3 greedy under a
// GBNF grammar ({"x": <digits>}). Each sequence is then run alone and must give the same tokens
// (the batch does not change an answer); then the four again with their common prompt prefix
// decoded once and copied to the other sequences (llama_memory_seq_cp), which must give the same
// tokens too; with --lora, sequence 0 is run once more with an adapter.
//
//   llama_smoke MODEL.gguf [--threads N] [--lora ADAPTER.gguf] [--verbose]
//
// Not part of the build yet: a foundation check for the llama.cpp backend (issue 5).
#include <llama.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

/// Milliseconds since t0.
double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

/// How one sequence samples.
struct SeqConfig {
  const char* prompt;  ///< the user message
  const char* mode;    ///< "greedy", "seeded" or "grammar"
};

// The grammar of the answer: a JSON object with one integer field (GBNF, llama.cpp's grammar format).
constexpr const char* answer_grammar = R"(root ::= "{\"x\": " [0-9]{1,4} "}")";

constexpr int n_predict = 16;         // tokens generated per sequence at most
constexpr uint32_t dist_seed = 1234;  // seed of the sampled sequence

/// The sampler chain of one sequence (its own object: per-sequence state and seed).
llama_sampler* make_sampler(const llama_vocab* vocab, const SeqConfig& cfg) {
  llama_sampler* chain = llama_sampler_chain_init(llama_sampler_chain_default_params());
  if (std::strcmp(cfg.mode, "grammar") == 0) {
    llama_sampler* grammar = llama_sampler_init_grammar(vocab, answer_grammar, "root");
    if (grammar == nullptr) throw std::runtime_error("the grammar does not parse");
    llama_sampler_chain_add(chain, grammar);
    llama_sampler_chain_add(chain, llama_sampler_init_greedy());
  } else if (std::strcmp(cfg.mode, "seeded") == 0) {
    llama_sampler_chain_add(chain, llama_sampler_init_temp(1.0f));
    llama_sampler_chain_add(chain, llama_sampler_init_dist(dist_seed));
  } else {
    llama_sampler_chain_add(chain, llama_sampler_init_greedy());
  }
  return chain;
}

/// The prompt as the model's chat template formats it (raw text when the model has none).
std::string format_chat(const llama_model* model, const char* user) {
  const char* tmpl = llama_model_chat_template(model, nullptr);
  if (tmpl == nullptr) return user;
  const llama_chat_message msg{"user", user};
  std::vector<char> buf(4096);
  int32_t n = llama_chat_apply_template(tmpl, &msg, 1, true, buf.data(), static_cast<int32_t>(buf.size()));
  if (n > static_cast<int32_t>(buf.size())) {
    buf.resize(static_cast<size_t>(n));
    n = llama_chat_apply_template(tmpl, &msg, 1, true, buf.data(), n);
  }
  if (n < 0) throw std::runtime_error("llama_chat_apply_template does not know the model's template");
  return {buf.data(), static_cast<size_t>(n)};
}

std::vector<llama_token> tokenize(const llama_vocab* vocab, const std::string& text) {
  const auto len = static_cast<int32_t>(text.size());
  const int32_t n = -llama_tokenize(vocab, text.c_str(), len, nullptr, 0, true, true);
  std::vector<llama_token> tokens(static_cast<size_t>(n));
  if (llama_tokenize(vocab, text.c_str(), len, tokens.data(), n, true, true) != n) {
    throw std::runtime_error("llama_tokenize failed");
  }
  return tokens;
}

std::string piece(const llama_vocab* vocab, llama_token token) {
  char buf[256];
  const int32_t n = llama_token_to_piece(vocab, token, buf, sizeof buf, 0, false);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
}

/// Whether text is {"x": <1 to 4 digits>}, what answer_grammar allows. (No std::regex: GCC 12 reports
/// false maybe-uninitialized warnings inside it under ASan.)
bool matches_answer(const std::string& text) {
  const std::string head = "{\"x\": ";
  if (text.size() < head.size() + 2 || text.compare(0, head.size(), head) != 0 || text.back() != '}')
    return false;
  const std::string digits = text.substr(head.size(), text.size() - head.size() - 1);
  if (digits.empty() || digits.size() > 4) return false;
  for (char c : digits) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

void batch_add(llama_batch& batch, llama_token token, llama_pos pos, llama_seq_id seq, bool logits) {
  const auto i = static_cast<size_t>(batch.n_tokens);
  batch.token[i] = token;
  batch.pos[i] = pos;
  batch.n_seq_id[i] = 1;
  batch.seq_id[i][0] = seq;
  batch.logits[i] = logits ? 1 : 0;
  ++batch.n_tokens;
}

/// What a run produced for one sequence.
struct SeqResult {
  std::vector<llama_token> tokens;
  std::string text;
};

/// Timings of one run, in milliseconds and tokens.
struct RunStats {
  int n_prompt = 0;
  int n_generated = 0;
  int n_decode_calls = 0;
  int n_prefix = 0;  ///< tokens of the shared prefix (decoded once)
  double prompt_ms = 0;
  double generate_ms = 0;
};

/// Decodes the prompts of `seqs` (indices into `configs`) as separate sequences of one batch, then
/// generates in batched steps. With share_prefix, the prompts' common prefix is decoded once in
/// sequence 0 and copied to the others first. The context's memory is cleared first.
std::vector<SeqResult> run(llama_context* ctx, const llama_vocab* vocab,
                           const std::vector<std::vector<llama_token>>& prompts,
                           const std::vector<SeqConfig>& configs, const std::vector<int>& seqs,
                           RunStats& stats, bool share_prefix = false) {
  llama_memory_t mem = llama_get_memory(ctx);
  llama_memory_clear(mem, true);
  const size_t n = seqs.size();
  std::vector<llama_sampler*> samplers(n);
  std::vector<SeqResult> results(n);
  std::vector<llama_pos> pos(n);
  std::vector<int32_t> out_idx(n);  // where each sequence's logits are in the last batch
  std::vector<bool> live(n, true);

  // The common prefix, leaving every prompt at least one token of its own (its logits are needed).
  size_t n_prefix = 0;
  if (share_prefix && n > 1) {
    const auto& first = prompts[static_cast<size_t>(seqs[0])];
    n_prefix = first.size() - 1;
    for (int s : seqs) {
      const auto& p = prompts[static_cast<size_t>(s)];
      size_t m = 0;
      while (m < n_prefix && m + 1 < p.size() && p[m] == first[m]) ++m;
      n_prefix = m;
    }
  }

  size_t n_prompt = 0;
  for (int s : seqs) n_prompt += prompts[static_cast<size_t>(s)].size();
  llama_batch batch = llama_batch_init(static_cast<int32_t>(std::max(n_prompt, n)), 0, 1);
  auto t0 = Clock::now();

  if (n_prefix > 0) {  // prefix once, in sequence 0, no logits; then shared with the others
    const auto& first = prompts[static_cast<size_t>(seqs[0])];
    for (size_t t = 0; t < n_prefix; ++t) batch_add(batch, first[t], static_cast<llama_pos>(t), 0, false);
    if (llama_decode(ctx, batch) != 0) throw std::runtime_error("llama_decode failed on the prefix");
    ++stats.n_decode_calls;
    for (size_t k = 1; k < n; ++k) llama_memory_seq_cp(mem, 0, static_cast<llama_seq_id>(k), -1, -1);
    batch.n_tokens = 0;
  }

  // The prompts (past the prefix): sequence id = slot in this run; logits only for the last token.
  for (size_t k = 0; k < n; ++k) {
    const auto& p = prompts[static_cast<size_t>(seqs[k])];
    samplers[k] = make_sampler(vocab, configs[static_cast<size_t>(seqs[k])]);
    for (size_t t = n_prefix; t < p.size(); ++t) {
      batch_add(batch, p[t], static_cast<llama_pos>(t), static_cast<llama_seq_id>(k), t + 1 == p.size());
    }
    pos[k] = static_cast<llama_pos>(p.size());
    out_idx[k] = batch.n_tokens - 1;
  }
  if (llama_decode(ctx, batch) != 0) throw std::runtime_error("llama_decode failed on the prompts");
  stats.prompt_ms += ms_since(t0);
  stats.n_prompt += static_cast<int>(n_prompt - (n > 1 ? (n - 1) * n_prefix : 0));
  stats.n_prefix = static_cast<int>(n_prefix);
  ++stats.n_decode_calls;

  t0 = Clock::now();
  for (int step = 0; step < n_predict; ++step) {
    batch.n_tokens = 0;
    for (size_t k = 0; k < n; ++k) {
      if (!live[k]) continue;
      const llama_token tok = llama_sampler_sample(samplers[k], ctx, out_idx[k]);
      if (llama_vocab_is_eog(vocab, tok)) {
        live[k] = false;
        continue;
      }
      results[k].tokens.push_back(tok);
      results[k].text += piece(vocab, tok);
      ++stats.n_generated;
      if (step + 1 == n_predict) continue;  // the last token needs no decode
      out_idx[k] = batch.n_tokens;
      batch_add(batch, tok, pos[k]++, static_cast<llama_seq_id>(k), true);
    }
    if (batch.n_tokens == 0) break;
    if (llama_decode(ctx, batch) != 0) throw std::runtime_error("llama_decode failed while generating");
    ++stats.n_decode_calls;
  }
  stats.generate_ms += ms_since(t0);

  for (auto* s : samplers) llama_sampler_free(s);
  llama_batch_free(batch);
  return results;
}

void quiet_log(ggml_log_level level, const char* text, void* /*user*/) {
  if (level == GGML_LOG_LEVEL_ERROR || level == GGML_LOG_LEVEL_WARN) std::fputs(text, stderr);
}

int smoke(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s MODEL.gguf [--threads N] [--lora ADAPTER.gguf] [--verbose]\n", argv[0]);
    return 2;
  }
  const char* model_path = argv[1];
  const char* lora_path = nullptr;
  int n_threads = 2;
  bool verbose = false;
  for (int i = 2; i < argc; ++i) {
    if (std::strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
      n_threads = std::atoi(argv[++i]);
    } else if (std::strcmp(argv[i], "--lora") == 0 && i + 1 < argc) {
      lora_path = argv[++i];
    } else if (std::strcmp(argv[i], "--verbose") == 0) {
      verbose = true;
    } else {
      std::fprintf(stderr, "unknown argument %s\n", argv[i]);
      return 2;
    }
  }
  if (!verbose) llama_log_set(quiet_log, nullptr);

  llama_backend_init();
  std::printf("llama.cpp %s; %s\n", llama_version(), llama_print_system_info());

  auto t0 = Clock::now();
  llama_model_params mparams = llama_model_default_params();
  mparams.n_gpu_layers = 0;
  llama_model* model = llama_model_load_from_file(model_path, mparams);
  if (model == nullptr) throw std::runtime_error(std::string("cannot load ") + model_path);
  const llama_vocab* vocab = llama_model_get_vocab(model);
  char desc[128];
  llama_model_desc(model, desc, sizeof desc);
  std::printf("model %s: %s, %d layers, n_embd %d, vocab %d, %.1f MB, loaded in %.0f ms\n", model_path, desc,
              llama_model_n_layer(model), llama_model_n_embd(model), llama_vocab_n_tokens(vocab),
              static_cast<double>(llama_model_size(model)) / 1e6, ms_since(t0));

  const std::vector<SeqConfig> configs = {
      {"What fraction of your wealth do you invest in the risky asset?", "greedy"},
      {"The market rose 3% today. Do you buy or sell?", "greedy"},
      {"Describe your investment strategy in one sentence.", "seeded"},
      {"Answer in JSON with a single integer field x.", "grammar"},
  };
  std::vector<std::vector<llama_token>> prompts;
  for (const auto& c : configs) prompts.push_back(tokenize(vocab, format_chat(model, c.prompt)));

  llama_context_params cparams = llama_context_default_params();
  cparams.n_ctx = 2048;
  cparams.n_batch = 512;
  cparams.n_ubatch = 512;
  cparams.n_seq_max = static_cast<uint32_t>(configs.size());
  // One KV stream per sequence: a sequence's attention then runs over its own cells only, so its
  // logits are bitwise the same in any batch. (A unified buffer gives differences up to ~1e-3 in
  // the logits with flash attention, which flip greedy choices of a random model.)
  cparams.kv_unified = false;
  cparams.n_threads = n_threads;
  cparams.n_threads_batch = n_threads;
  cparams.no_perf = false;
  llama_context* ctx = llama_init_from_model(model, cparams);
  if (ctx == nullptr) throw std::runtime_error("llama_init_from_model failed");
  std::printf("context: n_ctx %u, n_seq_max %u, %d threads\n\n", llama_n_ctx(ctx), llama_n_seq_max(ctx),
              n_threads);

  // 1. All four in one batch.
  RunStats batched;
  const auto results = run(ctx, vocab, prompts, configs, {0, 1, 2, 3}, batched);
  for (size_t k = 0; k < results.size(); ++k) {
    std::printf("seq %zu [%s] (%zu prompt tokens) -> %zu tokens: %s\n", k, configs[k].mode, prompts[k].size(),
                results[k].tokens.size(), results[k].text.c_str());
  }
  std::printf(
      "\nbatched: %d prompt tokens in %.1f ms (%.0f tok/s); %d generated in %.1f ms (%.0f tok/s); "
      "%d llama_decode calls\n",
      batched.n_prompt, batched.prompt_ms, 1e3 * batched.n_prompt / batched.prompt_ms, batched.n_generated,
      batched.generate_ms, 1e3 * batched.n_generated / batched.generate_ms, batched.n_decode_calls);

  int failures = 0;
  const bool grammar_ok = matches_answer(results[3].text);
  std::printf("grammar: \"%s\" %s\n", results[3].text.c_str(), grammar_ok ? "matches" : "DOES NOT MATCH");
  failures += grammar_ok ? 0 : 1;

  // 2. Each sequence alone: same tokens as in the batch?
  RunStats alone;
  for (size_t k = 0; k < configs.size(); ++k) {
    const auto single = run(ctx, vocab, prompts, configs, {static_cast<int>(k)}, alone);
    const bool same = single[0].tokens == results[k].tokens;
    std::printf("seq %zu alone: %s\n", k, same ? "same tokens as in the batch" : "DIFFERENT from the batch");
    if (!same) std::printf("  alone: %s\n", single[0].text.c_str());
    failures += same ? 0 : 1;
  }
  std::printf(
      "one by one: %d prompt tokens in %.1f ms; %d generated in %.1f ms (%.0f tok/s); %d llama_decode "
      "calls\n",
      alone.n_prompt, alone.prompt_ms, alone.n_generated, alone.generate_ms,
      1e3 * alone.n_generated / alone.generate_ms, alone.n_decode_calls);

  // 3. The common prefix decoded once, copied to the other sequences.
  RunStats shared;
  const auto prefixed = run(ctx, vocab, prompts, configs, {0, 1, 2, 3}, shared, true);
  bool prefix_same = true;
  for (size_t k = 0; k < configs.size(); ++k)
    prefix_same = prefix_same && prefixed[k].tokens == results[k].tokens;
  std::printf("shared prefix of %d tokens: %d prompt tokens evaluated in %.1f ms; %s\n", shared.n_prefix,
              shared.n_prompt, shared.prompt_ms,
              prefix_same ? "same tokens as without sharing" : "DIFFERENT from without sharing");
  failures += prefix_same ? 0 : 1;

  // 4. A LoRA adapter changes the answer; removing it restores it.
  if (lora_path != nullptr) {
    llama_adapter_lora* adapter = llama_adapter_lora_init(model, lora_path);
    if (adapter == nullptr)
      throw std::runtime_error(std::string("cannot load the LoRA adapter ") + lora_path);
    float scale = 1.0f;
    llama_set_adapters_lora(ctx, &adapter, 1, &scale);
    RunStats with_lora;
    const auto adapted = run(ctx, vocab, prompts, configs, {0}, with_lora);
    llama_set_adapters_lora(ctx, nullptr, 0, nullptr);
    const auto restored = run(ctx, vocab, prompts, configs, {0}, with_lora);
    std::printf("lora: seq 0 with %s -> %s (%s); without it again: %s\n", lora_path, adapted[0].text.c_str(),
                adapted[0].tokens != results[0].tokens ? "changed" : "UNCHANGED",
                restored[0].tokens == results[0].tokens ? "restored" : "NOT RESTORED");
    failures += restored[0].tokens == results[0].tokens ? 0 : 1;
    llama_adapter_lora_free(adapter);
  }

  if (verbose) llama_perf_context_print(ctx);
  llama_free(ctx);
  llama_model_free(model);
  llama_backend_free();
  std::printf("%s\n", failures == 0 ? "smoke: OK" : "smoke: FAILED");
  return failures == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return smoke(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "llama_smoke: %s\n", e.what());
    return 1;
  }
}
