#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "sim/market/exogenous_gbm.hpp"

using namespace herdsim;

namespace {

sim::ScenarioSpec gbm_spec(sim::WealthUpdate update) {
  sim::ScenarioSpec spec;
  spec.run.paths = 5;
  spec.run.seed = 11;
  spec.run.steps_per_year = 4;  // dt = 0.25
  spec.run.wealth_update = update;
  spec.market.price0 = 2.0;
  return spec;
}

}  // namespace

TEST_SUITE("sim.exogenous_gbm") {
  TEST_CASE("initialize: S_0 on every path, one asset, no return or shock yet") {
    sim::ExogenousGbm market(gbm_spec(sim::WealthUpdate::arithmetic));
    sim::MarketState state;
    market.initialize(state);
    CHECK(state.assets() == 1);
    CHECK(state.price.rows() == 5);
    CHECK((state.price.array() == 2.0).all());
    CHECK((state.simple_return.array() == 0.0).all());
    CHECK((state.shock.array() == 0.0).all());
  }

  TEST_CASE("move: one market-stream shock per (path, step); price, return and excess of docs/theory.md §1") {
    for (const auto update : {sim::WealthUpdate::arithmetic, sim::WealthUpdate::lognormal}) {
      CAPTURE(update == sim::WealthUpdate::lognormal);
      const sim::ScenarioSpec spec = gbm_spec(update);
      sim::ExogenousGbm market(spec);
      sim::MarketState state;
      market.initialize(state);
      const sim::CounterRng rng(spec.run.seed);
      const double dt = 0.25, mu = 0.07, r = 0.04, sigma = 0.17;
      std::vector<double> log_price(5, std::log(2.0));
      for (int k = 0; k < 6; ++k) {
        market.move(k, {}, state);
        const sim::Settlement& s = market.settlement();
        CHECK(s.deposit_growth ==
              doctest::Approx(update == sim::WealthUpdate::arithmetic ? 1.0 + r * dt : std::exp(r * dt))
                  .epsilon(1e-15));
        for (int p = 0; p < 5; ++p) {
          const double eps = rng.normal(sim::Stream::market, static_cast<std::uint64_t>(p),
                                        static_cast<std::uint64_t>(k), 0);
          CHECK(state.shock(p, 0) == eps);
          const double growth = update == sim::WealthUpdate::arithmetic
                                    ? 1.0 + mu * dt + sigma * std::sqrt(dt) * eps
                                    : std::exp((mu - 0.5 * sigma * sigma) * dt + sigma * std::sqrt(dt) * eps);
          log_price[static_cast<std::size_t>(p)] += std::log(growth);
          CHECK(1.0 + state.simple_return(p, 0) == doctest::Approx(growth).epsilon(1e-14));
          CHECK(state.price(p, 0) ==
                doctest::Approx(std::exp(log_price[static_cast<std::size_t>(p)])).epsilon(1e-13));
          // One currency unit in the stock ends with what the deposit would give plus the excess.
          const double excess = update == sim::WealthUpdate::arithmetic
                                    ? (mu - r) * dt + sigma * std::sqrt(dt) * eps
                                    : growth - std::exp(r * dt);
          CHECK(s.excess(p, 0) == doctest::Approx(excess).epsilon(1e-13).scale(1e-3));
        }
      }
    }
  }

  TEST_CASE("exogenous: the decisions passed to move change nothing") {
    const sim::ScenarioSpec spec = gbm_spec(sim::WealthUpdate::lognormal);
    sim::ExogenousGbm bare(spec), watched(spec);
    sim::MarketState a, b;
    bare.initialize(a);
    watched.initialize(b);
    std::vector<sim::PopulationState> populations(1);
    populations[0].count = 3;
    populations[0].amount = Eigen::MatrixXd::Constant(3, 5, 1e6);
    populations[0].previous_amount = Eigen::MatrixXd::Constant(3, 5, -1e6);
    populations[0].wealth = Eigen::MatrixXd::Constant(3, 5, 10.0);
    for (int k = 0; k < 4; ++k) {
      bare.move(k, {}, a);
      watched.move(k, populations, b);
      CHECK(a.price == b.price);
      CHECK(bare.settlement().excess == watched.settlement().excess);
    }
  }
}
