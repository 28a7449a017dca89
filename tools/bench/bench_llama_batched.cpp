// The baseline of bench_inference: the same workload through plain llama.cpp batched decoding (the way
// llama.cpp's own batched example does it), with no herdsim engine in between: the prompts of up to
// --parallel sequences decoded together, then one llama_decode per step for all of them, greedy
// (llama.cpp's greedy sampler), no grammar, no shared-prefix reuse, each sequence generating exactly
// the number of tokens herdsim's answer had. Built against the same llama.cpp as the plugin it is
// compared with (the CUDA build when there is one: every layer on the GPU).
//
//   bench_llama_batched --model PATH --workload FILE [--parallel N] [--n-ctx N] [--threads N]
//
// FILE is JSON Lines, one request a line: {"system": ..., "user": ..., "n_gen": N} (bench_inference
// --baseline writes it). Prints one JSON object: decisions, seconds, decisions_per_s,
// generated_tokens_per_s, prompt_tokens_per_s, device.
#include <ggml-backend.h>
#include <llama.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

struct Options {
  std::string model;
  std::string workload;
  int parallel = 256;
  int n_ctx = 2048;
  int threads = 1;
};

struct Sequence {
  std::vector<llama_token> prompt;
  int n_gen = 0;
  int generated = 0;
  llama_pos pos = 0;
  int row = -1;  ///< row of its logits in the last decode
};

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) throw std::runtime_error("missing value after " + a);
    const std::string v = argv[++i];
    if (a == "--model") {
      o.model = v;
    } else if (a == "--workload") {
      o.workload = v;
    } else if (a == "--parallel") {
      o.parallel = std::stoi(v);
    } else if (a == "--n-ctx") {
      o.n_ctx = std::stoi(v);
    } else if (a == "--threads") {
      o.threads = std::stoi(v);
    } else {
      throw std::runtime_error("unknown option " + a);
    }
  }
  if (o.model.empty() || o.workload.empty()) throw std::runtime_error("--model and --workload are required");
  if (o.parallel < 1 || o.parallel > 256) throw std::runtime_error("--parallel must be in [1, 256]");
  return o;
}

std::vector<llama_token> tokenize(const llama_vocab* vocab, const std::string& text) {
  const auto len = static_cast<int32_t>(text.size());
  int32_t n = -llama_tokenize(vocab, text.c_str(), len, nullptr, 0, true, true);
  std::vector<llama_token> out(static_cast<std::size_t>(n));
  n = llama_tokenize(vocab, text.c_str(), len, out.data(), n, true, true);
  if (n < 0) throw std::runtime_error("tokenization failed");
  out.resize(static_cast<std::size_t>(n));
  return out;
}

std::string format_chat(const llama_model* model, const std::string& system, const std::string& user) {
  const char* tmpl = llama_model_chat_template(model, nullptr);
  if (tmpl == nullptr) return system + "\n\n" + user;
  const llama_chat_message msgs[2] = {{"system", system.c_str()}, {"user", user.c_str()}};
  std::vector<char> buf(system.size() + user.size() + 1024);
  int32_t n = llama_chat_apply_template(tmpl, msgs, 2, true, buf.data(), static_cast<int32_t>(buf.size()));
  if (n > static_cast<int32_t>(buf.size())) {
    buf.resize(static_cast<std::size_t>(n));
    n = llama_chat_apply_template(tmpl, msgs, 2, true, buf.data(), static_cast<int32_t>(buf.size()));
  }
  if (n < 0) throw std::runtime_error("llama_chat_apply_template failed");
  return {buf.data(), static_cast<std::size_t>(n)};
}

void decode(llama_context* ctx, llama_batch& batch) {
  if (llama_decode(ctx, batch) != 0) throw std::runtime_error("llama_decode failed");
}

