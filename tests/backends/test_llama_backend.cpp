// The llama.cpp backend plugin through the real loader (load_plugin) and the real engine, with the
// tiny random-weight Llama and Qwen2 models that tools/make_tiny_gguf.py writes at build time. One
// thread, small batches: the whole file runs in a few minutes on a shared 2-core machine.
//
// The body is the conformance test of every llama.cpp-based plugin: HERDSIM_TEST_BACKEND names another
// one (default "llama", the CPU plugin) built from the same engine, e.g. the CUDA build ("llama_cuda",
// ctest backends_cuda). A GPU plugin's instance prints "SKIPPED: ..." and checks nothing where no CUDA
// device is usable (ctest reports it as skipped); batch invariance is checked only where the plugin
// claims it (describe().batch_invariant), and a GPU plugin's greedy answers are compared with the CPU
// plugin's.
#include <dlfcn.h>
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "backends/backend_test_support.hpp"
#include "backends/llama/llama_config.hpp"
#include "sim/error.hpp"
#include "sim/inference/backend.hpp"
#include "sim/inference/herdsim_inference.h"
#include "sim/investalign/answer.hpp"
#include "sim/investalign/prompt.hpp"
#include "sim/theory/market.hpp"

using herdsim::BackendError;
using herdsim::inference::Backend;
using herdsim::inference::load_plugin;
using herdsim::inference::Request;
using herdsim::inference::Response;
using herdsim::test::contains;
using nlohmann::json;
namespace ia = herdsim::investalign;

namespace {

const std::string models_dir = HERDSIM_TEST_MODELS;
const std::string tmp_dir = HERDSIM_TEST_TMP;

std::string model_path(const std::string& file) {
  return models_dir + "/" + file;
}

/// The plugin under test.
std::string backend_name() {
  const char* env = std::getenv("HERDSIM_TEST_BACKEND");
  return env != nullptr && env[0] != '\0' ? env : "llama";
}

/// Why no CUDA device is usable here ("" when one is), asked of the driver itself (libcuda.so.1:
/// cuInit, cuDeviceGetCount) so that a broken plugin fails rather than skips where a GPU is present.
std::string cuda_device_missing() {
  void* lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) return "no NVIDIA driver (libcuda.so.1 cannot be loaded)";
  using InitFn = int (*)(unsigned);
  using CountFn = int (*)(int*);
  auto* init = reinterpret_cast<InitFn>(dlsym(lib, "cuInit"));
  auto* count = reinterpret_cast<CountFn>(dlsym(lib, "cuDeviceGetCount"));
  if (init == nullptr || count == nullptr) return "libcuda.so.1 lacks cuInit or cuDeviceGetCount";
  if (const int rc = init(0); rc != 0) return "cuInit failed with CUresult " + std::to_string(rc);
  int n = 0;
  if (const int rc = count(&n); rc != 0) return "cuDeviceGetCount failed with CUresult " + std::to_string(rc);
  return n > 0 ? "" : "the driver reports no CUDA device";
}

/// True (after printing why, once) when the plugin under test is a GPU plugin and no device is usable.
bool skip_without_device() {
  if (backend_name() == "llama") return false;
  static const std::string missing = cuda_device_missing();
  static bool said = false;
  if (!missing.empty() && !said) {
    MESSAGE("SKIPPED: " << backend_name() << " conformance needs a CUDA device: " << missing);
    said = true;
  }
  return !missing.empty();
}

/// The engine configuration of the tests: one thread, small contexts; `extra` overrides.
std::string config_for(const std::string& model_file, const json& extra = json::object()) {
  json c = {{"model", model_path(model_file)}, {"threads", 1}, {"n_ctx", 1024}, {"batch", 8}};
  for (const auto& [k, v] : extra.items()) c[k] = v;
  return c.dump();
}

/// Engines are cached by configuration: loading the 150k-token vocabulary takes a while.
Backend& engine(const std::string& model_file, const json& extra = json::object()) {
  static std::map<std::string, std::unique_ptr<Backend>> cache;
  const std::string cfg = config_for(model_file, extra);
  auto it = cache.find(cfg);
  if (it == cache.end()) it = cache.emplace(cfg, load_plugin(backend_name(), cfg)).first;
  return *it->second;
}

/// The message of the BackendError that fn throws ("" when it throws none).
template <typename F>
std::string backend_error(F&& fn) {
  return herdsim::test::message_of<BackendError>(std::forward<F>(fn));
}

std::vector<double> advisor10() {
  return {0.3621, 0.3559, 0.3496, 0.3434, 0.3373, 0.3313, 0.3253, 0.3192, 0.3134, 0.3075};
}

