#include <doctest/doctest.h>

#include <string>

#include "agents/herd_agent.hpp"
#include "agents/investagent_agent.hpp"
#include "agents/kind.hpp"
#include "agents/merton_agent.hpp"
#include "agents/noise_agent.hpp"
#include "agents/registry.hpp"
#include "sim/error.hpp"
#include "support/specs.hpp"

using namespace herdsim;

namespace {

/// The message of the ScenarioError check_populations throws for spec ("" if none).
std::string check_message(const sim::ScenarioSpec& spec) {
  try {
    agents::check_populations(spec);
  } catch (const ScenarioError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_SUITE("agents.kind") {
  TEST_CASE("the built-in kinds are registered once, in order, under their parameter types' names") {
    const auto kinds = agents::registered_kinds();
    REQUIRE(kinds.size() >= 4);
    CHECK(kinds[0]->name() == agents::MertonParams::kind);
    CHECK(kinds[1]->name() == agents::HerdParams::kind);
    CHECK(kinds[2]->name() == agents::NoiseParams::kind);
    CHECK(kinds[3]->name() == agents::InvestAgentParams::kind);
    CHECK(agents::find_kind("herd") == kinds[1]);
    CHECK(agents::find_kind("rational") == nullptr);
    CHECK_THROWS_AS(agents::register_kind(agents::make_merton_kind()), Error);  // the name is taken
    CHECK(agents::registered_kinds().size() == kinds.size());
  }

  TEST_CASE("a spec built in code gets the same whole-scenario checks as a scenario file") {
    sim::ScenarioSpec spec = test::paper_spec(2, agents::Policy::plan);
    CHECK(check_message(spec).empty());
    test::herd_params(spec.populations[1]).leader = "nobody";
    CHECK(check_message(spec) == "population 'followers': leader: there is no population named \"nobody\"");
    test::herd_params(spec.populations[1]).leader = "followers";
    CHECK(check_message(spec) ==
          "population 'followers': leader: \"followers\" is this population: a population cannot follow "
          "itself");
    CHECK_THROWS_AS((void)agents::make_simulation(spec), ScenarioError);

    auto peers = test::herd("peers", 101, agents::Policy::replan);
    test::herd_params(peers).influence = agents::Influence::peers;
    test::herd_params(peers).herd = agents::HerdType::relative;
    sim::ScenarioSpec game = test::paper_spec(2, agents::Policy::plan);
    game.populations.push_back(peers);
    CHECK(check_message(game).find(
              "population 'peers': policy: policy = \"replan\" with influence = \"peers\"") == 0);

    sim::ScenarioSpec unknown = test::paper_spec(2, agents::Policy::plan);
    unknown.populations[1].kind = "rational";
    CHECK_THROWS_WITH_AS(agents::check_populations(unknown),
                         doctest::Contains("population 'followers': unknown kind \"rational\""),
                         ScenarioError);
  }

  TEST_CASE("params_of gives a population's parameters as its kind's type, and refuses another kind's") {
    sim::ScenarioSpec spec = test::paper_spec(2, agents::Policy::adaptive);
    CHECK(agents::params_of<agents::HerdParams>(spec.populations[1]).policy == agents::Policy::adaptive);
    CHECK(agents::params_if<agents::HerdParams>(spec.populations[0]) == nullptr);
    CHECK_THROWS_AS((void)agents::params_of<agents::HerdParams>(spec.populations[0]), Error);
  }

  TEST_CASE("every built-in kind records the parameters it declares") {
    // make_simulation compares each population's recorded parameters with its kind's recorded_params().
    sim::ScenarioSpec spec = test::paper_spec(2, agents::Policy::plan);
    auto peers = test::herd("peers", 12, agents::Policy::adaptive);
    test::herd_params(peers).influence = agents::Influence::peers;
    spec.populations.push_back(peers);
    agents::NoiseParams fixed, drawn;
    fixed.proportion = test::constant(0.5);
    drawn.proportion.form = sim::ParamSpec::Form::distribution;
    spec.populations.push_back(agents::population_spec("fixed", 3, fixed, test::constant(10.0)));
    spec.populations.push_back(agents::population_spec("drawn", 3, drawn, test::constant(10.0)));
    const auto simulation = agents::make_simulation(spec);
    for (std::size_t i = 0; i < spec.populations.size(); ++i) {
      std::vector<std::string> names;
      for (const auto& [name, values] : simulation->state().populations[i].params) names.push_back(name);
      CAPTURE(spec.populations[i].name);
      CHECK(names == agents::kind_of(spec.populations[i]).recorded_params(spec.populations[i]));
    }
  }
}
