#include <doctest/doctest.h>

#include <cmath>

#include "sim/analysis/investor_types.hpp"

namespace analysis = herdsim::analysis;

TEST_SUITE("analysis.investor_types") {
  // Expected values from numpy/scipy (Student t quantiles, White's HC0 sandwich times n/(n-2)).
  TEST_CASE("mean_interval is the Student-t interval of the finite values") {
    Eigen::VectorXd v(5);
    v << 1, 2, std::nan(""), 3, 4;
    const auto m = analysis::mean_interval(v, 0.95);
    CHECK(m.n == 4);
    CHECK(m.mean == doctest::Approx(2.5));
    CHECK(m.ci_low == doctest::Approx(0.445739743239121).epsilon(1e-12));
    CHECK(m.ci_high == doctest::Approx(4.5542602567608785).epsilon(1e-12));
    CHECK(m.p == doctest::Approx(0.030466291662170977).epsilon(1e-9));
    CHECK(std::isnan(analysis::mean_interval(Eigen::VectorXd::Constant(1, 3.0), 0.95).ci_low));
  }

  TEST_CASE("linear_trend: OLS slope with an HC1 interval and p-value") {
    Eigen::VectorXd x(5);
    Eigen::VectorXd y(5);
    x << 0, 1, 2, 3, 4;
    y << 1, 3, 4, 8, 9;
    const auto t = analysis::linear_trend(x, y, 0.95);
    CHECK(t.n == 5);
    CHECK(t.slope == doctest::Approx(2.1).epsilon(1e-12));
    CHECK(t.ci_low == doctest::Approx(1.6613300497705228).epsilon(1e-10));
    CHECK(t.ci_high == doctest::Approx(2.538669950229479).epsilon(1e-10));
    CHECK(t.p == doctest::Approx(0.0006141125477997205).epsilon(1e-8));
    // One level of x: no slope.
    CHECK(std::isnan(analysis::linear_trend(Eigen::VectorXd::Constant(5, 2.0), y, 0.95).slope));
  }

  TEST_CASE("make_type_table groups agents by level; paired_differences subtracts agent by agent") {
    Eigen::VectorXd score(6);
    score << 0, 0, 5, 5, 10, 10;
    const analysis::AgentMeasure mse{"decision_mse_pp", "pp^2",
                                     (Eigen::VectorXd(6) << 0.0, 0.0, 1.0, 3.0, 4.0, 6.0).finished()};
    const auto t = analysis::make_type_table("score", score, {mse}, 0.95);
    REQUIRE(t);
    CHECK(t->levels == std::vector<double>{0, 5, 10});
    CHECK(t->agents == std::vector<int>{2, 2, 2});
    CHECK(t->by_level[0][1].mean == doctest::Approx(2.0));
    CHECK(t->by_level[0][2].mean == doctest::Approx(5.0));
    CHECK(t->trends[0].slope == doctest::Approx(0.5));
    CHECK_FALSE(analysis::make_type_table("score", Eigen::VectorXd::Constant(6, 1.0), {mse}, 0.95));

    const analysis::AgentMeasure base{"decision_mse_pp", "pp^2", Eigen::VectorXd::Constant(6, 1.0)};
    const analysis::AgentMeasure other{"sharpe", "", Eigen::VectorXd::Constant(6, 1.0)};
    const auto d = analysis::paired_differences({mse}, {base, other}, 0.95);
    REQUIRE(d.differences.size() == 1);  // only the measures both have
    CHECK(d.differences[0].values[5] == doctest::Approx(5.0));
    CHECK(d.mean[0].mean == doctest::Approx(1.3333333333333333));
  }
}