/// Real InvestAlign prompts (absolute task) for n agents with different profiles.
std::vector<ia::Prompt> agent_prompts(int n, const ia::TaskSettings& settings = {}) {
  const ia::PromptTemplate tpl = ia::make_prompt_template(ia::TaskKind::absolute, settings);
  const double probs[] = {0.4, 0.5, 0.6, 0.7, 0.8, 0.9};
  std::vector<ia::Prompt> out;
  for (int i = 0; i < n; ++i) {
    ia::PromptInputs in;
    in.investor.lottery_prob = probs[i % 6];
    in.investor.alpha = herdsim::theory::alpha_from_lottery_prob(in.investor.lottery_prob);
    in.investor.score = i % 11;
    in.investor.theta = herdsim::theory::theta_from_score(in.investor.score);
    in.investor.budget = 5.0 + 5.0 * (i % 3);
    in.advisor = advisor10();
    out.push_back(ia::render_prompt(tpl, in));
  }
  return out;
}

Request request_for(const ia::Prompt& p, int max_tokens, double temperature, std::uint64_t seed,
                    const std::string& grammar) {
  Request r;
  r.system = p.system;
  r.user = p.user();
  r.max_tokens = max_tokens;
  r.temperature = temperature;
  r.seed = seed;
  r.grammar = grammar;
  return r;
}

/// A mix of greedy and seeded (temperature 1) requests, with and without the answer grammar.
std::vector<Request> mixed_requests(int n, int max_tokens) {
  const std::string gbnf = ia::answer_gbnf(ia::answer_schema(ia::TaskKind::absolute, 10));
  const auto prompts = agent_prompts(n);
  std::vector<Request> out;
  for (int i = 0; i < n; ++i) {
    const bool sampled = i % 2 == 1;
    const bool constrained = i % 4 < 2;
    out.push_back(request_for(prompts[static_cast<std::size_t>(i)], max_tokens, sampled ? 1.0 : 0.0,
                              1000 + static_cast<std::uint64_t>(i), constrained ? gbnf : ""));
  }
  return out;
}

/// Runs the requests in the given order (indices) and returns the responses in the original order.
std::vector<Response> run_in_order(Backend& b, const std::vector<Request>& requests,
                                   const std::vector<int>& order) {
  std::vector<Request> permuted;
  for (int i : order) permuted.push_back(requests[static_cast<std::size_t>(i)]);
  const auto got = b.generate(permuted);
  std::vector<Response> out(requests.size());
  for (std::size_t k = 0; k < order.size(); ++k) out[static_cast<std::size_t>(order[k])] = got[k];
  return out;
}

void require_ok(const std::vector<Response>& responses) {
  for (std::size_t i = 0; i < responses.size(); ++i) {
    INFO("request " << i << ": " << responses[i].error);
    REQUIRE(responses[i].ok());
  }
}

void check_same_texts(const std::vector<Response>& a, const std::vector<Response>& b) {
  REQUIRE(a.size() == b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    INFO("request " << i);
    CHECK(a[i].text == b[i].text);
    CHECK(a[i].completion_tokens == b[i].completion_tokens);
    CHECK(a[i].prompt_tokens == b[i].prompt_tokens);
  }
}

/// Whether a sequence's answer is meant not to depend on its batch: always for the CPU plugin (the
/// property it is built for); for another plugin, when its describe() says so.
bool claims_batch_invariance(Backend& b) {
  return backend_name() == "llama" || json::parse(b.describe()).value("batch_invariant", false);
}

/// Writes bytes to a file under the test directory and returns its path.
std::string write_file(const std::string& name, const std::string& bytes) {
  const std::string path = tmp_dir + "/" + name;
  std::ofstream(path, std::ios::binary) << bytes;
  return path;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

}  // namespace

TEST_CASE("llama backend: every InvestAlign answer parses under the grammar (Qwen2, 12 agents)") {
  if (skip_without_device()) return;
  Backend& b = engine("tiny-qwen2.gguf", {{"n_ctx", 1536}, {"batch", 12}});
  const ia::AnswerSchema schema = ia::answer_schema(ia::TaskKind::absolute, 10);
  const std::string gbnf = ia::answer_gbnf(schema);
  const auto prompts = agent_prompts(12);
  std::vector<Request> requests;
  for (std::size_t i = 0; i < prompts.size(); ++i)
    requests.push_back(request_for(prompts[i], 900, i % 2 == 0 ? 0.0 : 1.0, 7 + i, gbnf));
  const auto responses = b.generate(requests);
  require_ok(responses);
  ia::AnswerTally tally;
  for (std::size_t i = 0; i < responses.size(); ++i) {
    const auto parsed = ia::parse_answer(responses[i].text, schema, advisor10());
    INFO("answer " << i << ": " << responses[i].text << "\n" << parsed.message);
    CHECK(parsed.status == ia::AnswerStatus::ok);
    CHECK(responses[i].completion_tokens < 900);  // ended by the grammar, not by max_tokens
    CHECK(responses[i].prompt_tokens > 100);
    CHECK(responses[i].time_ms > 0.0);
    tally.add(parsed);
  }
  CHECK(tally.valid == 12);
  CHECK(tally.invalid == 0);
}

