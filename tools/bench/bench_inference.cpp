// Inference benchmark (issue 5, item 9): InvestAlign decisions per second and tokens per second of the
// llama.cpp backend plugin against the batch size, with and without the shared prompt prefix, the
// answer grammar on. Goes through the real loader (load_plugin) and plugin, like a simulation would.
//
//   bench_inference [--model PATH] [--batches 1,2,4,8,16,32,64] [--decisions N] [--threads N]
//                   [--explanation-chars N] [--max-tokens N] [--temperature T] [--no-grammar]
//                   [--n-ctx N] [--plugin NAME_OR_PATH] [--json FILE] [--baseline EXE]
//                   [--mode batch_invariant|fast] [--prefix both|on|off] [--seeds S]
//                   [--no-jump-forward] [--no-dedup]
//
// Each batch size B decides max(B, --decisions) agents (absolute task, real prompts: the system message
// and task description are shared, the profile differs) in one generate() call on an engine with
// batch = B, once with prefix sharing and once without; every answer is parsed. The default model is
// the tiny Qwen2 test model of the build tree; any GGUF works, e.g. a random Qwen2.5-0.5B-shaped one:
//   /usr/bin/python3 tools/make_tiny_gguf.py /tmp/qwen05.gguf --preset qwen2.5-0.5b
//
// GPU runs (tools/gpu_check.sh, docs/gpu.md): --plugin llama_cuda (or auto). An engine decodes at most
// 256 sequences together (llama.cpp's LLAMA_MAX_SEQ): a batch B > 256 is one generate() call of B
// requests on an engine with batch 256. --json FILE writes the rows (with the device memory in use after
// the run, from describe()); --baseline EXE runs the same prompts, with each answer's number of tokens,
// through plain llama.cpp batched decoding (tools/bench/bench_llama_batched.cpp) and adds its rates and
// the ratio; built with llama.cpp's default options (tools/bench/build_plain_llama.sh) it is the plain
// baseline of docs/benchmarks.md. --mode picks the engine's kernels (docs/investagents.md); --seeds S
// asks each agent S times with seeds 1..S (the evaluation grid x seeds): greedy requests that differ
// only in their seed are identical, decided once by the engine's deduplication (--no-dedup: each one)
// and all S times by the baseline. The forced share is the share of generated tokens that jump-forward
// appended without sampling (--no-jump-forward: none).
#include <fmt/format.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include "sim/inference/backend.hpp"
#include "sim/investalign/answer.hpp"
#include "sim/investalign/prompt.hpp"
#include "sim/theory/market.hpp"

#ifndef HERDSIM_DEFAULT_BENCH_MODEL
#define HERDSIM_DEFAULT_BENCH_MODEL ""
#endif

namespace {

using Clock = std::chrono::steady_clock;
namespace ia = herdsim::investalign;
using herdsim::inference::Request;
using herdsim::inference::Response;

struct Options {
  std::string model = HERDSIM_DEFAULT_BENCH_MODEL;
  std::string plugin = "llama";
  std::vector<int> batches = {1, 2, 4, 8, 16, 32, 64};
  int decisions = 16;  ///< at least this many agents per measurement
  int threads = 1;
  int explanation_chars = ia::default_max_explanation_chars;
  int max_tokens = 1024;
  double temperature = 0.0;
  bool grammar = true;
  int n_ctx = 2048;
  std::string json_out;  ///< --json: rows as JSON
  std::string baseline;  ///< --baseline: the bench_llama_batched executable
  std::string mode = "batch_invariant";
  std::string prefix = "both";
  int seeds = 1;
  bool jump_forward = true;
  bool dedup = true;
};

/// The most sequences one engine decodes together (llama.cpp's LLAMA_MAX_SEQ).
constexpr int max_engine_batch = 256;

[[noreturn]] void usage(const std::string& problem) {
  std::fprintf(
      stderr,
      "bench_inference: %s\nusage: bench_inference [--model PATH] [--batches 1,2,4,...] [--decisions N] "
      "[--threads N] [--explanation-chars N] [--max-tokens N] [--temperature T] [--no-grammar] [--n-ctx N] "
      "[--plugin NAME] [--json FILE] [--baseline EXE] [--mode batch_invariant|fast] [--prefix both|on|off] "
      "[--seeds S] [--no-jump-forward] [--no-dedup]\n",
      problem.c_str());
  std::exit(2);
}

Options parse_options(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage(a + " needs a value");
      return argv[++i];
    };
    auto int_value = [&]() {
      const std::string v = value();
      char* end = nullptr;
      const long x = std::strtol(v.c_str(), &end, 10);
      if (end == v.c_str() || *end != '\0' || x < 0 || x > 1000000) usage(a + ": not a count: " + v);
      return static_cast<int>(x);
    };
    if (a == "--model") {
      o.model = value();
    } else if (a == "--plugin") {
      o.plugin = value();
    } else if (a == "--batches") {
      o.batches.clear();
      std::stringstream ss(value());
      for (std::string item; std::getline(ss, item, ',');) {
        const int b = std::atoi(item.c_str());
        if (b < 1) usage("--batches: bad batch size '" + item + "'");
        o.batches.push_back(b);
      }
    } else if (a == "--decisions") {
      o.decisions = int_value();
    } else if (a == "--threads") {
      o.threads = int_value();
    } else if (a == "--explanation-chars") {
      o.explanation_chars = int_value();
    } else if (a == "--max-tokens") {
      o.max_tokens = int_value();
    } else if (a == "--n-ctx") {
      o.n_ctx = int_value();
    } else if (a == "--temperature") {
      o.temperature = std::atof(value().c_str());
    } else if (a == "--json") {
      o.json_out = value();
    } else if (a == "--baseline") {
      o.baseline = value();
    } else if (a == "--no-grammar") {
      o.grammar = false;
    } else if (a == "--mode") {
      o.mode = value();
      if (o.mode != "batch_invariant" && o.mode != "fast") usage("--mode: batch_invariant or fast");
    } else if (a == "--prefix") {
      o.prefix = value();
      if (o.prefix != "both" && o.prefix != "on" && o.prefix != "off") usage("--prefix: both, on or off");
    } else if (a == "--seeds") {
      o.seeds = std::max(1, int_value());
    } else if (a == "--no-jump-forward") {
      o.jump_forward = false;
    } else if (a == "--no-dedup") {
      o.dedup = false;
    } else if (a == "--help" || a == "-h") {
      usage("help");
    } else {
      usage("unknown argument " + a);
    }
  }
  if (o.model.empty()) usage("no --model given and no default model in this build");
  return o;
}

