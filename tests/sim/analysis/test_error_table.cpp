#include <doctest/doctest.h>

#include <cmath>

#include "sim/analysis/error_table.hpp"
#include "sim/theory/market.hpp"

using namespace herdsim::analysis;

namespace {

/// Per-agent errors e_i = i (amount) and 2 i (pp).
DecisionError errors_of(int m) {
  DecisionError de;
  de.agent_mse_amount = Eigen::VectorXd::LinSpaced(m, 0.0, m - 1.0);
  de.agent_mse_pp = 2.0 * de.agent_mse_amount;
  return de;
}

}  // namespace

TEST_SUITE("analysis.error_table") {
  TEST_CASE("a grid of lottery probabilities by dependence scores: one level per value, cell means") {
    // 2 probabilities x 3 scores, two agents a cell; alphas from the lottery, thetas from the scores.
    const int m = 12;
    Eigen::VectorXd alpha(m), theta(m);
    for (int i = 0; i < m; ++i) {
      alpha[i] = herdsim::theory::alpha_from_lottery_prob(i % 2 == 0 ? 0.4 : 0.7);
      theta[i] = herdsim::theory::theta_from_score((i / 2) % 3 * 5.0);
    }
    ErrorTableAxes axes;
    axes.alpha_as_lottery_prob = true;
    axes.theta_as_score = true;
    const auto t = make_error_table(alpha, theta, errors_of(m), axes);
    REQUIRE(t);
    CHECK(t->row_param == "lottery_prob");
    CHECK(t->col_param == "theta_score");
    CHECK(t->row_values == std::vector<double>{0.4, 0.7});
    CHECK(t->col_values == std::vector<double>{0.0, 5.0, 10.0});
    // Cell (0.4, 0): agents 0 and 6; (0.7, 10): agents 5 and 11.
    CHECK(t->agents(0, 0) == 2);
    CHECK(t->mse_amount(0, 0) == doctest::Approx(3.0));
    CHECK(t->mse_amount(1, 2) == doctest::Approx(8.0));
    CHECK(t->mse_proportion_pp(1, 2) == doctest::Approx(16.0));
  }

  TEST_CASE("many distinct alphas: equal-count bins labelled by their mean; one cell: no table") {
    const int m = 60;
    const Eigen::VectorXd alpha = Eigen::VectorXd::LinSpaced(m, 0.1, 0.69);
    const auto t = make_error_table(alpha, Eigen::VectorXd(), errors_of(m), {});
    REQUIRE(t);
    CHECK(t->row_param == "alpha");
    CHECK(t->col_param == "theta");
    REQUIRE(t->row_values.size() == static_cast<std::size_t>(kErrorTableBins));
    CHECK(t->row_values[0] == doctest::Approx(alpha.head(10).mean()));
    CHECK(t->col_values == std::vector<double>{0.0});
    CHECK(t->agents.sum() == m);
    CHECK(t->mse_amount(5, 0) == doctest::Approx(54.5));
    CHECK_FALSE(make_error_table(Eigen::VectorXd::Constant(4, 0.2), Eigen::VectorXd(), errors_of(4), {}));
  }
}