TEST_CASE("llama backend: the grammar masks of the prefix-tree walk equal llama.cpp's full pass") {
  if (skip_without_device()) return;
  // With HERDSIM_LLAMA_CHECK_MASKS set at creation, every mask the plugin builds is compared with
  // llama.cpp's pass over the whole vocabulary; a difference fails the request.
  const ia::AnswerSchema schema = ia::answer_schema(ia::TaskKind::absolute, 10);
  const std::string gbnf = ia::answer_gbnf(schema);
  for (const std::string file : {"tiny-qwen2.gguf", "tiny-llama.gguf"}) {
    INFO(file);
    setenv("HERDSIM_LLAMA_CHECK_MASKS", "1", 1);
    auto b = load_plugin(backend_name(), config_for(file, {{"n_ctx", 1280}, {"batch", 4}}));
    unsetenv("HERDSIM_LLAMA_CHECK_MASKS");
    const auto prompts = agent_prompts(4);
    std::vector<Request> requests;
    for (std::size_t i = 0; i < prompts.size(); ++i)
      requests.push_back(request_for(prompts[i], 700, i % 2 == 0 ? 0.0 : 1.0, 40 + i, gbnf));
    const auto responses = b->generate(requests);
    require_ok(responses);
    for (const auto& r : responses)
      CHECK(ia::parse_answer(r.text, schema, advisor10()).status == ia::AnswerStatus::ok);
    CHECK(json::parse(b->describe()).at("grammar_masks_checked").get<int>() > 20);
  }
}

TEST_CASE(
    "llama backend: an answer does not depend on the batch (greedy and seeded, with and without grammar)") {
  if (skip_without_device()) return;
  const auto requests = mixed_requests(8, 40);
  const std::vector<int> forward{0, 1, 2, 3, 4, 5, 6, 7};
  const std::vector<int> shuffled{5, 2, 7, 0, 3, 6, 1, 4};

  Backend& b8 = engine("tiny-qwen2.gguf");
  if (!claims_batch_invariance(b8)) {
    MESSAGE(backend_name()
            << " does not claim batch invariance (describe().batch_invariant = false): not checked");
    return;
  }
  const auto together = run_in_order(b8, requests, forward);
  require_ok(together);
  for (const auto& r : together) CHECK(r.completion_tokens > 0);

  SUBCASE("one by one") {
    std::vector<Response> alone;
    for (const Request& r : requests) alone.push_back(b8.generate({r}).front());
    require_ok(alone);
    check_same_texts(together, alone);
  }
  SUBCASE("another order") {
    check_same_texts(together, run_in_order(b8, requests, shuffled));
  }
  SUBCASE("batch 3 (chunks of 3, 3, 2)") {
    check_same_texts(together, run_in_order(engine("tiny-qwen2.gguf", {{"batch", 3}}), requests, shuffled));
  }
  SUBCASE("batch 1") {
    check_same_texts(together, run_in_order(engine("tiny-qwen2.gguf", {{"batch", 1}}), requests, forward));
  }
  SUBCASE("two threads") {
    check_same_texts(together, run_in_order(engine("tiny-qwen2.gguf", {{"threads", 2}}), requests, shuffled));
  }
  SUBCASE("repeated requests in one batch") {
    std::vector<Request> twice = requests;
    twice.insert(twice.end(), requests.begin(), requests.end());
    const auto got = engine("tiny-qwen2.gguf", {{"batch", 16}}).generate(twice);
    for (std::size_t i = 0; i < requests.size(); ++i) {
      CHECK(got[i].text == together[i].text);
      CHECK(got[i + requests.size()].text == together[i].text);
    }
  }
}

TEST_CASE("llama backend: a sequence's logits are bitwise the same in any batch, order and thread count") {
  if (skip_without_device()) return;
  if (!claims_batch_invariance(engine("tiny-qwen2.gguf"))) return;  // said by the test above
  // HERDSIM_LLAMA_TRACE_LOGITS at creation: describe() gives, per request of the last call, a digest of
  // the bits of every logits row it sampled from. Prompts of different lengths (tails after the shared
  // prefix of 2 to 100+ tokens), greedy with jump-forward and sampled, with and without the grammar.
  auto requests = mixed_requests(8, 40);
  Request short_one = requests[0];
  short_one.system.clear();
  short_one.user = "Hi";
  requests.push_back(short_one);
  const std::size_t n = requests.size();
  auto digests = [&](const json& extra, const std::vector<int>& order) {
    setenv("HERDSIM_LLAMA_TRACE_LOGITS", "1", 1);
    auto b = load_plugin(backend_name(), config_for("tiny-qwen2.gguf", extra));
    unsetenv("HERDSIM_LLAMA_TRACE_LOGITS");
    std::vector<Request> permuted;
    for (int i : order) permuted.push_back(requests[static_cast<std::size_t>(i)]);
    require_ok(b->generate(permuted));
    const auto got = json::parse(b->describe()).at("logits_digests").get<std::vector<std::uint64_t>>();
    REQUIRE(got.size() == n);
    std::vector<std::uint64_t> out(n);
    for (std::size_t k = 0; k < n; ++k) out[static_cast<std::size_t>(order[k])] = got[k];
    return out;
  };
  const std::vector<int> forward{0, 1, 2, 3, 4, 5, 6, 7, 8};
  const std::vector<int> shuffled{5, 8, 2, 7, 0, 3, 6, 1, 4};
  const auto together = digests({{"batch", 9}}, forward);
  CHECK(std::set<std::uint64_t>(together.begin(), together.end()).size() == n);  // all different
  auto check_same = [&](const std::vector<std::uint64_t>& other) {
    for (std::size_t i = 0; i < n; ++i) {
      INFO("request " << i);
      CHECK(other[i] == together[i]);
    }
  };
  SUBCASE("batch 1") {
    check_same(digests({{"batch", 1}}, forward));
  }
  SUBCASE("batch 2, another order") {
    check_same(digests({{"batch", 2}}, shuffled));
  }
  SUBCASE("batch 4, two threads") {
    check_same(digests({{"batch", 4}, {"threads", 2}}, shuffled));
  }
  SUBCASE("no prefix sharing") {
    check_same(digests({{"batch", 9}, {"prefix_sharing", false}}, forward));
  }
}