std::string load_average() {
  std::ifstream in("/proc/loadavg");
  std::string a, b, c;
  in >> a >> b >> c;
  return a + " " + b + " " + c;
}

std::vector<double> advisor10() {
  return {0.3621, 0.3559, 0.3496, 0.3434, 0.3373, 0.3313, 0.3253, 0.3192, 0.3134, 0.3075};
}

/// The agents of the benchmark: the paper's grid of lottery probabilities and scores, budget 10.
std::vector<Request> make_requests(int n, const Options& o, const ia::AnswerSchema& schema) {
  ia::TaskSettings settings;
  settings.max_explanation_chars = o.explanation_chars;
  const ia::PromptTemplate tpl = ia::make_prompt_template(ia::TaskKind::absolute, settings);
  const std::string gbnf = o.grammar ? ia::answer_gbnf(schema) : "";
  const double probs[] = {0.4, 0.5, 0.6, 0.7, 0.8, 0.9};
  std::vector<Request> out;
  for (int i = 0; i < n; ++i) {
    const int agent = i / o.seeds;  // --seeds: each agent asked o.seeds times in a row
    ia::PromptInputs in;
    in.investor.lottery_prob = probs[agent % 6];
    in.investor.alpha = herdsim::theory::alpha_from_lottery_prob(in.investor.lottery_prob);
    in.investor.score = (agent / 6) % 11;
    in.investor.theta = herdsim::theory::theta_from_score(in.investor.score);
    in.investor.budget = 10.0;
    in.advisor = advisor10();
    const ia::Prompt p = ia::render_prompt(tpl, in);
    Request r;
    r.system = p.system;
    r.user = p.user();
    r.max_tokens = o.max_tokens;
    r.temperature = o.temperature;
    r.seed = 1 + static_cast<std::uint64_t>(i % o.seeds);
    r.grammar = gbnf;
    out.push_back(r);
  }
  return out;
}

struct Row {
  int batch = 0;
  bool prefix = false;
  int decisions = 0;
  double seconds = 0.0;
  std::int64_t prompt_tokens = 0;
  std::int64_t evaluated_tokens = 0;  ///< prompt tokens not reused from the shared prefix
  std::int64_t generated_tokens = 0;
  int valid = 0;
  std::int64_t forced_tokens = 0;  ///< generated tokens jump-forward appended (describe())
  std::int64_t engine_generated_tokens = 0;
  std::int64_t device_memory_used_bytes = -1;  ///< GPU plugins: after the run, by every process
  std::string backend;                         ///< the plugin's name()
};

