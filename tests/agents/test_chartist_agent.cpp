// Chartists (agents/chartist_agent.hpp, docs/theory.md §7.4): the moving average of the market's log
// returns and the demand chi m / dt, capped and scaled by wealth, recomputed here from the recorded
// returns and wealth at every step, with one and two assets and in the exogenous market; and a market of
// noise traders, fundamentalists and chartists gives the same bits for 1, 2 and 3 threads (that strong
// chartists raise the volatility is checked on scenarios/market/feedback.toml,
// tests/tools/test_scenarios.py).
#include <doctest/doctest.h>

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <vector>

#include "agents/chartist_agent.hpp"
#include "agents/fundamentalist_agent.hpp"
#include "agents/noise_agent.hpp"
#include "agents/registry.hpp"
#include "support/specs.hpp"
#include "support/tape.hpp"

using namespace herdsim;

namespace {

/// Noise traders drawing a proportion every month (their flow moves the price) and chartists with
/// chi = -0.5, 1 and 40 (the last mostly at the cap 2), trend weight w, monthly over 2 years.
sim::ScenarioSpec market_with_chartists(double w, int paths = 3) {
  sim::ScenarioSpec spec;
  spec.run.paths = paths;
  spec.run.seed = 11;
  spec.run.horizon = 2.0;
  spec.run.steps_per_year = 12;
  spec.market.impact.lambda = {1.0};
  spec.market.impact.depth = {5000.0};
  agents::NoiseParams noise;
  sim::DistributionSpec uniform;
  uniform.kind = sim::DistributionSpec::Kind::uniform;
  uniform.a = 0.0;
  uniform.b = 1.0;
  noise.proportion.form = sim::ParamSpec::Form::distribution;
  noise.proportion.distribution = uniform;
  spec.populations.push_back(agents::population_spec("noise", 30, noise, test::constant(10.0)));
  agents::ChartistParams cp;
  cp.chi = test::list({-0.5, 1.0, 40.0});
  cp.trend_weight = w;
  cp.max_proportion = 2.0;
  spec.populations.push_back(agents::population_spec("chart", 6, cp, test::constant(10.0)));
  return spec;
}

/// Checks every amount of population `pop` against the rule written out from the recorded returns.
void check_rule(const sim::ScenarioSpec& spec, const test::Record& t, std::size_t pop, double w,
                const std::vector<double>& chi, double cap) {
  const int paths = spec.run.paths;
  const auto assets = static_cast<int>(t.market[0].price.cols());
  Eigen::MatrixXd m = Eigen::MatrixXd::Zero(paths, assets);
  int capped = 0;
  for (int k = 0; k < spec.run.steps(); ++k) {
    // The return that ended at S_k (step 0: 0), then m_k = (1 - w) m_{k-1} + w ln(1 + r).
    const Eigen::MatrixXd& r = t.market[static_cast<std::size_t>(k)].simple_return;
    for (int a = 0; a < assets; ++a) {
      for (int p = 0; p < paths; ++p) {
        m(p, a) = (1.0 - w) * m(p, a) + w * std::log1p(r(p, a));
        for (int i = 0; i < static_cast<int>(chi.size()); ++i) {
          const double x = t.wealth[static_cast<std::size_t>(k)][pop](i, p);
          const double q = chi[static_cast<std::size_t>(i)] * m(p, a) * spec.run.steps_per_year;
          const double want = std::clamp(q, -cap, cap) * std::max(x, 0.0);
          capped += std::abs(q) > cap ? 1 : 0;
          CHECK(t.amount[static_cast<std::size_t>(k)][pop](i, a * paths + p) ==
                doctest::Approx(want).epsilon(1e-13));
        }
      }
    }
  }
  CHECK(capped > 0);
  CHECK(m.cwiseAbs().maxCoeff() > 1e-4);  // a real trend
}

}  // namespace

TEST_SUITE("agents.chartist") {
  TEST_CASE("the trend is the moving average of the log returns; the amount chi m / dt of wealth, capped") {
    for (const double w : {1.0, 0.3}) {
      CAPTURE(w);
      const sim::ScenarioSpec spec = market_with_chartists(w);
      const test::Record t = test::run(spec);
      check_rule(spec, t, 1, w, {-0.5, 1.0, 40.0, -0.5, 1.0, 40.0}, 2.0);
      for (int p = 0; p < spec.run.paths; ++p) CHECK(t.amount[0][1].col(p).isZero());  // no return yet
    }
  }

  TEST_CASE("chartist_trend leaves the average where a return is -100 % or worse") {
    CHECK(agents::chartist_trend(0.2, 0.5, -1.0) == 0.2);
    CHECK(agents::chartist_trend(0.2, 0.5, -3.0) == 0.2);
    CHECK(agents::chartist_trend(0.2, 0.5, std::expm1(0.1)) == doctest::Approx(0.15));
  }

  TEST_CASE("in the exogenous market chartists are price-takers chasing the GBM's returns") {
    sim::ScenarioSpec spec = market_with_chartists(0.5);
    spec.market.impact = {};
    const test::Record t = test::run(spec);
    check_rule(spec, t, 1, 0.5, {-0.5, 1.0, 40.0, -0.5, 1.0, 40.0}, 2.0);
  }

  TEST_CASE("with two assets each asset's amount follows its own trend") {
    sim::ScenarioSpec spec = market_with_chartists(0.5, 2);
    spec.market.assets = {{"a", 0.07, 0.17, 1.0}, {"b", 0.05, 0.1, 2.0}};
    spec.market.correlation = {1.0, -0.2, -0.2, 1.0};
    spec.market.impact.lambda = {1.0, 0.0, 0.0, 1.0};
    spec.market.impact.depth = {5000.0, 5000.0};
    const test::Record t = test::run(spec);
    check_rule(spec, t, 1, 0.5, {-0.5, 1.0, 40.0, -0.5, 1.0, 40.0}, 2.0);
  }

  TEST_CASE("noise traders, fundamentalists and chartists: the same bits for 1, 2 and 3 threads") {
    // More agents than one block of the flow reduction (PriceImpact::kFlowBlock) and of decide's grain.
    sim::ScenarioSpec spec = market_with_chartists(0.4, 5);
    spec.populations[0].count = 9000;
    spec.populations[1].count = 5000;
    spec.market.impact.depth = {1e6};
    agents::FundamentalistParams fp;
    fp.kappa = test::list({0.5, 3.0});
    spec.populations.push_back(agents::population_spec("fund", 4500, fp, test::constant(10.0)));
    const test::Record one = test::run(spec, 1);
    for (const int threads : {2, 3}) {
      CAPTURE(threads);
      const test::Record other = test::run(spec, threads);
      REQUIRE(other.market.size() == one.market.size());
      for (std::size_t k = 0; k < one.market.size(); ++k) {
        CHECK(other.market[k].price == one.market[k].price);
        CHECK(other.market[k].flow == one.market[k].flow);
      }
      for (std::size_t k = 0; k < one.amount.size(); ++k) {
        for (std::size_t i = 0; i < 3; ++i) {
          CHECK(other.amount[k][i] == one.amount[k][i]);
          CHECK(other.wealth[k + 1][i] == one.wealth[k + 1][i]);
        }
      }
    }
  }
}