TEST_CASE("llama backend: same seed, same answer; different seeds, different answers") {
  if (skip_without_device()) return;
  Backend& b = engine("tiny-qwen2.gguf");
  const auto prompt = agent_prompts(1).front();
  std::vector<Request> requests;
  for (std::uint64_t s = 0; s < 8; ++s) requests.push_back(request_for(prompt, 24, 1.0, s, ""));
  const auto first = b.generate(requests);
  const auto again = b.generate(requests);
  require_ok(first);
  check_same_texts(first, again);
  std::set<std::string> distinct;
  for (const auto& r : first) distinct.insert(r.text);
  CHECK(distinct.size() >= 4);
  // 64-bit seeds that differ only in their upper half are different seeds too.
  std::vector<Request> high = {request_for(prompt, 24, 1.0, 1, ""),
                               request_for(prompt, 24, 1.0, 1ULL << 40U, "")};
  const auto h = b.generate(high);
  CHECK(h[0].text != h[1].text);
  // Greedy ignores the seed.
  std::vector<Request> greedy = {request_for(prompt, 24, 0.0, 1, ""), request_for(prompt, 24, 0.0, 2, "")};
  const auto g = b.generate(greedy);
  CHECK(g[0].text == g[1].text);
}

TEST_CASE("llama backend: prefix sharing gives the same answers and reuses the prefix") {
  if (skip_without_device()) return;
  const auto requests = mixed_requests(6, 32);
  const auto on = engine("tiny-qwen2.gguf", {{"batch", 6}}).generate(requests);
  const auto off = engine("tiny-qwen2.gguf", {{"batch", 6}, {"prefix_sharing", false}}).generate(requests);
  require_ok(on);
  require_ok(off);
  // The prefix decoded once or in each sequence: different shapes, the same numbers only where the
  // plugin is batch invariant.
  if (claims_batch_invariance(engine("tiny-qwen2.gguf", {{"batch", 6}}))) check_same_texts(on, off);
  CHECK(agent_prompts(1).front().user_shared.size() > 500);  // the task description: the bulk of the prompt
  CHECK(on[0].cached_tokens == 0);                           // the first sequence evaluates the prefix
  for (std::size_t i = 1; i < on.size(); ++i) {
    CHECK(on[i].cached_tokens > 100);
    CHECK(on[i].cached_tokens < on[i].prompt_tokens);
    CHECK(on[i].cached_tokens == on[1].cached_tokens);
  }
  for (const auto& r : off) CHECK(r.cached_tokens == 0);
}

/// Complete InvestAlign answers under the grammar, short explanations: greedy and seeded requests.
std::vector<Request> short_answer_requests(int n) {
  ia::AnswerSchema schema = ia::answer_schema(ia::TaskKind::absolute, 10);
  schema.max_explanation_chars = 12;
  const std::string gbnf = ia::answer_gbnf(schema);
  const auto prompts = agent_prompts(n);
  std::vector<Request> out;
  for (int i = 0; i < n; ++i)
    out.push_back(request_for(prompts[static_cast<std::size_t>(i)], 400, i % 4 == 3 ? 1.0 : 0.0,
                              500 + static_cast<std::uint64_t>(i), gbnf));
  return out;
}

std::int64_t described(Backend& b, const char* key) {
  return json::parse(b.describe()).at(key).get<std::int64_t>();
}

TEST_CASE("llama backend: jump-forward gives the answers of token-by-token decoding") {
  if (skip_without_device()) return;
  const auto requests = short_answer_requests(8);
  Backend& on = engine("tiny-qwen2.gguf");
  Backend& off = engine("tiny-qwen2.gguf", {{"jump_forward", false}});
  const std::int64_t forced0 = described(on, "forced_tokens");
  const std::int64_t generated0 = described(on, "generated_tokens");
  const auto a = on.generate(requests);
  const auto b = off.generate(requests);
  require_ok(a);
  require_ok(b);
  const std::int64_t forced = described(on, "forced_tokens") - forced0;
  std::int64_t completion = 0;
  for (const auto& r : a) completion += r.completion_tokens;
  CHECK(described(on, "generated_tokens") - generated0 == completion);
  MESSAGE("jump-forward: " << forced << " of " << completion << " generated tokens forced");
  CHECK(forced > 0);
  CHECK(described(off, "forced_tokens") == 0);
  if (claims_batch_invariance(on)) check_same_texts(a, b);
}

