// Fundamentalists (agents/fundamentalist_agent.hpp, docs/theory.md §7.4): the demand rule
// kappa ln(F/S), capped and scaled by wealth, recomputed here from the recorded market and wealth at
// every step, with one and two assets; nothing held in the exogenous market; and the mispricing the noise
// traders' holdings leave shrunk by the linear factor 1 / (1 + lambda kappa W n / depth) of §7.4.
#include <doctest/doctest.h>

#include <Eigen/Core>
#include <algorithm>
#include <cmath>

#include "agents/fundamentalist_agent.hpp"
#include "agents/noise_agent.hpp"
#include "agents/registry.hpp"
#include "sim/error.hpp"
#include "support/specs.hpp"
#include "support/tape.hpp"

using namespace herdsim;

namespace {

/// Noise traders holding a fixed proportion of their wealth (they push the price above its fundamental)
/// and fundamentalists with kappa = 0.5, 4 and 200 (the last always at the cap 1.5), monthly over 2 years.
sim::ScenarioSpec market_with_fundamentalists(int paths = 3) {
  sim::ScenarioSpec spec;
  spec.run.paths = paths;
  spec.run.seed = 7;
  spec.run.horizon = 2.0;
  spec.run.steps_per_year = 12;
  spec.market.impact.lambda = {1.0};
  spec.market.impact.depth = {2000.0};
  agents::NoiseParams noise;
  noise.proportion = test::list({0.3, 0.9});
  spec.populations.push_back(agents::population_spec("noise", 20, noise, test::constant(10.0)));
  agents::FundamentalistParams fp;
  fp.kappa = test::list({0.5, 4.0, 200.0});
  fp.max_proportion = 1.5;
  spec.populations.push_back(agents::population_spec("fund", 6, fp, test::constant(10.0)));
  return spec;
}

/// The rule written out: clamp(kappa ln(F/S), -cap, cap) x max(X, 0).
double expected_amount(double kappa, double cap, double fundamental, double price, double wealth) {
  return std::clamp(kappa * std::log(fundamental / price), -cap, cap) * std::max(wealth, 0.0);
}

}  // namespace

