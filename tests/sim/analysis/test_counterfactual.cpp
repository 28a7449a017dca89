#include <doctest/doctest.h>

#include <cmath>

#include "sim/analysis/counterfactual.hpp"

namespace analysis = herdsim::analysis;

TEST_SUITE("analysis.counterfactual") {
  TEST_CASE("counterfactual rows settle the Merton amounts on the recorded returns") {
    // Two agents, two paths, two steps; G = 1.04.
    Eigen::VectorXd x0(2);
    x0 << 10.0, 20.0;
    Eigen::MatrixXd merton(2, 2);
    merton << 1.0, 2.0, 3.0, 4.0;
    Eigen::MatrixXd ret(2, 2);  // paths x steps
    ret << 0.10, -0.05, 0.00, 0.20;
    analysis::CounterfactualRows rows(x0, merton, ret, 1.04);
    Eigen::MatrixXd w;
    rows.wealth_row(2, w);
    // Agent 0, path 0: 10 * 1.04 + 1 * (0.10 - 0.04) = 10.46; then 10.46 * 1.04 + 2 * (-0.05 - 0.04).
    CHECK(w(0, 0) == doctest::Approx(10.46 * 1.04 + 2.0 * -0.09));
    // Agent 1, path 1: 20 * 1.04 + 3 * (-0.04) = 20.68; then 20.68 * 1.04 + 4 * 0.16.
    CHECK(w(1, 1) == doctest::Approx(20.68 * 1.04 + 4.0 * 0.16));
    rows.wealth_row(0, w);  // an earlier row restarts from wealth0
    CHECK(w(1, 0) == doctest::Approx(20.0));
    Eigen::MatrixXd a;
    rows.amount_row(1, a);
    CHECK(a(0, 1) == doctest::Approx(2.0));
    CHECK(a(1, 0) == doctest::Approx(4.0));
  }

  TEST_CASE("attribute_herding: the LSV difference and its verdict") {
    analysis::PopulationMetrics pop;
    analysis::PopulationMetrics cf;
    pop.lsv.emplace();
    cf.lsv.emplace();
    pop.lsv->overall.mean_h = 0.30;
    pop.lsv->overall.std_err = 0.01;
    cf.lsv->overall.mean_h = 0.10;
    cf.lsv->overall.std_err = 0.01;
    const auto c = analysis::attribute_herding(pop, cf, 0.05);
    REQUIRE(c.attributed.size() == 1);
    CHECK(c.attributed[0].difference == doctest::Approx(0.20));
    CHECK(c.attributed[0].se == doctest::Approx(std::sqrt(2.0) * 0.01));
    CHECK(c.attributed[0].verdict.find("more correlated trading") != std::string::npos);
    cf.lsv->overall.mean_h = 0.295;
    CHECK(
        analysis::attribute_herding(pop, cf, 0.05).attributed[0].verdict.find("no significant difference") ==
        0);
  }
}
