#include <doctest/doctest.h>

#include "sim/market/exogenous_gbm.hpp"
#include "sim/market/market.hpp"

using namespace herdsim;

namespace {

/// `count` agents on `paths` paths holding `assets` assets, with distinct wealth and amounts.
sim::PopulationState holdings(int count, int paths, int assets) {
  sim::PopulationState pop;
  pop.count = count;
  pop.wealth.resize(count, paths);
  pop.amount.resize(count, assets * paths);
  for (int p = 0; p < paths; ++p) {
    for (int i = 0; i < count; ++i) pop.wealth(i, p) = 10.0 + 0.37 * i - 1.3 * p;
  }
  for (int c = 0; c < assets * paths; ++c) {
    for (int i = 0; i < count; ++i) pop.amount(i, c) = 2.0 - 0.11 * i + 0.7 * c;
  }
  return pop;
}

}  // namespace

TEST_SUITE("sim.market") {
  TEST_CASE("settle_agents with one asset is settle_wealth, bit for bit") {
    const int count = 7, paths = 3;
    sim::Settlement s;
    s.deposit_growth = 1.04;
    s.excess.resize(paths, 1);
    s.excess << 0.031, -0.2, 0.1234567;
    sim::PopulationState pop = holdings(count, paths, 1);
    const sim::PopulationState before = pop;
    for (int p = 0; p < paths; ++p) sim::settle_agents(s, p, 0, count, pop);
    for (int p = 0; p < paths; ++p) {
      for (int i = 0; i < count; ++i) {
        CHECK(pop.wealth(i, p) ==
              sim::settle_wealth(before.wealth(i, p), before.amount(i, p), s.deposit_growth, s.excess(p, 0)));
      }
    }
  }

  TEST_CASE("settle_agents with several assets adds P_a e_a in asset order, on its agents only") {
    const int count = 9, paths = 2, assets = 3;
    sim::Settlement s;
    s.deposit_growth = 1.01;
    s.excess.resize(paths, assets);
    s.excess << 0.05, -0.03, 0.2, -0.1, 0.07, 0.011;
    sim::PopulationState pop = holdings(count, paths, assets);
    const sim::PopulationState before = pop;
    for (int p = 0; p < paths; ++p) sim::settle_agents(s, p, 2, 7, pop);
    for (int p = 0; p < paths; ++p) {
      for (int i = 0; i < count; ++i) {
        double x = before.wealth(i, p);
        if (i >= 2 && i < 7) {
          x = x * s.deposit_growth + before.amount(i, p) * s.excess(p, 0);  // asset 0: column p
          x = x + before.amount(i, paths + p) * s.excess(p, 1);             // asset 1: column paths + p
          x = x + before.amount(i, 2 * paths + p) * s.excess(p, 2);
        }
        CAPTURE(i);
        CAPTURE(p);
        CHECK(pop.wealth(i, p) == x);
      }
    }
    CHECK(pop.amount == before.amount);
  }

  TEST_CASE("make_market builds the spec's model: today the exogenous GBM") {
    sim::ScenarioSpec spec;
    spec.run.paths = 4;
    spec.market.model = sim::MarketModel::exogenous_gbm;
    const auto market = sim::make_market(spec);
    REQUIRE(market != nullptr);
    CHECK(dynamic_cast<const sim::ExogenousGbm*>(market.get()) != nullptr);
    CHECK(market->assets() == 1);
    CHECK(market->exogenous());
  }
}
