// The endogenous market of docs/theory.md §7.2 (sim/market/price_impact.hpp): its checks, the exogenous
// market when impact is off, the price update of the first steps recomputed here from the formulas
// (pre- and post-impact execution, the floor, cross impact), the stability warning and thread-count
// invariance. The references are written out in the test from the recorded shocks and amounts.
#include <doctest/doctest.h>

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "agents/noise_agent.hpp"
#include "agents/registry.hpp"
#include "sim/market/asset_covariance.hpp"
#include "sim/market/exogenous_gbm.hpp"
#include "sim/market/price_impact.hpp"
#include "sim/simulation.hpp"
#include "support/specs.hpp"
#include "support/tape.hpp"

using namespace herdsim;
using test::Record;
using test::run;

namespace {

/// Two Merton investors (alpha 0.25, wealth 10) holding one stock, annual steps over `horizon` years.
sim::ScenarioSpec holders(double horizon, int paths = 3) {
  sim::ScenarioSpec spec;
  spec.run.paths = paths;
  spec.run.seed = 99;
  spec.run.horizon = horizon;
  spec.populations.push_back(test::merton("m", 2, 0.25));
  return spec;
}

sim::ImpactSpec diagonal(double lambda, double depth, sim::Execution e) {
  sim::ImpactSpec im;
  im.lambda = {lambda};
  im.depth = {depth};
  im.execution = e;
  return im;
}

bool has(const std::vector<sim::MarketProblem>& ps, const std::string& key, const std::string& fragment) {
  return std::any_of(ps.begin(), ps.end(), [&](const sim::MarketProblem& p) {
    return p.key == key && p.message.find(fragment) != std::string::npos;
  });
}

}  // namespace

TEST_CASE("price impact: the market's checks name the key and the reason") {
  sim::MarketSpec m;
  CHECK(sim::market_problems(m, 10.0).empty());  // no impact: nothing to check
  m.impact = diagonal(1.0, 100.0, sim::Execution::post_impact);
  CHECK(sim::market_problems(m, 10.0).empty());

  auto with = [&](auto edit) {
    sim::MarketSpec bad = m;
    edit(bad.impact);
    return sim::market_problems(bad, 10.0);
  };
  CHECK(has(with([](sim::ImpactSpec& im) { im.depth = {0.0}; }), "impact.depth", "must be > 0"));
  CHECK(has(with([](sim::ImpactSpec& im) { im.depth.clear(); }), "impact.depth", "needs the market's depth"));
  CHECK(has(with([](sim::ImpactSpec& im) { im.lambda = {1.0, 0.0}; }), "impact.lambda", "1 x 1"));
  CHECK(has(with([](sim::ImpactSpec& im) { im.lambda = {NAN}; }), "impact.lambda", "finite"));
  CHECK(has(with([](sim::ImpactSpec& im) { im.depth_multiple = {2.0}; }), "impact.depth", "not both"));
  CHECK(has(with([](sim::ImpactSpec& im) {
              im.depth.clear();
              im.depth_multiple = {2.0};
            }),
            "impact.market_value", "needs market_value"));
  CHECK(has(with([](sim::ImpactSpec& im) { im.floor = {1.0}; }), "impact.floor", "below the initial price"));
  CHECK(has(with([](sim::ImpactSpec& im) { im.floor = {-1.0}; }), "impact.floor", ">= 0"));

  // Several assets: one entry per asset, each named.
  sim::MarketSpec two;
  two.assets = {{"a", 0.07, 0.17, 1.0}, {"b", 0.05, 0.1, 2.0}};
  two.correlation = {1.0, 0.2, 0.2, 1.0};
  two.impact.lambda = {1.0, 0.0, 0.0, 1.0};
  two.impact.depth = {10.0, -1.0};
  CHECK(has(sim::market_problems(two, 10.0), "impact.depth[1]", "must be > 0"));
  two.impact.depth = {10.0};
  CHECK(has(sim::market_problems(two, 10.0), "impact.depth", "one entry per asset (2)"));

  // make_market refuses an invalid impact for specs built in code.
  sim::ScenarioSpec spec = holders(2.0);
  spec.market.impact = diagonal(1.0, -5.0, sim::Execution::post_impact);
  CHECK_THROWS_AS((void)sim::make_market(spec), ScenarioError);
}

