#include <doctest/doctest.h>

#include <limits>
#include <string>

#include "sim/error.hpp"
#include "sim/theory/market.hpp"
#include "support/golden.hpp"

using namespace herdsim::theory;

TEST_SUITE("theory.market") {
  TEST_CASE("alpha mapping matches alpha_mapping.csv to 1e-12 absolute, both conventions") {
    const auto rows = herdsim::test::read_golden("alpha_mapping.csv");
    REQUIRE(rows.size() == 14);  // 13 probabilities + the leader
    for (const auto& row : rows) {
      if (row.str("lottery_prob") == "leader") {  // alpha 0.2 -> p under each convention
        CHECK(std::abs(lottery_prob_from_alpha(0.2, lottery_win10_sure3) -
                       row.num("prob_check_win10_sure3")) <= 1e-12);
        CHECK(std::abs(lottery_prob_from_alpha(0.2, lottery_win20_sure6) -
                       row.num("prob_check_win20_sure6")) <= 1e-12);
        continue;
      }
      const double p = row.num("lottery_prob");
      const double a10 = row.num("alpha_win10_sure3");
      const double a20 = row.num("alpha_win20_sure6");
      CAPTURE(p);
      CHECK(std::abs(alpha_from_lottery_prob(p, lottery_win10_sure3) - a10) <= 1e-12);
      CHECK(std::abs(alpha_from_lottery_prob(p, lottery_win20_sure6) - a20) <= 1e-12);
      CHECK(std::abs(lottery_prob_from_alpha(a10, lottery_win10_sure3) - p) <= 1e-12);
      CHECK(std::abs(lottery_prob_from_alpha(a20, lottery_win20_sure6) - p) <= 1e-12);
    }
  }

  TEST_CASE("the leader's alpha 0.2 corresponds to p = 0.5218") {
    CHECK(lottery_prob_from_alpha(0.2) == doctest::Approx(0.5218).epsilon(1e-4));
    CHECK(alpha_from_lottery_prob(lottery_prob_from_alpha(0.2)) == doctest::Approx(0.2).epsilon(1e-13));
  }

  TEST_CASE("risk-neutral and risk-loving probabilities map to alpha <= 0") {
    CHECK(alpha_from_lottery_prob(0.3) == 0.0);
    CHECK(alpha_from_lottery_prob(0.2) < 0.0);
    CHECK(lottery_prob_from_alpha(alpha_from_lottery_prob(0.2)) == doctest::Approx(0.2).epsilon(1e-13));
  }

  TEST_CASE("probabilities outside (0, 1) are rejected") {
    CHECK_THROWS_AS((void)alpha_from_lottery_prob(1.0), herdsim::InputError);
    CHECK_THROWS_AS((void)alpha_from_lottery_prob(0.0), herdsim::InputError);
    CHECK_THROWS_AS((void)alpha_from_lottery_prob(-0.5), herdsim::InputError);
  }

  TEST_CASE("theta score mapping") {
    CHECK(theta_from_score(10) == doctest::Approx(1e-7));
    CHECK(score_from_theta(3e-8) == doctest::Approx(3.0));
  }

  TEST_CASE("the model's limits: market_problems and alpha_problem name the key and the reason") {
    CHECK(market_problems(Market{}, 10.0).empty());
    CHECK(market_problems(Market{0.07, 0.04, 3.0}, 10.0).empty());        // sigma^2 T = 90
    const auto sigma = market_problems(Market{0.07, 0.04, 1e308}, 10.0);  // sigma^2 overflows
    REQUIRE(sigma.size() == 1);
    CHECK(sigma[0].key == "sigma");
    const auto tiny = market_problems(Market{0.07, 0.04, 1e-200}, 10.0);
    REQUIRE(tiny.size() == 1);
    CHECK(tiny[0].key == "sigma");
    const auto r = market_problems(Market{0.07, 7.25e7, 0.17}, 10.0);  // used to spin for minutes
    REQUIRE(r.size() == 1);
    CHECK(r[0].key == "r");
    CHECK(r[0].message.find("r * horizon") != std::string::npos);
    CHECK(market_problems(Market{-20.0, 0.04, 0.17}, 10.0).at(0).key == "mu");
    CHECK(alpha_problem(0.2).empty());
    CHECK(alpha_problem(limits::min_alpha).empty());
    CHECK(alpha_problem(limits::max_alpha).empty());
    CHECK(alpha_problem(1e300).find("outside") != std::string::npos);
    CHECK_FALSE(alpha_problem(1e-300).empty());
    CHECK_FALSE(alpha_problem(std::numeric_limits<double>::quiet_NaN()).empty());
  }
}