TEST_CASE("llama backend: identical requests are decided once, with the answers of no deduplication") {
  if (skip_without_device()) return;
  const auto requests = mixed_requests(8, 24);
  std::vector<Request> twice = requests;
  twice.insert(twice.end(), requests.begin(), requests.end());
  // Greedy requests that differ only in their seed are identical too; sampled ones are not.
  Request reseeded = requests[0];
  reseeded.seed += 77;
  twice.push_back(reseeded);
  Request resampled = requests[1];
  resampled.seed += 77;
  twice.push_back(resampled);
  Backend& on = engine("tiny-qwen2.gguf", {{"batch", 16}});
  Backend& off = engine("tiny-qwen2.gguf", {{"batch", 16}, {"dedup", false}});
  const std::int64_t dedup0 = described(on, "deduplicated_requests");
  const std::int64_t generated0 = described(on, "generated_tokens");
  const auto a = on.generate(twice);
  const auto b = off.generate(twice);
  require_ok(a);
  require_ok(b);
  CHECK(described(on, "deduplicated_requests") - dedup0 == 9);
  CHECK(described(off, "deduplicated_requests") == 0);
  std::int64_t unique_tokens = 0;  // each unique request generated once
  for (std::size_t i = 0; i < requests.size(); ++i) unique_tokens += a[i].completion_tokens;
  unique_tokens += a.back().completion_tokens;
  CHECK(described(on, "generated_tokens") - generated0 == unique_tokens);
  for (std::size_t i = 0; i < requests.size(); ++i) {
    CHECK(a[i + requests.size()].text == a[i].text);
    CHECK(a[i + requests.size()].completion_tokens == a[i].completion_tokens);
  }
  CHECK(a[a.size() - 2].text == a[0].text);
  if (claims_batch_invariance(on)) check_same_texts(a, b);
}

TEST_CASE("llama backend: fast mode answers validly and repeatably, and says it is not batch invariant") {
  if (skip_without_device()) return;
  Backend& fast = engine("tiny-qwen2.gguf", {{"mode", "fast"}});
  const json d = json::parse(fast.describe());
  CHECK(d.at("mode") == "fast");
  CHECK(d.at("batch_invariant") == false);
  CHECK(json::parse(engine("tiny-qwen2.gguf").describe()).at("mode") == "batch_invariant");
  const ia::AnswerSchema schema = [] {
    ia::AnswerSchema s = ia::answer_schema(ia::TaskKind::absolute, 10);
    s.max_explanation_chars = 12;
    return s;
  }();
  const auto requests = short_answer_requests(8);
  const auto first = fast.generate(requests);
  require_ok(first);
  for (const auto& r : first) {
    INFO(r.text);
    CHECK(ia::parse_answer(r.text, schema, advisor10()).status == ia::AnswerStatus::ok);
  }
  check_same_texts(first, fast.generate(requests));  // the same batch plan: the same answers
}

TEST_CASE("llama backend: a LoRA adapter changes the answers; without it they come back") {
  if (skip_without_device()) return;
  const auto requests = mixed_requests(4, 24);
  const auto base = engine("tiny-qwen2.gguf").generate(requests);
  const auto adapted =
      engine("tiny-qwen2.gguf", {{"lora", {model_path("tiny-qwen2-lora.gguf")}}}).generate(requests);
  const auto scaled =
      engine("tiny-qwen2.gguf", {{"lora", {{{"path", model_path("tiny-qwen2-lora.gguf")}, {"scale", 0.5}}}}})
          .generate(requests);
  require_ok(adapted);
  int changed = 0;
  for (std::size_t i = 0; i < requests.size(); ++i) changed += base[i].text != adapted[i].text ? 1 : 0;
  CHECK(changed >= 2);
  CHECK(scaled[0].text != adapted[0].text);
  // A fresh engine without the adapter (same configuration as the base) restores the answers.
  const auto restored = load_plugin(backend_name(), config_for("tiny-qwen2.gguf"))->generate(requests);
  check_same_texts(base, restored);
  const json d =
      json::parse(engine("tiny-qwen2.gguf", {{"lora", {model_path("tiny-qwen2-lora.gguf")}}}).describe());
  REQUIRE(d.at("lora").size() == 1);
  CHECK(d.at("lora")[0].at("path") == model_path("tiny-qwen2-lora.gguf"));
}

