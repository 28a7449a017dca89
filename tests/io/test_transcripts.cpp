#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "agents/investagent_agent.hpp"
#include "agents/merton_agent.hpp"
#include "agents/registry.hpp"
#include "io/hdf5_output.hpp"
#include "io/replay_backend.hpp"
#include "io/run_file.hpp"
#include "sim/error.hpp"
#include "sim/investalign/answer.hpp"
#include "sim/investalign/prompt.hpp"
#include "sim/simulation.hpp"

using namespace herdsim;
namespace fs = std::filesystem;

namespace {

/// Answers from the seed alone; every third request gets a text that does not parse; reports tokens
/// and a time that a replay must reproduce.
class SeedBackend final : public inference::Backend {
 public:
  explicit SeedBackend(std::vector<std::pair<inference::Request, std::string>>* seen = nullptr)
      : seen_(seen) {}
  std::vector<inference::Response> generate(const std::vector<inference::Request>& requests) override {
    std::vector<inference::Response> out;
    for (const auto& r : requests) {
      inference::Response resp;
      const double pct = static_cast<double>(r.seed % 10001) / 100.0;
      if (r.seed % 3 == 0) {
        resp.text = "no idea \xc3\xa9";  // UTF-8 kept as is
      } else if (r.user.find(investalign::key_proportion_sequence) != std::string::npos) {
        std::vector<double> v(3, pct / 100.0);
        resp.text = investalign::format_answer(investalign::proportion_sequence_schema(3), "plan", v);
      } else {
        resp.text = investalign::format_answer(investalign::single_proportion_schema(), "step",
                                               std::vector<double>{pct / 100.0});
      }
      resp.prompt_tokens = static_cast<int>(r.user.size());
      resp.cached_tokens = 3;
      resp.completion_tokens = static_cast<int>(resp.text.size());
      resp.time_ms = 0.25 + static_cast<double>(r.seed % 7);
      if (seen_ != nullptr) seen_->emplace_back(r, resp.text);
      out.push_back(resp);
    }
    return out;
  }
  [[nodiscard]] std::string name() const override { return "seeded"; }
  [[nodiscard]] std::string describe() const override { return R"({"backend":"seeded"})"; }

 private:
  std::vector<std::pair<inference::Request, std::string>>* seen_;
};

sim::ScenarioSpec spec_of(agents::InvestProtocol protocol) {
  sim::ScenarioSpec s;
  s.run.seed = 5;
  s.run.paths = 2;
  s.run.horizon = 3;
  agents::MertonParams advisor;
  advisor.alpha.value = 0.2;
  sim::ParamSpec wealth;
  wealth.value = 10.0;
  s.populations.push_back(agents::population_spec("advisor", 1, advisor, wealth));
  agents::InvestAgentParams p;
  p.leader = "advisor";
  p.protocol = protocol;
  p.alpha.value = 0.5;
  p.theta.value = 1e-8;
  p.inference.backend = "seeded";
  p.inference.batch = 2;
  s.populations.push_back(agents::population_spec("llm", 3, p, wealth));
  s.record.max_agents = 2;  // transcripts are written for every agent regardless
  return s;
}

std::string tmp(const std::string& name) {
  return (fs::path(HERDSIM_TEST_TMP) / name).string();
}

void run_to(const sim::ScenarioSpec& spec, const inference::BackendFactory& backends,
            const std::string& path) {
  fs::remove(path);
  io::Hdf5Output file(path, {"test", spec.run.seed, "scenario", "test"});
  auto simulation = agents::make_simulation(spec, backends);
  auto recorder = file.recorder("/", sim::RecordingPlan(spec.record, simulation->state()));
  simulation->add_observer(recorder.get());
  sim::RunOptions options;
  options.threads = 1;
  simulation->run(options);
  file.commit();
}

void check_same_run(const std::string& a_path, const std::string& b_path) {
  const io::RunFile a(a_path);
  const io::RunFile b(b_path);
  const auto ga = a.group("/");
  const auto gb = b.group("/");
  for (const char* pop : {"advisor", "llm"}) {
    for (const char* ds : {"wealth", "amount"}) {
      const auto rows = std::string(ds) == "wealth" ? ga.wealth_steps.size() : ga.decision_steps.size();
      Eigen::MatrixXd ra, rb;
      for (std::size_t r = 0; r < rows; ++r) {
        a.read_row("/", pop, ds, static_cast<int>(r), ra);
        b.read_row("/", pop, ds, static_cast<int>(r), rb);
        CHECK(ra == rb);
      }
    }
  }
  const io::Transcripts ta = a.transcripts("/", "llm");
  const io::Transcripts tb = b.transcripts("/", "llm");
  CHECK(ta.output == tb.output);
  CHECK(ta.seed == tb.seed);
  CHECK(ta.prompt_hash == tb.prompt_hash);
  CHECK(ta.valid == tb.valid);
  CHECK(ta.status == tb.status);
  CHECK(ta.time_ms == tb.time_ms);
  CHECK(ta.prompt_tokens == tb.prompt_tokens);
  REQUIRE(ta.values.rows() == tb.values.rows());
  REQUIRE(ta.values.cols() == tb.values.cols());
  CHECK(((ta.values.array() == tb.values.array()) || (ta.values.array().isNaN() && tb.values.array().isNaN()))
            .all());
  CHECK(gb.population("llm")->backend == "replay");
}

}  // namespace

