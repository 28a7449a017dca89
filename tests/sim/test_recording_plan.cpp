#include <doctest/doctest.h>

#include <vector>

#include "sim/error.hpp"
#include "sim/recording_plan.hpp"

namespace {

using herdsim::sim::RecordingPlan;
using herdsim::sim::RecordSpec;
using herdsim::sim::RunState;

/// A run's shape only: the plan reads steps, paths and the populations' names and counts.
RunState shape(int steps, int paths, const std::vector<int>& counts) {
  RunState state;
  state.steps = steps;
  state.paths = paths;
  for (std::size_t i = 0; i < counts.size(); ++i) {
    herdsim::sim::PopulationState pop;
    pop.name = "pop" + std::to_string(i);
    pop.count = counts[i];
    state.populations.push_back(pop);
  }
  return state;
}

std::vector<int> state_steps(const RecordingPlan& plan) {
  std::vector<int> out;
  for (int s = -1; s <= plan.steps() + 1; ++s) {
    if (plan.records_state(s)) out.push_back(s);
  }
  return out;
}

std::vector<int> decision_steps(const RecordingPlan& plan) {
  std::vector<int> out;
  for (int k = -1; k <= plan.steps() + 1; ++k) {
    if (plan.records_decision(k)) out.push_back(k);
  }
  return out;
}

}  // namespace