TEST_CASE("llama backend: Llama and Qwen2 architectures both answer under the grammar") {
  if (skip_without_device()) return;
  const ia::AnswerSchema schema = ia::answer_schema(ia::TaskKind::absolute, 10);
  const std::string gbnf = ia::answer_gbnf(schema);
  for (const std::string file : {"tiny-llama.gguf", "tiny-qwen2.gguf"}) {
    INFO(file);
    Backend& b = engine(file, {{"n_ctx", 1536}});
    const json d = json::parse(b.describe());
    CHECK(d.at("architecture") == (file == "tiny-llama.gguf" ? "llama" : "qwen2"));
    if (backend_name() == "llama") CHECK(d.at("device") == "cpu");
    CHECK(d.at("n_params").get<std::int64_t>() > 1000000);
    CHECK(d.at("n_ctx").get<int>() >= 1536);
    CHECK(d.at("threads") == 1);
    CHECK(d.at("batch_invariant") == true);
    CHECK(d.at("llama_cpp").at("version").get<std::string>().size() > 0);
    if (backend_name() == "llama") CHECK(b.name() == "llama-cpu");
    const auto prompts = agent_prompts(3);
    std::vector<Request> requests;
    for (const auto& p : prompts) requests.push_back(request_for(p, 900, 0.0, 0, gbnf));
    const auto responses = b.generate(requests);
    require_ok(responses);
    for (const auto& r : responses) {
      INFO(r.text);
      CHECK(ia::parse_answer(r.text, schema, advisor10()).status == ia::AnswerStatus::ok);
    }
    // Without a grammar the random model writes anything, up to max_tokens.
    const auto free = b.generate({request_for(prompts[0], 16, 0.0, 0, "")});
    require_ok(free);
    CHECK(free[0].completion_tokens > 0);
  }
}

TEST_CASE("llama backend: a bad request fails alone; the others run unchanged") {
  if (skip_without_device()) return;
  Backend& b = engine("tiny-qwen2.gguf");
  const auto good = mixed_requests(3, 24);
  const auto reference = b.generate(good);
  require_ok(reference);

  Request too_long = good[0];
  too_long.user = std::string(6000, 'x') + " " + too_long.user;  // far past n_ctx = 1024
  Request too_many = good[0];
  too_many.max_tokens = 5000;
  Request bad_grammar = good[0];
  bad_grammar.grammar = "root ::= \"unterminated";
  Request no_root = good[0];
  no_root.grammar = "answer ::= \"x\"";
  Request zero_tokens = good[0];
  zero_tokens.max_tokens = 0;
  Request negative_temperature = good[0];
  negative_temperature.temperature = -1.0;

  const std::vector<Request> mixed = {too_long, good[0],     bad_grammar,         good[1], too_many, no_root,
                                      good[2],  zero_tokens, negative_temperature};
  const auto got = b.generate(mixed);
  CHECK(got[0].status == HERDSIM_ERR_CONTEXT);
  CHECK(contains(got[0].error, "exceed the context"));
  CHECK(got[4].status == HERDSIM_ERR_CONTEXT);
  CHECK(got[2].status == HERDSIM_ERR_GRAMMAR);
  CHECK(contains(got[2].error, "grammar"));
  CHECK(got[5].status == HERDSIM_ERR_GRAMMAR);
  CHECK(got[7].status == HERDSIM_ERR_INVALID_ARGUMENT);
  CHECK(contains(got[7].error, "max_tokens"));
  CHECK(got[8].status == HERDSIM_ERR_INVALID_ARGUMENT);
  CHECK(contains(got[8].error, "temperature"));
  for (int i : {0, 2, 4, 5, 7, 8}) CHECK(got[static_cast<std::size_t>(i)].text.empty());
  CHECK(got[1].text == reference[0].text);
  CHECK(got[3].text == reference[1].text);
  CHECK(got[6].text == reference[2].text);
  CHECK(b.generate({}).empty());
}

