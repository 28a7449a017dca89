#include <doctest/doctest.h>

#include "sim/market/market_step.hpp"
#include "sim/theory/merton.hpp"
#include "support/golden.hpp"

using namespace herdsim;

TEST_SUITE("sim.market_step") {
  TEST_CASE("wealth_step.csv: the paper's arithmetic update with fixed shocks, 1e-12 relative") {
    const sim::StepCoefficients c(sim::MarketSpec{}, 1.0, sim::WealthUpdate::arithmetic);
    const theory::Schedule s(theory::Market{}, 10.0, theory::TimeModel::continuous());
    const auto rows = test::read_golden("wealth_step.csv");
    REQUIRE(rows.size() == 10);
    double wealth = 10.0;
    for (const auto& row : rows) {
      const double t = row.num("t");
      const double amount = theory::merton_amount(s, 0.2, t);  // the leader's continuous Merton amount
      CHECK(test::close_rel(wealth, row.num("wealth_t"), 1e-12));
      CHECK(test::close_rel(amount, row.num("invest_amount_t"), 1e-12));
      wealth = sim::settle_wealth(wealth, amount, c.deposit_growth, c.excess_return(row.num("shock_eps_t")));
      CHECK(test::close_rel(wealth, row.num("wealth_t_plus_1"), 1e-12));
    }
  }

  TEST_CASE("the price moves by the same shock: S' = S (1 + mu dt + sigma sqrt(dt) eps)") {
    const sim::StepCoefficients c(sim::MarketSpec{}, 0.25, sim::WealthUpdate::arithmetic);
    CHECK(c.stock_return(0.7) == doctest::Approx(0.07 * 0.25 + 0.17 * 0.5 * 0.7).epsilon(1e-15));
    // Holding everything in the stock earns exactly the stock's return.
    CHECK(sim::settle_wealth(2.0, 2.0, c.deposit_growth, c.excess_return(0.7)) ==
          doctest::Approx(2.0 * (1.0 + c.stock_return(0.7))).epsilon(1e-15));
  }

  TEST_CASE("lognormal update: exact GBM price, all-in-stock wealth follows the price") {
    const sim::StepCoefficients c(sim::MarketSpec{}, 1.0, sim::WealthUpdate::lognormal);
    const double eps = -0.4;
    const double growth = std::exp((0.07 - 0.5 * 0.17 * 0.17) + 0.17 * eps);
    CHECK(1.0 + c.stock_return(eps) == doctest::Approx(growth).epsilon(1e-15));
    CHECK(sim::settle_wealth(3.0, 3.0, c.deposit_growth, c.excess_return(eps)) ==
          doctest::Approx(3.0 * growth).epsilon(1e-14));
    CHECK(sim::settle_wealth(3.0, 0.0, c.deposit_growth, c.excess_return(eps)) ==
          doctest::Approx(3.0 * std::exp(0.04)).epsilon(1e-15));
  }
}
