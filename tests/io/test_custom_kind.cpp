// The kind seam end to end: a kind defined in this file alone (no edit under agents/ or io/), registered
// with one call, read from a scenario by the real loader, validated with lines, run by the real engine,
// recorded to HDF5 and read back.
#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "agents/agent_support.hpp"
#include "agents/kind.hpp"
#include "agents/parameters.hpp"
#include "agents/registry.hpp"
#include "io/hdf5_output.hpp"
#include "io/run_file.hpp"
#include "io/scenario_toml.hpp"
#include "sim/simulation.hpp"

namespace fs = std::filesystem;
using namespace herdsim;

namespace {

/// A constant-proportion investor: every step each agent holds `proportion` of its wealth in the stock.
struct ConstantProportionParams {
  static constexpr std::string_view kind = "constant_proportion";
  sim::ParamSpec proportion;  ///< of wealth in the stock, in [0, 1]
};

/// Kind state `turnover`, count x paths: the sum of |P_k - P_{k-1}| so far, currency units.
class ConstantProportionPopulation final : public sim::Population {
 public:
  ConstantProportionPopulation(const sim::ScenarioSpec& spec, int index) : spec_(spec), index_(index) {}

  void initialize(const sim::RunState& state, sim::PopulationState& own) override {
    const sim::PopulationSpec& ps = spec_.populations[static_cast<std::size_t>(index_)];
    const auto& p = agents::params_of<ConstantProportionParams>(ps);
    own.params = agents::expand_params({{"wealth0", &ps.wealth}, {"proportion", &p.proportion}}, ps.count,
                                       index_, sim::CounterRng(spec_.run.seed));
    agents::set_initial_wealth(own);
    agents::add_kind_state(own, "turnover", ps.count, state.paths);
  }

  void decide(const sim::DecisionContext& ctx, int p0, int p1, int a0, int a1,
              sim::PopulationState& own) const override {
    const Eigen::VectorXd& proportion = agents::param(own, "proportion");
    Eigen::MatrixXd& turnover = agents::kind_state(own, "turnover");
    for (int p = p0; p < p1; ++p) {
      for (int i = a0; i < a1; ++i) {
        own.amount(i, p) = proportion[i] * own.wealth(i, p);
        if (ctx.step > 0) turnover(i, p) += std::abs(own.amount(i, p) - own.previous_amount(i, p));
      }
    }
  }

 private:
  const sim::ScenarioSpec& spec_;
  int index_;
};

class ConstantProportionKind final : public agents::Kind {
 public:
  [[nodiscard]] std::string_view name() const override { return ConstantProportionParams::kind; }
  [[nodiscard]] std::span<const agents::KeyInfo> keys() const override { return keys_; }
  [[nodiscard]] std::any read(agents::KeyReader& in, const sim::PopulationSpec& /*common*/) const override {
    ConstantProportionParams p;
    if (in.require("proportion", agents::for_kind(name())))
      p.proportion = in.param("proportion", agents::direct(agents::unit_interval)).value_or(p.proportion);
    return p;
  }
  [[nodiscard]] std::unique_ptr<sim::Population> make(
      const sim::ScenarioSpec& spec, int index,
      const inference::BackendFactory& /*backends*/) const override {
    return std::make_unique<ConstantProportionPopulation>(spec, index);
  }
  [[nodiscard]] std::vector<std::string> recorded_params(const sim::PopulationSpec& /*ps*/) const override {
    return {"wealth0", "proportion"};
  }

 private:
  static constexpr std::array<agents::KeyInfo, 1> keys_{
      {{"proportion", "of wealth in the stock, in [0, 1]"}}};
};

/// Registers the kind for one test case (the registry is process-wide; other tests list its kinds).
struct Registered {
  Registered() { agents::register_kind(std::make_unique<ConstantProportionKind>()); }
  ~Registered() { agents::unregister_kind(ConstantProportionParams::kind); }
  Registered(const Registered&) = delete;
  Registered& operator=(const Registered&) = delete;
};

const std::string scenario = R"([run]
seed = 3
paths = 2
horizon = 4
[[population]]
name = "advisor"
kind = "merton"
alpha = 0.2
[[population]]
name = "steady"
kind = "constant_proportion"
count = 3
proportion = [0.2, 0.5, 0.8]
wealth = 10
)";

std::vector<io::ScenarioProblem> problems_of(const std::string& text) {
  try {
    (void)io::parse_scenario(text, "t.toml");
  } catch (const io::ScenarioFileError& e) {
    return e.problems();
  }
  return {};
}

bool has_problem(const std::vector<io::ScenarioProblem>& ps, const std::string& key,
                 const std::string& fragment, int line) {
  for (const auto& p : ps) {
    if (p.key_path == key && p.message.find(fragment) != std::string::npos && p.line == line) return true;
  }
  return false;
}

}  // namespace