TEST_CASE("llama backend: bad models, configurations and plugins give clear errors") {
  if (skip_without_device()) return;
  SUBCASE("missing model") {
    const auto msg =
        backend_error([] { (void)load_plugin(backend_name(), R"({"model": "/nonexistent/model.gguf"})"); });
    CHECK(contains(msg, "/nonexistent/model.gguf does not exist"));
    CHECK(contains(msg, "model error"));
  }
  SUBCASE("truncated model") {
    const std::string bytes = read_file(model_path("tiny-qwen2.gguf"));
    REQUIRE(bytes.size() > 1000000);
    auto load = [](const std::string& path) {
      return backend_error([&] { (void)load_plugin(backend_name(), json{{"model", path}}.dump()); });
    };
    const std::string half = write_file("half.gguf", bytes.substr(0, bytes.size() / 2));
    const auto msg = load(half);
    CHECK(contains(msg, "model " + half + " is not a valid GGUF file: truncated or corrupt"));
    // Only the last bytes missing: the header is whole, the last tensor's data is not.
    const auto short_msg = load(write_file("short.gguf", bytes.substr(0, bytes.size() - 16)));
    CHECK(contains(short_msg, "truncated: the data of tensor"));
    CHECK(contains(short_msg, "runs past the end"));
    CHECK(contains(load(write_file("header-only.gguf", bytes.substr(0, 100))), "truncated or corrupt"));
  }
  SUBCASE("a text file named .gguf") {
    const std::string path = write_file("text.gguf", "this is not a model, just some text\n");
    const auto msg = backend_error([&] { (void)load_plugin(backend_name(), json{{"model", path}}.dump()); });
    CHECK(contains(msg, "does not start with the magic \"GGUF\""));
  }
  SUBCASE("unsupported GGUF version") {
    std::string bytes = read_file(model_path("tiny-qwen2.gguf"));
    bytes[4] = 7;  // version field, little endian
    const std::string path = write_file("version7.gguf", bytes);
    CHECK(contains(backend_error([&] {
                     (void)load_plugin(backend_name(), json{{"model", path}}.dump());
                   }),
                   "unsupported GGUF version 7"));
  }
  SUBCASE("an adapter given as the model, a missing or mismatched adapter") {
    CHECK(contains(
        backend_error([] {
          (void)load_plugin(backend_name(), json{{"model", model_path("tiny-qwen2-lora.gguf")}}.dump());
        }),
        "is a LoRA adapter"));
    CHECK(contains(
        backend_error([] {
          (void)load_plugin(backend_name(), config_for("tiny-qwen2.gguf", {{"lora", {"/no/lora.gguf"}}}));
        }),
        "LoRA adapter file /no/lora.gguf does not exist"));
    // An adapter made for the Llama model does not fit the Qwen2 model.
    const auto msg = backend_error([] {
      (void)load_plugin(backend_name(),
                        config_for("tiny-qwen2.gguf", {{"lora", {model_path("tiny-llama-lora.gguf")}}}));
    });
    CHECK(contains(msg, "cannot load the LoRA adapter"));
  }
  SUBCASE("bad configurations") {
    CHECK(
        contains(backend_error([] { (void)load_plugin(backend_name(), "{\"model\": "); }), "not valid JSON"));
    CHECK(contains(backend_error([] { (void)load_plugin(backend_name(), "[1, 2]"); }),
                   "must be a JSON object"));
    CHECK(contains(backend_error([] { (void)load_plugin(backend_name(), "{}"); }),
                   "'model' (path of a GGUF file) is required"));
    CHECK(contains(backend_error([] {
                     (void)load_plugin(backend_name(), config_for("tiny-qwen2.gguf", {{"n_ctxx", 5}}));
                   }),
                   "unknown key 'n_ctxx'"));
    CHECK(contains(backend_error([] {
                     (void)load_plugin(backend_name(), config_for("tiny-qwen2.gguf", {{"batch", 0}}));
                   }),
                   "'batch' must be in [1, 256], got 0"));
    CHECK(contains(backend_error([] {
                     (void)load_plugin(backend_name(), config_for("tiny-qwen2.gguf", {{"threads", "2"}}));
                   }),
                   "'threads' must be an integer"));
    CHECK(
        contains(backend_error([] {
                   (void)load_plugin(backend_name(), config_for("tiny-qwen2.gguf", {{"prefix_sharing", 1}}));
                 }),
                 "'prefix_sharing' must be true or false"));
    CHECK(contains(backend_error([] {
                     (void)load_plugin(backend_name(), config_for("tiny-qwen2.gguf", {{"lora", "x.gguf"}}));
                   }),
                   "'lora' must be a list"));
    CHECK(contains(backend_error([] {
                     (void)load_plugin(backend_name(), config_for("tiny-qwen2.gguf", {{"mode", "quick"}}));
                   }),
                   "'mode' must be \"batch_invariant\" or \"fast\", got \"quick\""));
    CHECK(contains(
        backend_error([] {
          (void)load_plugin(backend_name(), config_for("tiny-qwen2.gguf", {{"jump_forward", "yes"}}));
        }),
        "'jump_forward' must be true or false"));
    CHECK(contains(backend_error([] {
                     (void)load_plugin(backend_name(), config_for("tiny-qwen2.gguf", {{"dedup", 0}}));
                   }),
                   "'dedup' must be true or false"));
    CHECK(contains(backend_error([] {
                     (void)load_plugin(backend_name(), config_for("tiny-qwen2.gguf", {{"device", -1}}));
                   }),
                   "'device' must be in [0, "));
  }
  SUBCASE("a plugin built for another ABI version") {
    const auto msg = backend_error([] { (void)load_plugin(HERDSIM_ABI_MISMATCH_PLUGIN, "{}"); });
    CHECK(contains(msg, "ABI version 999"));
    CHECK(contains(msg, "needs version 1"));
  }
  SUBCASE("a plugin that does not exist") {
    const auto msg = backend_error([] { (void)load_plugin("no-such-backend", "{}"); });
    CHECK(contains(msg, "inference plugin 'no-such-backend' not found"));
    CHECK(contains(msg, "libherdsim_backend_no-such-backend.so"));
  }
  SUBCASE("a file that is not a shared library") {
    const std::string path = write_file("libnot_a_plugin.so", "not an ELF file");
    CHECK(contains(backend_error([&] { (void)load_plugin(path, "{}"); }), "cannot load inference plugin"));
  }
}