TEST_SUITE("agents.fundamentalist") {
  TEST_CASE("each amount is kappa ln(F/S) of the wealth, capped, from the market at the decision") {
    const sim::ScenarioSpec spec = market_with_fundamentalists();
    const test::Record t = test::run(spec);
    const double kappa[] = {0.5, 4.0, 200.0};
    int uncapped_nonzero = 0;
    int capped = 0;
    for (int k = 0; k < spec.run.steps(); ++k) {
      const sim::MarketState& m = t.market[static_cast<std::size_t>(k)];  // before step k: S_k, F_k
      for (int p = 0; p < spec.run.paths; ++p) {
        for (int i = 0; i < 6; ++i) {
          const double x = t.wealth[static_cast<std::size_t>(k)][1](i, p);
          const double want = expected_amount(kappa[i % 3], 1.5, m.fundamental(p, 0), m.price(p, 0), x);
          CHECK(t.amount[static_cast<std::size_t>(k)][1](i, p) == doctest::Approx(want).epsilon(1e-14));
          if (i % 3 == 2 && k > 0) capped += std::abs(std::abs(want) - 1.5 * x) < 1e-12 ? 1 : 0;
          if (i % 3 == 0 && k > 0) uncapped_nonzero += std::abs(want) > 1e-6 ? 1 : 0;
        }
      }
    }
    // The test exercised both sides of the cap and a real mispricing (step 0's is 0: S_0 = F_0).
    CHECK(capped > 0);
    CHECK(uncapped_nonzero > 0);
    for (int p = 0; p < spec.run.paths; ++p) CHECK(t.amount[0][1].col(p).isZero());
  }

  TEST_CASE("in the exogenous market the fundamental is the price: nothing is held") {
    sim::ScenarioSpec spec = market_with_fundamentalists();
    spec.market.impact = {};
    const test::Record t = test::run(spec);
    for (const auto& step : t.amount) CHECK(step[1].isZero());
    CHECK(t.market.back().fundamental.size() == 0);
  }

  TEST_CASE("with two assets each asset's amount follows its own mispricing") {
    sim::ScenarioSpec spec = market_with_fundamentalists(2);
    spec.market.assets = {{"a", 0.07, 0.17, 1.0}, {"b", 0.05, 0.1, 2.0}};
    spec.market.correlation = {1.0, 0.3, 0.3, 1.0};
    spec.market.impact.lambda = {1.0, 0.0, 0.0, 2.0};
    spec.market.impact.depth = {2000.0, 3000.0};
    const test::Record t = test::run(spec);
    const double kappa[] = {0.5, 4.0, 200.0};
    const int paths = spec.run.paths;
    for (int k = 1; k < spec.run.steps(); ++k) {
      const sim::MarketState& m = t.market[static_cast<std::size_t>(k)];
      for (int a = 0; a < 2; ++a) {
        for (int p = 0; p < paths; ++p) {
          for (int i = 0; i < 6; ++i) {
            const double x = t.wealth[static_cast<std::size_t>(k)][1](i, p);
            const double want = expected_amount(kappa[i % 3], 1.5, m.fundamental(p, a), m.price(p, a), x);
            CHECK(t.amount[static_cast<std::size_t>(k)][1](i, a * paths + p) ==
                  doctest::Approx(want).epsilon(1e-14));
          }
        }
      }
    }
    // The two assets are mispriced differently, so the amounts differ.
    CHECK(t.amount.back()[1].leftCols(paths) != t.amount.back()[1].rightCols(paths));
  }

  TEST_CASE(
      "fundamentalists shrink the noise traders' mispricing by about 1 / (1 + lambda kappa W n / depth)") {
    // Linearised (§7.4): ln(S/F) ~ lambda H / depth for the total holding H; the fundamentalists hold
    // -kappa W n ln(S/F), so the mispricing left by the others' holdings is divided by 1 + c,
    // c = lambda kappa W n / depth = 1 x 2 x 10 x 100 / 4000 = 0.5. Constant noise holdings (a
    // proportion of 0.5), one path, over 2 years; the fundamental's shocks are the same in both runs.
    auto spec_with = [](double kappa) {
      sim::ScenarioSpec spec;
      spec.run.paths = 4;
      spec.run.seed = 3;
      spec.run.horizon = 2.0;
      spec.run.steps_per_year = 12;
      spec.market.impact.lambda = {1.0};
      spec.market.impact.depth = {4000.0};
      agents::NoiseParams noise;
      noise.proportion = test::constant(0.5);
      spec.populations.push_back(agents::population_spec("noise", 100, noise, test::constant(10.0)));
      agents::FundamentalistParams fp;
      fp.kappa = test::constant(kappa);
      fp.max_proportion = 10.0;
      spec.populations.push_back(agents::population_spec("fund", 100, fp, test::constant(10.0)));
      return spec;
    };
    const test::Record none = test::run(spec_with(0.0));
    const test::Record some = test::run(spec_with(2.0));
    double gap_none = 0.0;
    double gap_some = 0.0;
    for (std::size_t k = 1; k < none.market.size(); ++k) {
      gap_none += (none.market[k].price.array() / none.market[k].fundamental.array()).log().abs().sum();
      gap_some += (some.market[k].price.array() / some.market[k].fundamental.array()).log().abs().sum();
    }
    CHECK(gap_none > 0.0);
    CHECK(gap_some / gap_none == doctest::Approx(1.0 / 1.5).epsilon(0.1));
  }

  TEST_CASE("the kind is registered under its name, with its keys") {
    CHECK(agents::find_kind("fundamentalist") != nullptr);
    const auto keys = agents::find_kind("fundamentalist")->keys();
    REQUIRE(keys.size() == 2);
    CHECK(keys[0].name == "kappa");
    CHECK(keys[1].name == "max_proportion");
  }
}