TEST_CASE("price impact: lambda 0 is the exogenous market, bit for bit") {
  sim::ScenarioSpec plain = holders(5.0);
  agents::NoiseParams noise;
  noise.proportion = test::constant(0.5);
  plain.populations.push_back(agents::population_spec("noise", 50, noise, test::constant(10.0)));
  sim::ScenarioSpec zero = plain;
  zero.market.impact = diagonal(0.0, 100.0, sim::Execution::pre_impact);
  CHECK_FALSE(zero.market.impact.active());
  CHECK(dynamic_cast<sim::ExogenousGbm*>(sim::make_market(zero).get()) != nullptr);
  const Record a = run(plain);
  const Record b = run(zero);
  REQUIRE(a.market.size() == b.market.size());
  for (std::size_t s = 0; s < a.market.size(); ++s) {
    CHECK(a.market[s].price == b.market[s].price);
    CHECK(a.market[s].simple_return == b.market[s].simple_return);
    for (std::size_t i = 0; i < a.wealth[s].size(); ++i) CHECK(a.wealth[s][i] == b.wealth[s][i]);
  }
}

TEST_CASE("price impact: the first two steps recomputed from the formulas") {
  const double lambda = 0.5;
  const double depth = 64.0;
  for (const auto execution : {sim::Execution::pre_impact, sim::Execution::post_impact}) {
    CAPTURE(static_cast<int>(execution));
    sim::ScenarioSpec spec = holders(2.0);
    spec.market.impact = diagonal(lambda, depth, execution);
    const Record t = run(spec);
    REQUIRE(t.market.size() == 3);
    const double mu = spec.market.mu;
    const double r = spec.market.r;
    const double sigma = spec.market.sigma;
    const double growth = 1.0 + r;  // arithmetic update, dt = 1
    for (int p = 0; p < spec.run.paths; ++p) {
      CAPTURE(p);
      // Both investors hold the same planned amount: P_k of agent 0.
      const double p0 = t.amount[0][0](0, p);
      const double p1 = t.amount[1][0](0, p);
      CHECK(t.amount[0][0](1, p) == p0);
      const double g0 = mu * 1.0 + sigma * std::sqrt(1.0) * t.market[1].shock(p, 0);
      const double g1 = mu * 1.0 + sigma * std::sqrt(1.0) * t.market[2].shock(p, 0);
      // The fundamental is the exogenous GBM.
      CHECK(t.market[1].fundamental(p, 0) == 1.0 * (1.0 + g0));
      CHECK(t.market[2].fundamental(p, 0) == t.market[1].fundamental(p, 0) * (1.0 + g1));
      // Step 0: nobody held anything, so the flow is what they buy; later, sum_i P_i(k) minus the sum of
      // P_i(k-1) grown since its fill, d.
      const double flow0 = (p0 + p0) - 0.0 * 1.0;
      CHECK(t.market[1].flow(p, 0) == flow0);
      const double impact0 = lambda * (flow0 / depth);
      double s1 = 0.0;
      double s2 = 0.0;
      double x1 = 0.0;
      double x2 = 0.0;
      const double x0 = 10.0;
      if (execution == sim::Execution::pre_impact) {
        s1 = 1.0 * (1.0 + g0) * std::exp(impact0);
        // Step 1: the holding grew with the market price, S_1 / S_0.
        const double flow1 = (p1 + p1) - (p0 + p0) * (s1 / 1.0);
        CHECK(t.market[2].flow(p, 0) == flow1);
        s2 = s1 * (1.0 + g1) * std::exp(lambda * (flow1 / depth));
        x1 = x0 * growth + p0 * (s1 / 1.0 - growth);
        x2 = x1 * growth + p1 * (s2 / s1 - growth);
      } else {
        // Filled at S' = S e^I; the fresh position earns the fundamental's growth from there.
        const double fill0 = 1.0 * std::exp(impact0);
        s1 = fill0 * (1.0 + g0);
        const double d1 = s1 / fill0;
        const double flow1 = (p1 + p1) - (p0 + p0) * d1;
        CHECK(t.market[2].flow(p, 0) == flow1);
        const double fill1 = s1 * std::exp(lambda * (flow1 / depth));
        s2 = fill1 * (1.0 + g1);
        x1 = x0 * growth + p0 * (s1 / fill0 - growth);
        // The holding carried into step 1 (P_0 d_1) gains the step's impact, grown over the step.
        x2 = x1 * growth + p1 * (s2 / fill1 - growth) + p0 * (d1 * (fill1 / s1 - 1.0) * growth);
      }
      CHECK(t.market[1].price(p, 0) == s1);
      CHECK(t.market[2].price(p, 0) == s2);
      CHECK(t.market[1].simple_return(p, 0) == s1 / 1.0 - 1.0);
      CHECK(t.market[2].simple_return(p, 0) == s2 / s1 - 1.0);
      CHECK(t.wealth[1][0](0, p) == x1);
      CHECK(t.wealth[2][0](0, p) == x2);
    }
  }
}