int run(int argc, char** argv) {
  const Options o = parse(argc, argv);
  llama_log_set([](ggml_log_level, const char*, void*) {}, nullptr);
  llama_backend_init();
  llama_model_params mp = llama_model_default_params();
  mp.n_gpu_layers = std::numeric_limits<int32_t>::max();  // all on the GPU where there is one
  llama_model* model = llama_model_load_from_file(o.model.c_str(), mp);
  if (model == nullptr) throw std::runtime_error("cannot load " + o.model);
  const llama_vocab* vocab = llama_model_get_vocab(model);

  std::vector<Sequence> seqs;
  std::ifstream in(o.workload);
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    const json j = json::parse(line);
    Sequence s;
    s.prompt = tokenize(vocab, format_chat(model, j.at("system"), j.at("user")));
    s.n_gen = j.at("n_gen").get<int>();
    seqs.push_back(std::move(s));
  }
  if (seqs.empty()) throw std::runtime_error("empty workload " + o.workload);

  const auto n_seq = static_cast<std::uint32_t>(std::min<std::size_t>(seqs.size(), o.parallel));
  llama_context_params cp = llama_context_default_params();
  cp.n_seq_max = n_seq;
  cp.n_ctx = static_cast<std::uint32_t>(o.n_ctx) * n_seq;
  cp.n_batch = std::max<std::uint32_t>(512, n_seq);
  cp.n_ubatch = cp.n_batch;
  cp.n_threads = o.threads;
  cp.n_threads_batch = o.threads;
  cp.no_perf = true;
  llama_context* ctx = llama_init_from_model(model, cp);
  if (ctx == nullptr) throw std::runtime_error("cannot create a context");
  llama_sampler* greedy = llama_sampler_init_greedy();
  const auto n_batch = static_cast<int32_t>(cp.n_batch);
  llama_batch batch = llama_batch_init(n_batch, 0, 1);
  auto add = [&](llama_token t, llama_pos pos, llama_seq_id seq, bool logits) {
    const int32_t k = batch.n_tokens++;
    batch.token[k] = t;
    batch.pos[k] = pos;
    batch.n_seq_id[k] = 1;
    batch.seq_id[k][0] = seq;
    batch.logits[k] = logits ? 1 : 0;
  };

  std::int64_t prompt_tokens = 0;
  std::int64_t generated = 0;
  const auto t0 = Clock::now();
  for (std::size_t first = 0; first < seqs.size(); first += n_seq) {
    const std::size_t last = std::min(seqs.size(), first + n_seq);
    llama_memory_clear(llama_get_memory(ctx), true);
    // Prompts: packed into batches of n_batch tokens; the last token of each asks for logits, and a
    // sequence samples its first token right after the decode that holds that row.
    batch.n_tokens = 0;
    auto flush = [&] {
      if (batch.n_tokens == 0) return;
      decode(ctx, batch);
      for (std::size_t k = first; k < last; ++k) {
        Sequence& q = seqs[k];
        if (q.row < 0) continue;
        if (q.n_gen > 0) {
          q.prompt.push_back(llama_sampler_sample(greedy, ctx, q.row));  // pending, decoded below
          q.generated = 1;
        }
        q.row = -1;
      }
      batch.n_tokens = 0;
    };
    for (std::size_t i = first; i < last; ++i) {
      Sequence& s = seqs[i];
      prompt_tokens += static_cast<std::int64_t>(s.prompt.size());
      for (std::size_t t = 0; t < s.prompt.size(); ++t) {
        if (batch.n_tokens == n_batch) flush();
        const bool is_last = t + 1 == s.prompt.size();
        if (is_last) s.row = batch.n_tokens;
        add(s.prompt[t], s.pos++, static_cast<llama_seq_id>(i - first), is_last);
      }
    }
    flush();
    // Generation: one decode per step for every sequence that still has tokens to produce.
    for (;;) {
      batch.n_tokens = 0;
      for (std::size_t k = first; k < last; ++k) {
        Sequence& q = seqs[k];
        if (q.generated == 0 || q.generated >= q.n_gen) continue;
        q.row = batch.n_tokens;
        add(q.prompt.back(), q.pos++, static_cast<llama_seq_id>(k - first), true);
      }
      if (batch.n_tokens == 0) break;
      decode(ctx, batch);
      for (std::size_t k = first; k < last; ++k) {
        Sequence& q = seqs[k];
        if (q.row < 0) continue;
        q.prompt.push_back(llama_sampler_sample(greedy, ctx, q.row));
        ++q.generated;
        q.row = -1;
      }
    }
    for (std::size_t k = first; k < last; ++k) generated += seqs[k].generated;
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();

  std::string device = "cpu";
  for (std::size_t i = 0; i < ggml_backend_dev_count(); ++i) {
    ggml_backend_dev_t dev = ggml_backend_dev_get(i);
    if (ggml_backend_dev_type(dev) == GGML_BACKEND_DEVICE_TYPE_GPU) {
      device = ggml_backend_dev_description(dev);
      break;
    }
  }
  const auto n = static_cast<double>(seqs.size());
  const json out = {{"decisions", seqs.size()},
                    {"seconds", seconds},
                    {"decisions_per_s", n / seconds},
                    {"generated_tokens", generated},
                    {"generated_tokens_per_s", static_cast<double>(generated) / seconds},
                    {"prompt_tokens_per_s", static_cast<double>(prompt_tokens) / seconds},
                    {"parallel", n_seq},
                    {"device", device}};
  std::printf("%s\n", out.dump().c_str());
  llama_batch_free(batch);
  llama_sampler_free(greedy);
  llama_free(ctx);
  llama_model_free(model);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_llama_batched: %s\n", e.what());
    return 1;
  }
}