TEST_SUITE("transcripts") {
  TEST_CASE("step protocol: every request is written, read back, and replayed bit for bit") {
    const auto spec = spec_of(agents::InvestProtocol::step);
    const std::string original = tmp("transcripts_step.h5");
    run_to(
        spec, [](const sim::InferenceSpec&) { return std::make_unique<SeedBackend>(); }, original);

    const io::RunFile file(original);
    const auto g = file.group("/");
    const io::PopulationInfo* info = g.population("llm");
    REQUIRE(info != nullptr);
    CHECK(info->kind == "investagent");
    CHECK(info->has_transcripts);
    CHECK(info->backend == "seeded");
    CHECK(info->protocol == "step");
    CHECK(info->has_theory);
    const io::Transcripts t = file.transcripts("/", "llm");
    REQUIRE(t.size() == 3 * 2 * 3);  // agents x paths x steps, not cut by max_agents
    CHECK(t.values.rows() == 1);
    int invalid = 0;
    for (std::size_t i = 0; i < t.size(); ++i) {
      CHECK(t.step[i] == static_cast<int>(i / 6));
      CHECK(t.path[i] == static_cast<int>(i % 6 / 3));
      CHECK(t.agent[i] == static_cast<int>(i % 3));
      CHECK(t.stage[i] == 0);
      CHECK(t.time_ms[i] == 0.25 + static_cast<double>(t.seed[i] % 7));
      CHECK(t.cached_tokens[i] == 3);
      const bool bad = t.seed[i] % 3 == 0;
      CHECK(t.valid[i] == (bad ? 0 : 1));
      CHECK(t.status[i] == (bad ? "no_json_object" : "ok"));
      if (bad) {
        CHECK(t.output[i] == "no idea \xc3\xa9");
        ++invalid;
      } else {
        CHECK(t.values(0, static_cast<Eigen::Index>(i)) ==
              doctest::Approx(static_cast<double>(t.seed[i] % 10001) / 10000.0).epsilon(1e-12));
      }
    }
    (void)invalid;

    // Replay, from the same file (read whole before the run starts).
    io::ReplayBackend probe(original);
    CHECK(probe.size() == t.size());
    const std::string replayed = tmp("transcripts_step_replay.h5");
    run_to(
        spec, [&](const sim::InferenceSpec&) { return std::make_unique<io::ReplayBackend>(original); },
        replayed);
    check_same_run(original, replayed);
  }

  TEST_CASE("absolute protocol: path -1, NaN padding of width T, replay") {
    const auto spec = spec_of(agents::InvestProtocol::absolute);
    const std::string original = tmp("transcripts_absolute.h5");
    run_to(
        spec, [](const sim::InferenceSpec&) { return std::make_unique<SeedBackend>(); }, original);
    const io::RunFile file(original);
    const io::Transcripts t = file.transcripts("/", "llm");
    REQUIRE(t.size() == 3);
    CHECK(t.values.rows() == 3);
    for (std::size_t i = 0; i < t.size(); ++i) {
      CHECK(t.path[i] == -1);
      CHECK(t.step[i] == 0);
    }
    const std::string replayed = tmp("transcripts_absolute_replay.h5");
    run_to(
        spec,
        [&](const sim::InferenceSpec&) { return std::make_unique<io::ReplayBackend>(original, "/", "llm"); },
        replayed);
    check_same_run(original, replayed);
  }

  TEST_CASE("replay: order independent; an unknown request or a bad filter is an error naming it") {
    const auto spec = spec_of(agents::InvestProtocol::step);
    const std::string original = tmp("transcripts_replay_errors.h5");
    std::vector<std::pair<inference::Request, std::string>> seen;
    run_to(
        spec, [&](const sim::InferenceSpec&) { return std::make_unique<SeedBackend>(&seen); }, original);
    io::ReplayBackend replay(original);
    CHECK(replay.name() == "replay");
    CHECK(replay.describe().find("seeded") != std::string::npos);

    // The run's own requests, sent in reverse order in one batch, get their own answers.
    REQUIRE(seen.size() == 18);
    std::vector<inference::Request> reversed;
    for (auto it = seen.rbegin(); it != seen.rend(); ++it) reversed.push_back(it->first);
    const auto answers = replay.generate(reversed);
    REQUIRE(answers.size() == seen.size());
    for (std::size_t i = 0; i < answers.size(); ++i) {
      CHECK(answers[i].ok());
      CHECK(answers[i].text == seen[seen.size() - 1 - i].second);
    }

    inference::Request unknown;
    unknown.system = "s";
    unknown.user = "u";
    unknown.seed = 1;
    try {
      (void)replay.generate({unknown});
      FAIL("expected a BackendError");
    } catch (const BackendError& e) {
      CHECK(std::string(e.what()).find(investalign::hash_hex(io::ReplayBackend::prompt_hash(unknown))) !=
            std::string::npos);
    }
    CHECK_THROWS_AS(io::ReplayBackend(original, "/", "nobody"), BackendError);
    CHECK_THROWS_AS(io::ReplayBackend(tmp("does_not_exist.h5")), IoError);

    // A different seed: the first request of the run is not in the file.
    auto other = spec;
    other.run.seed = 6;
    CHECK_THROWS_AS(
        run_to(
            other, [&](const sim::InferenceSpec&) { return std::make_unique<io::ReplayBackend>(original); },
            tmp("transcripts_replay_other.h5")),
        BackendError);
  }
}