TEST_SUITE("recording plan") {
  TEST_CASE("every step by default: all paths, all agents, summaries") {
    const RecordingPlan plan({}, shape(4, 3, {5, 2}));
    CHECK(plan.enabled());
    CHECK(plan.every() == 1);
    CHECK(plan.paths() == std::vector<int>{0, 1, 2});
    CHECK(plan.all_paths());
    CHECK(plan.paths_total() == 3);
    REQUIRE(plan.populations().size() == 2);
    CHECK(plan.populations()[0].name == "pop0");
    CHECK(plan.populations()[0].count == 5);
    CHECK(plan.populations()[0].agents == 5);
    CHECK(plan.populations()[1].agents == 2);
    CHECK(plan.summaries());
    CHECK(plan.stats_per_row() == 9);  // mean, std, min, max and five quantiles
    CHECK(state_steps(plan) == std::vector<int>{0, 1, 2, 3, 4});
    CHECK(decision_steps(plan) == std::vector<int>{0, 1, 2, 3});
    CHECK(plan.state_rows() == 5);
    CHECK(plan.decision_rows() == 4);
    for (int k = 0; k < 4; ++k) CHECK(plan.records_after_step(k));
  }

  TEST_CASE("every k-th step, the last state always") {
    RecordSpec record;
    record.every = 3;
    const RecordingPlan plan(record, shape(7, 1, {1}));
    CHECK(state_steps(plan) == std::vector<int>{0, 3, 6, 7});
    CHECK(decision_steps(plan) == std::vector<int>{0, 3, 6});
    CHECK(plan.state_rows() == 4);
    CHECK(plan.decision_rows() == 3);
    // The observer needs the state after steps 0, 2 (state 3), 3, 5 (state 6) and 6.
    std::vector<int> after;
    for (int k = 0; k < 7; ++k) {
      if (plan.records_after_step(k)) after.push_back(k);
    }
    CHECK(after == std::vector<int>{0, 2, 3, 5, 6});
    // X_s is kept for the proportion of the decision recorded at s; never at the final state.
    CHECK(plan.keeps_decision_wealth(0));
    CHECK(plan.keeps_decision_wealth(3));
    CHECK(plan.keeps_decision_wealth(6));
    CHECK_FALSE(plan.keeps_decision_wealth(1));
    CHECK_FALSE(plan.keeps_decision_wealth(7));
  }

  TEST_CASE("a multiple of every: the last state is not counted twice") {
    RecordSpec record;
    record.every = 2;
    const RecordingPlan plan(record, shape(6, 1, {1}));
    CHECK(state_steps(plan) == std::vector<int>{0, 2, 4, 6});
    CHECK(plan.state_rows() == 4);
    CHECK(plan.decision_rows() == 3);
    record.every = 10;  // longer than the run: the first and last states, the first decision
    const RecordingPlan sparse(record, shape(6, 1, {1}));
    CHECK(state_steps(sparse) == std::vector<int>{0, 6});
    CHECK(decision_steps(sparse) == std::vector<int>{0});
    CHECK(sparse.state_rows() == 2);
    CHECK(sparse.decision_rows() == 1);
  }

  TEST_CASE("a path subset is sorted and distinct") {
    RecordSpec record;
    record.paths = {4, 1, 4, 2};
    const RecordingPlan plan(record, shape(2, 5, {3}));
    CHECK(plan.paths() == std::vector<int>{1, 2, 4});
    CHECK_FALSE(plan.all_paths());
    record.paths = {2, 0, 1, 3, 4};  // every path named: the same as none
    CHECK(RecordingPlan(record, shape(2, 5, {3})).all_paths());
  }

  TEST_CASE("max_agents and trajectories choose the agents") {
    RecordSpec record;
    record.max_agents = 3;
    const RecordingPlan capped(record, shape(2, 1, {10, 2}));
    CHECK(capped.populations()[0].agents == 3);
    CHECK(capped.populations()[1].agents == 2);  // fewer than max_agents: all of them
    CHECK(capped.populations()[0].trajectories());

    record.max_agents = 0;
    const RecordingPlan none(record, shape(2, 1, {10}));
    CHECK(none.populations()[0].agents == 0);
    CHECK_FALSE(none.populations()[0].trajectories());

    record.max_agents = -1;
    record.trajectories = false;
    const RecordingPlan summaries_only(record, shape(2, 1, {10}));
    CHECK(summaries_only.populations()[0].count == 10);
    CHECK_FALSE(summaries_only.populations()[0].trajectories());
    CHECK(summaries_only.summaries());
    CHECK(state_steps(summaries_only) == std::vector<int>{0, 1, 2});  // time and market still recorded
  }

  TEST_CASE("summaries off: no decision wealth kept") {
    RecordSpec record;
    record.summaries = false;
    const RecordingPlan plan(record, shape(3, 2, {4}));
    CHECK_FALSE(plan.summaries());
    CHECK_FALSE(plan.keeps_decision_wealth(0));
    CHECK(plan.populations()[0].agents == 4);
  }

  TEST_CASE("trajectories and summaries off: the market's rows only") {
    RecordSpec record;
    record.every = 100;
    record.trajectories = false;
    record.summaries = false;
    const RecordingPlan plan(record, shape(100, 200, {100000}));
    CHECK(plan.enabled());
    CHECK_FALSE(plan.summaries());
    REQUIRE(plan.populations().size() == 1);
    CHECK_FALSE(plan.populations()[0].trajectories());
    CHECK(plan.populations()[0].count == 100000);
    // time/ and market/ rows: states 0 and 100, decision 0; the observer sees steps 0 and 99 only.
    CHECK(state_steps(plan) == std::vector<int>{0, 100});
    CHECK(decision_steps(plan) == std::vector<int>{0});
    CHECK(plan.state_rows() == 2);
    CHECK(plan.decision_rows() == 1);
    std::vector<int> seen;
    for (int k = 0; k < 100; ++k) {
      if (plan.records_after_step(k)) seen.push_back(k);
    }
    CHECK(seen == std::vector<int>{0, 99});
    CHECK_FALSE(plan.keeps_decision_wealth(0));
  }

  TEST_CASE("disabled: nothing at any step, and the paths are not checked") {
    RecordSpec record;
    record.enabled = false;
    record.paths = {99};
    const RecordingPlan plan(record, shape(5, 2, {4}));
    CHECK_FALSE(plan.enabled());
    CHECK(state_steps(plan).empty());
    CHECK(decision_steps(plan).empty());
    CHECK_FALSE(plan.summaries());
    CHECK(plan.state_rows() == 0);
    CHECK(plan.decision_rows() == 0);
    CHECK(plan.populations()[0].agents == 0);
  }

  TEST_CASE("invalid record sections are InputError naming the key") {
    const RunState run = shape(2, 3, {1});
    RecordSpec record;
    record.every = 0;
    CHECK_THROWS_WITH_AS(RecordingPlan(record, run), "record.every must be >= 1, got 0", herdsim::InputError);
    record.every = 1;
    record.compression = 10;
    CHECK_THROWS_WITH_AS(RecordingPlan(record, run), "record.compression must be in 0..9, got 10",
                         herdsim::InputError);
    record.compression = 0;
    record.paths = {0, 3};
    CHECK_THROWS_WITH_AS(RecordingPlan(record, run),
                         "record.paths: path 3 is out of range (the run has 3 paths)", herdsim::InputError);
    record.paths = {-1};
    CHECK_THROWS_AS(RecordingPlan(record, run), herdsim::InputError);
  }
}