TEST_CASE("llama backend: a rank's local rank picks its GPU in turn; the CPU plugin answers alike with it") {
  using herdsim::llama::gpu_index;
  CHECK(gpu_index(-1, 4) == 0);  // not set: the first device, as before MPI
  CHECK(gpu_index(0, 4) == 0);
  CHECK(gpu_index(3, 4) == 3);
  CHECK(gpu_index(5, 4) == 1);  // more ranks than GPUs on a node: they share them in turn
  CHECK(gpu_index(7, 1) == 0);
  static_assert(gpu_index(2, 2) == 0);
  if (backend_name() != std::string("llama")) return;
  // `herdsim run` under MPI passes "device" (the local rank) to the llama plugins; the CPU plugin has no
  // device to pick and answers exactly as without it.
  const std::vector<Request> requests = {request_for(agent_prompts(1).front(), 16, 1.0, 11, "")};
  const auto with = load_plugin("llama", config_for("tiny-qwen2.gguf", {{"device", 3}}))->generate(requests);
  const auto without = engine("tiny-qwen2.gguf").generate(requests);
  REQUIRE(with.size() == 1);
  CHECK(with[0].ok());
  CHECK(with[0].text == without[0].text);
}

TEST_CASE("llama backend: a GPU plugin's greedy answers equal the CPU plugin's (Qwen2 and Llama)") {
  if (skip_without_device()) return;
  if (backend_name() == "llama") return;  // the CPU plugin is the reference itself
  // Tolerance: the answers must be the same text. The tiny models' logits are O(1) apart between the
  // top two tokens far more often than the GPU's rounding (cuBLAS f16/f32 GEMMs, ~1e-3 relative)
  // moves them; a mismatch prints both texts.
  const ia::AnswerSchema schema = ia::answer_schema(ia::TaskKind::absolute, 10);
  const std::string gbnf = ia::answer_gbnf(schema);
  const auto prompts = agent_prompts(8);
  std::vector<Request> requests;
  for (std::size_t i = 0; i < prompts.size(); ++i)
    requests.push_back(request_for(prompts[i], i % 2 == 0 ? 200 : 40, 0.0, 1, i % 2 == 0 ? gbnf : ""));
  for (const std::string file : {"tiny-qwen2.gguf", "tiny-llama.gguf"}) {
    INFO(file);
    const auto cpu = load_plugin("llama", config_for(file))->generate(requests);
    const auto gpu = engine(file).generate(requests);
    require_ok(cpu);
    require_ok(gpu);
    for (std::size_t i = 0; i < requests.size(); ++i) {
      INFO("request " << i << "\nCPU: " << cpu[i].text << "\nGPU: " << gpu[i].text);
      CHECK(gpu[i].text == cpu[i].text);
      if (i % 2 == 0)
        CHECK(ia::parse_answer(gpu[i].text, schema, advisor10()).status == ia::AnswerStatus::ok);
    }
  }
}

TEST_CASE("llama backend: auto uses the CUDA plugin where a device is usable, else the CPU plugin") {
  if (backend_name() != "llama") return;  // a property of the loader, checked once
#ifdef HERDSIM_CUDA_PLUGIN_BUILT
  const bool built = true;  // libherdsim_backend_llama_cuda.so is next to the CPU plugin
#else
  const bool built = false;
#endif
  const std::string missing = built ? cuda_device_missing() : "the CUDA plugin is not built";
  std::vector<std::string> notes;
  auto b = load_plugin("auto", config_for("tiny-qwen2.gguf"),
                       [&](const std::string& line) { notes.push_back(line); });
  REQUIRE(notes.size() == 1);
  INFO("auto said: " << notes.front() << "; device: " << (missing.empty() ? "usable" : missing));
  if (missing.empty()) {
    CHECK(b->name() == "llama-cuda");
    CHECK(contains(notes.front(), "backend auto: using CUDA device "));
    CHECK(json::parse(b->describe()).at("device") == "cuda");
  } else {
    CHECK(b->name() == "llama-cpu");
    CHECK(contains(notes.front(), "backend auto: CUDA unavailable, using the CPU plugin 'llama': "));
    CHECK(json::parse(b->describe()).at("device") == "cpu");
    // Asked for by name, the CUDA plugin is an error that says why.
    const auto msg = backend_error([] { (void)load_plugin("llama_cuda", config_for("tiny-qwen2.gguf")); });
    if (!built) {
      CHECK(contains(notes.front(), "inference plugin 'llama_cuda' not found"));
      CHECK(contains(msg, "inference plugin 'llama_cuda' not found"));
    } else if (contains(missing, "no NVIDIA driver")) {
      CHECK(contains(notes.front(), "libherdsim_backend_llama_cuda.so"));
      CHECK(contains(notes.front(), "the NVIDIA driver is not installed on this machine: no libcuda.so.1"));
      CHECK(contains(msg, "libcuda.so.1"));
    } else {
      CHECK(contains(msg, "device unavailable"));
    }
  }
  const auto r = b->generate({request_for(agent_prompts(1).front(), 8, 0.0, 1, "")});
  require_ok(r);
  CHECK(r.front().completion_tokens > 0);
  // A model error is not a reason to fall back: both plugins would fail, and auto says the real error.
  std::vector<std::string> quiet;
  const auto bad = backend_error([&] {
    (void)load_plugin("auto", R"({"model": "/nonexistent/model.gguf"})",
                      [&](const std::string& line) { quiet.push_back(line); });
  });
  CHECK(contains(bad, "/nonexistent/model.gguf does not exist"));
}