/// Writes the workload of a run for the baseline: one JSON object a line, the request's messages and
/// the number of tokens its answer had.
std::string write_workload(const std::vector<Request>& requests, const std::vector<Response>& responses,
                           int batch) {
  const std::string path = fmt::format("/tmp/bench_inference_workload_{}_{}.jsonl", ::getpid(), batch);
  std::ofstream out(path);
  for (std::size_t i = 0; i < requests.size(); ++i)
    out << nlohmann::json{{"system", requests[i].system},
                          {"user", requests[i].user},
                          {"n_gen", responses[i].completion_tokens}}
               .dump()
        << "\n";
  if (!out) throw std::runtime_error("cannot write " + path);
  return path;
}

/// Runs the baseline executable on a workload file and returns its JSON line.
nlohmann::json run_baseline(const Options& o, const std::string& workload, int parallel) {
  const std::string cmd =
      fmt::format("'{}' --model '{}' --workload '{}' --parallel {} --n-ctx {} --threads {}", o.baseline,
                  o.model, workload, parallel, o.n_ctx, o.threads);
  FILE* pipe = ::popen(cmd.c_str(), "r");
  if (pipe == nullptr) throw std::runtime_error("cannot run " + cmd);
  std::string out;
  char buf[4096];
  while (std::fgets(buf, sizeof buf, pipe) != nullptr) out += buf;
  const int status = ::pclose(pipe);
  std::remove(workload.c_str());
  if (status != 0) throw std::runtime_error("the baseline failed (" + cmd + "): " + out);
  return nlohmann::json::parse(out);
}

/// The requests and responses of the last measure() (the baseline repeats them).
std::vector<Request> last_requests;
std::vector<Response> last_responses;

Row measure(const Options& o, int batch, bool prefix, const ia::AnswerSchema& schema) {
  const nlohmann::json config = {{"model", o.model},
                                 {"batch", std::min(batch, max_engine_batch)},
                                 {"threads", o.threads},
                                 {"n_ctx", o.n_ctx},
                                 {"prefix_sharing", prefix},
                                 {"mode", o.mode},
                                 {"jump_forward", o.jump_forward},
                                 {"dedup", o.dedup}};
  auto backend = herdsim::inference::load_plugin(o.plugin, config.dump());
  const int n = std::max(batch, o.decisions);
  const auto requests = make_requests(n, o, schema);
  (void)backend->generate({requests.front()});  // warm-up: pages the weights in
  const auto before = nlohmann::json::parse(backend->describe());
  const auto t0 = Clock::now();
  const auto responses = backend->generate(requests);
  Row row;
  row.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  row.batch = batch;
  row.prefix = prefix;
  row.decisions = n;
  const auto d = nlohmann::json::parse(backend->describe());
  row.device_memory_used_bytes = d.value("device_memory_used_bytes", std::int64_t{-1});
  row.forced_tokens =
      d.value("forced_tokens", std::int64_t{0}) - before.value("forced_tokens", std::int64_t{0});
  row.engine_generated_tokens =
      d.value("generated_tokens", std::int64_t{0}) - before.value("generated_tokens", std::int64_t{0});
  row.backend = backend->name();
  last_requests = requests;
  last_responses = responses;
  for (const Response& r : responses) {
    if (!r.ok()) throw std::runtime_error("a request failed: " + r.error);
    row.prompt_tokens += r.prompt_tokens;
    row.evaluated_tokens += r.prompt_tokens - r.cached_tokens;
    row.generated_tokens += r.completion_tokens;
    if (ia::parse_answer(r.text, schema, advisor10()).status == ia::AnswerStatus::ok) ++row.valid;
  }
  return row;
}