TEST_CASE("price impact: the floor holds the market price up") {
  sim::ScenarioSpec spec = holders(6.0, 20);
  spec.populations.front().count = 1;
  // Selling pressure: a negative lambda turns the holders' buying into a fall.
  spec.market.impact = diagonal(-3.0, 1.0, sim::Execution::pre_impact);
  spec.market.impact.floor = {0.5};
  const Record t = run(spec);
  bool floored = false;
  for (std::size_t s = 1; s < t.market.size(); ++s) {
    CHECK(t.market[s].price.minCoeff() >= 0.5);
    floored = floored || t.market[s].price.minCoeff() == 0.5;
  }
  CHECK(floored);
  // Without the floor the same run goes below it.
  spec.market.impact.floor.clear();
  const Record free = run(spec);
  double lowest = 1.0;
  for (const auto& m : free.market) lowest = std::min(lowest, m.price.minCoeff());
  CHECK(lowest < 0.5);
}

TEST_CASE("price impact: cross impact moves the other asset by lambda_ab flow_b / depth_b") {
  sim::ScenarioSpec spec;
  spec.run.paths = 2;
  spec.run.seed = 5;
  spec.run.horizon = 1.0;
  spec.market.assets = {{"a", 0.07, 0.17, 1.0}, {"b", 0.05, 0.1, 2.0}};
  spec.market.mu = 0.07;
  spec.market.sigma = 0.17;
  spec.market.correlation = {1.0, 0.3, 0.3, 1.0};
  spec.populations.push_back(test::merton("m", 2, 0.25));
  spec.market.impact.lambda = {0.5, 0.25, 0.125, 1.0};
  spec.market.impact.depth = {32.0, 16.0};
  spec.market.impact.execution = sim::Execution::pre_impact;
  const Record t = run(spec);
  const Eigen::Index paths = spec.run.paths;
  for (Eigen::Index p = 0; p < paths; ++p) {
    const double f0 = t.amount[0][0](0, p) + t.amount[0][0](1, p);
    const double f1 = t.amount[0][0](0, paths + p) + t.amount[0][0](1, paths + p);
    CHECK(t.market[1].flow(p, 0) == f0);
    CHECK(t.market[1].flow(p, 1) == f1);
    const double i0 = 0.0 + 0.5 * (f0 / 32.0) + 0.25 * (f1 / 16.0);
    const double i1 = 0.0 + 0.125 * (f0 / 32.0) + 1.0 * (f1 / 16.0);
    CHECK(t.market[1].price(p, 0) == t.market[1].fundamental(p, 0) * std::exp(i0));
    CHECK(t.market[1].price(p, 1) == t.market[1].fundamental(p, 1) * std::exp(i1));
  }
}

