#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <vector>

#include "sim/analysis/metric_accumulators.hpp"

using namespace herdsim::analysis;

namespace {

Eigen::MatrixXd column(std::initializer_list<double> values) {
  Eigen::MatrixXd m(static_cast<Eigen::Index>(values.size()), 1);
  Eigen::Index i = 0;
  for (double v : values) m(i++, 0) = v;
  return m;
}

}  // namespace

TEST_SUITE("analysis.metric_accumulators") {
  TEST_CASE("PeriodReturns: returns until ruin, agents ruined at the start never return") {
    PeriodReturns returns(3, 1);
    returns.start(column({10.0, 0.0, 5.0}));
    CHECK(returns.ruined(1, 0));
    const auto& first = returns.on_path(0, column({10.0, 0.0, 5.0}), column({11.0, 3.0, -1.0}));
    REQUIRE(first.size() == 1);
    CHECK(first[0].agent == 0);
    CHECK(first[0].value == doctest::Approx(0.1).epsilon(1e-15));
    CHECK(returns.ruined(2, 0));
    // Agent 2's wealth recovers, but its returns stopped at the ruin.
    const auto& second = returns.on_path(0, column({11.0, 3.0, -1.0}), column({12.1, 4.0, 2.0}));
    REQUIRE(second.size() == 1);
    CHECK(second[0].agent == 0);
  }

  TEST_CASE("DispersionAccumulator: R_m, CSAD per period; a period of one return has none") {
    const int periods = kMinPeriods + 4;  // the regressions need kMinPeriods observations
    DispersionAccumulator dispersion(1, periods);
    PopulationInput in;
    for (int s = 0; s <= periods; ++s) in.wealth_steps.push_back(s);
    for (int t = 0; t < periods - 1; ++t) {
      const double x = 0.01 * (t - 3) * (t % 3 == 0 ? -1.0 : 1.0);
      dispersion.add(0, t, {{0, x - 0.02 * t}, {1, x}, {2, x + 0.02 * t + 0.01}});
    }
    dispersion.add(0, periods - 1, {{0, 0.05}});
    std::vector<std::string> notes;
    const auto ds = dispersion.finish(in, notes);
    REQUIRE(ds);
    CHECK(ds->observations == periods - 1);
    for (int t = 0; t < periods - 1; ++t) {
      const double x = 0.01 * (t - 3) * (t % 3 == 0 ? -1.0 : 1.0);
      const double mean = x + 0.01 / 3.0;
      const double csad =
          (std::abs(x - 0.02 * t - mean) + std::abs(x - mean) + std::abs(x + 0.02 * t + 0.01 - mean)) / 3.0;
      CHECK(ds->market_series[static_cast<std::size_t>(t)] == doctest::Approx(mean).epsilon(1e-12));
      CHECK(ds->csad_series[static_cast<std::size_t>(t)] == doctest::Approx(csad).epsilon(1e-12));
    }
    CHECK(std::isnan(ds->csad_series.back()));
    CHECK(ds->csad.fit);
  }

  TEST_CASE("Opinion and herding distance: agents sharing w report it exactly") {
    // Two agents, one path, one decision: P = w P_alpha + (1 - w) Pbar with w = 0.25.
    PopulationInput in;
    in.agents = 2;
    in.paths = 1;
    in.reference = HerdReference::leader;
    in.merton = (Eigen::MatrixXd(2, 1) << 4.0, 2.0).finished();
    in.leader = (Eigen::MatrixXd(2, 1) << 1.0, 1.0).finished();
    in.theory = 0.25 * in.merton + 0.75 * in.leader;
    const Eigen::MatrixXd amount = in.theory;
    const Eigen::MatrixXd wealth = Eigen::MatrixXd::Constant(2, 1, 10.0);
    const Eigen::MatrixXd unset;
    const DecisionRow row{0, 0, amount, wealth, unset, unset, -1};
    const ReferenceRow reference(in, row);
    OpinionAccumulator opinion(in, 1);
    HerdingDistanceAccumulator distance(in);
    opinion.add(row, reference);
    distance.add(row, reference);
    const Opinion op = opinion.finish();
    CHECK(op.simulated[0] == doctest::Approx(0.25).epsilon(1e-15));
    CHECK(op.theory[0] == doctest::Approx(0.25).epsilon(1e-15));
    CHECK(op.agents == 2);
    // Per agent, pooled over decisions and paths: the same w for each.
    REQUIRE(op.per_agent_simulated.size() == 2);
    CHECK(op.per_agent_simulated[1] == doctest::Approx(0.25).epsilon(1e-15));
    CHECK(op.per_agent_theory[0] == doctest::Approx(0.25).epsilon(1e-15));
    // h = |P - P_alpha| / |Pbar - P_alpha| = 1 - w.
    const HerdingDistance hd = distance.finish();
    CHECK(hd.per_agent_simulated[0] == doctest::Approx(0.75).epsilon(1e-15));
    CHECK(hd.per_agent_theory[1] == doctest::Approx(0.75).epsilon(1e-15));
  }

  TEST_CASE("DecisionErrorAccumulator: decisions at non-positive wealth have no proportion error") {
    const Eigen::MatrixXd plan = Eigen::MatrixXd::Constant(2, 1, 1.0);
    DecisionErrorAccumulator errors(plan, 1, 2);
    const Eigen::MatrixXd amount = (Eigen::MatrixXd(2, 1) << 1.5, 0.0).finished();
    const Eigen::MatrixXd wealth = (Eigen::MatrixXd(2, 1) << 10.0, -1.0).finished();
    const Eigen::MatrixXd unset;
    errors.add({0, 0, amount, wealth, unset, unset, -1});
    std::vector<std::string> notes;
    const DecisionError de = errors.finish(notes);
    CHECK(de.amount.mse == doctest::Approx((0.25 + 1.0) / 2));
    CHECK(de.proportion_pp.mse == doctest::Approx(25.0));
    CHECK(std::isnan(de.agent_mse_pp[1]));
    REQUIRE(notes.size() == 1);
    CHECK(notes[0].find("1 decisions with non-positive wealth") == 0);
  }
}