int run(int argc, char** argv) {
  const Options o = parse_options(argc, argv);
  ia::AnswerSchema schema = ia::answer_schema(ia::TaskKind::absolute, 10);
  schema.max_explanation_chars = o.explanation_chars;
  {
    const nlohmann::json config = {
        {"model", o.model}, {"batch", 1}, {"threads", o.threads}, {"n_ctx", o.n_ctx}};
    const auto backend = herdsim::inference::load_plugin(o.plugin, config.dump());
    const auto d = nlohmann::json::parse(backend->describe());
    fmt::print("model {}: {}, {} parameters, {} layers, n_embd {}, vocab {}\n", o.model,
               d.value("model_desc", "?"), d.value("n_params", std::int64_t{0}), d.value("n_layer", 0),
               d.value("n_embd", 0), d.value("n_vocab", 0));
    fmt::print("llama.cpp {} ({}); {}\n", d["llama_cpp"].value("version", "?"),
               d["llama_cpp"].value("origin", "?"), d["llama_cpp"].value("system_info", "?"));
  }
  fmt::print(
      "{} thread(s), {} hardware threads, load average {}; grammar {}, temperature {}, explanation <= {} "
      "chars, max_tokens {}\nmode {}, jump-forward {}, dedup {}, seeds per agent {}\n\n",
      o.threads, std::thread::hardware_concurrency(), load_average(), o.grammar ? "on" : "off", o.temperature,
      o.explanation_chars, o.max_tokens, o.mode, o.jump_forward ? "on" : "off", o.dedup ? "on" : "off",
      o.seeds);
  fmt::print("{:>5} {:>6} {:>9} {:>8} {:>11} {:>10} {:>12} {:>11} {:>11} {:>7} {:>6}\n", "batch", "prefix",
             "decisions", "wall s", "decisions/s", "gen tok/s", "prompt tok/s", "eval/prompt", "tok/answer",
             "forced", "valid");
  std::map<int, double> with, without;
  nlohmann::json rows = nlohmann::json::array();
  std::string model_name = o.model.substr(o.model.find_last_of('/') + 1);
  if (model_name.size() > 5 && model_name.ends_with(".gguf")) model_name.resize(model_name.size() - 5);
  for (int b : o.batches) {
    for (bool prefix : {true, false}) {
      if ((prefix && o.prefix == "off") || (!prefix && o.prefix == "on")) continue;
      const Row r = measure(o, b, prefix, schema);
      (prefix ? with : without)[b] = r.decisions / r.seconds;
      nlohmann::json row = {{"model_name", model_name},
                            {"backend", r.backend},
                            {"grammar", o.grammar},
                            {"batch", r.batch},
                            {"engine_batch", std::min(r.batch, max_engine_batch)},
                            {"prefix", prefix},
                            {"decisions", r.decisions},
                            {"seconds", r.seconds},
                            {"decisions_per_s", r.decisions / r.seconds},
                            {"generated_tokens_per_s", static_cast<double>(r.generated_tokens) / r.seconds},
                            {"prompt_tokens_per_s", static_cast<double>(r.prompt_tokens) / r.seconds},
                            {"valid", r.valid},
                            {"mode", o.mode},
                            {"jump_forward", o.jump_forward},
                            {"dedup", o.dedup},
                            {"seeds", o.seeds},
                            {"forced_tokens", r.forced_tokens},
                            {"engine_generated_tokens", r.engine_generated_tokens},
                            {"device_memory_used_bytes", r.device_memory_used_bytes}};
      // The baseline once per batch size (it has no prefix sharing), with the first run's answers.
      if (!o.baseline.empty() && prefix == (o.prefix != "off")) {
        row["baseline"] =
            run_baseline(o, write_workload(last_requests, last_responses, b), std::min(b, max_engine_batch));
        fmt::print(
            "      plain llama.cpp batched decoding, same prompts and answer lengths: {:.2f} decisions/s, "
            "{:.1f} gen tok/s; herdsim / plain: {:.2f}x\n",
            row["baseline"].value("decisions_per_s", 0.0),
            row["baseline"].value("generated_tokens_per_s", 0.0),
            r.decisions / r.seconds / row["baseline"].value("decisions_per_s", 1.0));
      }
      rows.push_back(row);
      // The forced share: of the tokens the engine generated (duplicates decided once count once).
      const double forced = r.engine_generated_tokens > 0 ? 100.0 * static_cast<double>(r.forced_tokens) /
                                                                static_cast<double>(r.engine_generated_tokens)
                                                          : 0.0;
      fmt::print(
          "{:>5} {:>6} {:>9} {:>8.2f} {:>11.2f} {:>10.1f} {:>12.1f} {:>11.2f} {:>11.1f} {:>6.1f}% "
          "{:>5.0f}%\n",
          r.batch, prefix ? "on" : "off", r.decisions, r.seconds, r.decisions / r.seconds,
          static_cast<double>(r.generated_tokens) / r.seconds,
          static_cast<double>(r.prompt_tokens) / r.seconds,
          static_cast<double>(r.evaluated_tokens) / static_cast<double>(r.prompt_tokens),
          static_cast<double>(r.generated_tokens) / r.decisions, forced, 100.0 * r.valid / r.decisions);
      std::fflush(stdout);
    }
  }
  if (!o.json_out.empty()) {
    std::ofstream out(o.json_out);
    out << rows.dump(1) << "\n";
    if (!out) throw std::runtime_error("cannot write " + o.json_out);
  }
  if (o.prefix == "both") {
    fmt::print("\nprefix-sharing speedup (decisions/s with / without):");
    for (int b : o.batches) fmt::print(" B={}: {:.2f}x", b, with[b] / without[b]);
  }
  const int first = o.batches.front();
  const int last = o.batches.back();
  const auto& first_rates = o.prefix == "off" ? without : with;
  fmt::print("\nbatching speedup (B={} vs B={}, prefix {}): {:.2f}x\nload average after: {}\n", last, first,
             o.prefix == "off" ? "off" : "on", first_rates.at(last) / first_rates.at(first), load_average());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_inference: %s\n", e.what());
    return 1;
  }
}