TEST_SUITE("io.custom_kind") {
  TEST_CASE("a kind defined in a test: parsed, validated, run, recorded and read back") {
    const Registered registered;

    const auto specs = io::parse_scenario(scenario, "t.toml");
    REQUIRE(specs.size() == 1);
    const sim::ScenarioSpec& spec = specs[0];
    REQUIRE(spec.populations[1].kind == "constant_proportion");
    CHECK(agents::params_of<ConstantProportionParams>(spec.populations[1]).proportion.values ==
          std::vector<double>{0.2, 0.5, 0.8});

    const std::string path = (fs::path(HERDSIM_TEST_TMP) / "custom_kind.h5").string();
    fs::remove(path);
    io::Hdf5Output file(path, {"test", spec.run.seed, spec.text, "test"});
    auto simulation = agents::make_simulation(spec);
    auto recorder = file.recorder("/", sim::RecordingPlan(spec.record, simulation->state()));
    simulation->add_observer(recorder.get());
    (void)simulation->run(sim::RunOptions{});
    file.commit();

    const io::RunFile run(path);
    const io::RunGroupInfo g = run.group("/");
    const io::PopulationInfo* steady = g.population("steady");
    REQUIRE(steady != nullptr);
    CHECK(steady->kind == "constant_proportion");
    CHECK(steady->count == 3);
    std::vector<std::string> params = steady->params;
    std::sort(params.begin(), params.end());
    CHECK(params == std::vector<std::string>{"proportion", "wealth0"});
    CHECK_FALSE(steady->has_theory);
    CHECK(run.param("/", "steady", "proportion") == Eigen::Vector3d(0.2, 0.5, 0.8));
    CHECK(run.param("/", "steady", "wealth0") == Eigen::Vector3d(10, 10, 10));

    // Every recorded decision is the proportion of the wealth it was taken at; the kind's turnover (its run
    // state, in RunState) is what the recorded decisions imply.
    REQUIRE(g.decision_steps.size() == 4);
    Eigen::MatrixXd wealth, amount, previous;
    Eigen::MatrixXd turnover = Eigen::MatrixXd::Zero(3, 2);
    for (std::size_t r = 0; r < g.decision_steps.size(); ++r) {
      run.read_row("/", "steady", "wealth", static_cast<int>(r), wealth);
      run.read_row("/", "steady", "amount", static_cast<int>(r), amount);
      for (int p = 0; p < 2; ++p) {
        for (int i = 0; i < 3; ++i)
          CHECK(amount(i, p) == run.param("/", "steady", "proportion")[i] * wealth(i, p));
      }
      if (r > 0) turnover += (amount - previous).cwiseAbs();
      previous = amount;
    }
    const Eigen::MatrixXd* state = simulation->state().populations[1].find_kind_state("turnover");
    REQUIRE(state != nullptr);
    CHECK(state->isApprox(turnover, 1e-12));
    CHECK(turnover.maxCoeff() > 0.0);  // wealth moved, so the holdings did
  }

  TEST_CASE("its keys are validated like every kind's, each problem with its line") {
    const Registered registered;
    auto with = [](const std::string& from, const std::string& to) {
      std::string text = scenario;
      text.replace(text.find(from), from.size(), to);
      return text;
    };
    CHECK(has_problem(problems_of(with("proportion = [0.2, 0.5, 0.8]", "proportion = [0.2, 1.5]")),
                      "population[1].proportion[1]", "must lie in [0, 1], got 1.5", 13));
    CHECK(has_problem(problems_of(with("proportion = [0.2, 0.5, 0.8]\n", "")), "population[1].proportion",
                      "is required for kind = \"constant_proportion\"", 9));
    CHECK(has_problem(problems_of(with("count = 3", "alpha = 0.3")), "population[1].alpha",
                      "does not apply to kind = \"constant_proportion\"", 12));
    CHECK(has_problem(problems_of(with("alpha = 0.2", "alpha = 0.2\nproportion = 0.5")),
                      "population[0].proportion", "does not apply to kind = \"merton\"", 9));
    CHECK(has_problem(
        problems_of(with("count = 3", "colour = 3")), "population[1].colour",
        "allowed keys: name, kind, count, wealth, investors, proportion (kind = \"constant_proportion\")",
        12));
  }

  TEST_CASE("an unregistered kind is a validation error naming the registered ones") {
    const auto problems = problems_of(scenario);
    CHECK(has_problem(problems, "population[1].kind",
                      "must be one of \"merton\", \"herd\", \"noise\", \"investagent\"", 11));
  }
}