TEST_CASE("price impact: depth as a multiple of market value moves with the price") {
  sim::ScenarioSpec direct = holders(3.0);
  direct.market.price0 = 2.0;
  direct.market.impact = diagonal(0.5, 200.0, sim::Execution::pre_impact);
  sim::ScenarioSpec multiple = direct;
  multiple.market.impact.depth.clear();
  multiple.market.impact.depth_multiple = {2.0};
  multiple.market.impact.market_value = {100.0};
  const Record a = run(direct);
  const Record b = run(multiple);
  // Step 0 at S_0: the same depth, 2 x 100; later the depth is 200 S_k / S_0.
  CHECK(a.market[1].price == b.market[1].price);
  for (Eigen::Index p = 0; p < 3; ++p) {
    const double s1 = b.market[1].price(p, 0);
    const double depth1 = 2.0 * 100.0 * (s1 / 2.0);
    const double expected = s1 * (1.0 + (0.07 + 0.17 * b.market[2].shock(p, 0))) *
                            std::exp(0.0 + 0.5 * (b.market[2].flow(p, 0) / depth1));
    CHECK(b.market[2].price(p, 0) == expected);
  }
}

TEST_CASE("price impact: the stability warning") {
  sim::ScenarioSpec spec = holders(3.0);
  spec.market.impact = diagonal(1.0, 1e6, sim::Execution::post_impact);
  CHECK(agents::make_simulation(spec)->warnings().empty());
  auto simulation = agents::make_simulation(spec);
  // The planned amounts summed over agents, at each step: the largest radius is lambda max_k sum_i P_i / D.
  const auto& plan = simulation->state_without_amounts().populations.front().theory_amount;
  const double held = plan.colwise().sum().maxCoeff();
  CHECK(sim::impact_stability_radius(spec.market, Eigen::VectorXd::Constant(1, held)) ==
        doctest::Approx(held / 1e6).epsilon(1e-15));
  spec.market.impact.depth = {0.5 * held};
  const auto warnings = agents::make_simulation(spec)->warnings();
  REQUIRE(warnings.size() == 1);
  CHECK(warnings.front().find("market.impact") != std::string::npos);
  CHECK(warnings.front().find("spectral radius") != std::string::npos);
  CHECK(warnings.front().find(" 2 >= 1") != std::string::npos);
  // Cross impact: the spectral radius of [[0, 1], [1, 0]] diag(h) / D is sqrt(h_a h_b) / D.
  sim::MarketSpec two;
  two.assets = {{"a", 0.07, 0.17, 1.0}, {"b", 0.05, 0.1, 1.0}};
  two.correlation = {1.0, 0.0, 0.0, 1.0};
  two.impact.lambda = {0.0, 1.0, 1.0, 0.0};
  two.impact.depth = {4.0, 4.0};
  CHECK(sim::impact_stability_radius(two, Eigen::Vector2d(2.0, 8.0)) == doctest::Approx(1.0));
}

TEST_CASE("price impact: the flow and every result are the same bits for any thread count") {
  sim::ScenarioSpec spec = holders(4.0, 3);
  agents::NoiseParams noise;
  noise.proportion = test::list({0.1, 0.9, -0.3, 1.7});
  // More agents than one flow block, an uneven last block.
  spec.populations.push_back(
      agents::population_spec("noise", 3 * sim::PriceImpact::kFlowBlock + 77, noise, test::constant(10.0)));
  spec.market.impact = diagonal(0.3, 1e5, sim::Execution::post_impact);
  const Record one = run(spec, 1);
  for (const int threads : {2, 3}) {
    const Record other = run(spec, threads);
    for (std::size_t s = 0; s < one.market.size(); ++s) {
      CHECK(one.market[s].price == other.market[s].price);
      CHECK(one.market[s].flow == other.market[s].flow);
      for (std::size_t i = 0; i < one.wealth[s].size(); ++i) CHECK(one.wealth[s][i] == other.wealth[s][i]);
    }
  }
  CHECK(one.market.back().flow.cwiseAbs().maxCoeff() > 0.0);
}
