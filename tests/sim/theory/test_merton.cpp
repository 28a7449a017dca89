#include <doctest/doctest.h>

#include "sim/error.hpp"
#include "sim/theory/market.hpp"
#include "sim/theory/merton.hpp"
#include "support/golden.hpp"

using namespace herdsim::theory;
using herdsim::test::close_rel;

TEST_SUITE("theory.merton") {
  TEST_CASE("merton.csv: continuous and exact annual-step amounts, 1e-12 relative") {
    const Schedule continuous(Market{}, 10.0, TimeModel::continuous());
    const Schedule annual(Market{}, 10.0, TimeModel::annual());
    const auto rows = herdsim::test::read_golden("merton.csv");
    REQUIRE(rows.size() == 220);
    for (const auto& row : rows) {
      const double alpha = row.num("alpha");
      const double t = row.num("t");
      CAPTURE(row.str("alpha_label"));
      CAPTURE(t);
      CHECK(close_rel(merton_amount(continuous, alpha, t), row.num("merton_amount"), 1e-12));
      CHECK(close_rel(merton_amount(continuous, alpha, 10.0), row.num("merton_amount_at_T"), 1e-12));
      if (t < 10.0)
        CHECK(close_rel(merton_amount(annual, alpha, t), row.num("merton_discrete_amount"), 1e-12));
    }
  }

  TEST_CASE("the paper's leader: 3.47917 at t=0, 3.62116 at t=1, 5.19031 at t=10, annual k=0 3.64664") {
    const Schedule s(Market{}, 10.0, TimeModel::continuous());
    CHECK(merton_amount(s, 0.2, 0.0) == doctest::Approx(3.47917).epsilon(2e-6));
    CHECK(merton_amount(s, 0.2, 1.0) == doctest::Approx(3.62116).epsilon(2e-6));
    CHECK(merton_amount(s, 0.2, 10.0) == doctest::Approx(5.19031).epsilon(2e-6));
    const Schedule a(Market{}, 10.0, TimeModel::annual());
    CHECK(merton_amount(a, 0.2, 0.0) == doctest::Approx(3.64664).epsilon(2e-6));
  }

  TEST_CASE("merton_amounts: the agents x decisions table of merton_amount, in both time models") {
    Eigen::VectorXd alpha(3);
    alpha << 0.05, 0.2, 1.3;
    for (const TimeModel tm : {TimeModel::continuous(), TimeModel::discrete(4)}) {
      const Schedule s(Market{}, 10.0, tm);
      const Eigen::MatrixXd table = merton_amounts(s, alpha, 40, 0.25);
      REQUIRE(table.rows() == 3);
      REQUIRE(table.cols() == 40);
      for (int i = 0; i < 3; ++i)
        for (int k = 0; k < 40; ++k)
          CHECK(close_rel(table(i, k), merton_amount(s, alpha[i], k * 0.25), 1e-15));
    }
  }

  TEST_CASE("merton_alpha_factor: an N-asset Merton holding of asset j is the one-asset path of alpha c_j") {
    // One asset: exactly 1, so that alpha * factor is alpha bit for bit.
    CHECK(merton_alpha_factor(Eigen::MatrixXd::Constant(1, 1, 0.0289), Eigen::VectorXd::Constant(1, 0.03),
                              0) == 1.0);
    // Three correlated assets (the third with a negative excess return and a negative holding): in each
    // asset's one-asset market, the Merton amount of alpha c_j is the vector form's component j, at every t
    // and in both time models.
    const Eigen::Vector3d sigma(0.17, 0.06, 0.20);
    Eigen::Matrix3d corr;
    corr << 1.0, 0.3, -0.2, 0.3, 1.0, 0.1, -0.2, 0.1, 1.0;
    const Eigen::MatrixXd cov = sigma.asDiagonal() * corr * sigma.asDiagonal();
    const Eigen::Vector3d excess(0.03, 0.005, -0.01);
    const double r = 0.04;
    Eigen::VectorXd alpha(1);
    alpha << 0.3;
    for (const TimeModel tm : {TimeModel::continuous(), TimeModel::discrete(4)}) {
      const Eigen::MatrixXd vector_form =
          merton_amounts(Schedule(Market{0.07, r, 0.17}, 5.0, tm), cov, excess, alpha, 20, 0.25);
      for (int j = 0; j < 3; ++j) {
        const double c = merton_alpha_factor(cov, excess, j);
        CAPTURE(j);
        REQUIRE(c > 0.0);
        const Schedule one(Market{r + excess[j], r, sigma[j]}, 5.0, tm);
        for (int k = 0; k < 20; ++k)
          CHECK(close_rel(merton_amount(one, alpha[0] * c, k * 0.25), vector_form(0, j * 20 + k), 1e-13));
      }
    }
    // A holding against the excess return (correlation 0.9): no positive factor.
    Eigen::Matrix2d hedged;
    hedged << 0.0289, 0.9 * 0.0289, 0.9 * 0.0289, 0.0289;
    CHECK(merton_alpha_factor(hedged, Eigen::Vector2d(0.03, 0.005), 1) < 0.0);
  }

  TEST_CASE("ln H is minimal at the Merton path and equals ln eta0 there") {
    for (const TimeModel tm : {TimeModel::continuous(), TimeModel::annual(), TimeModel::discrete(12)}) {
      const Schedule s(Market{}, 10.0, tm);
      const double alpha = 0.3;
      const double at_merton = ln_h(s, alpha, 10.0, [&](double t) { return merton_amount(s, alpha, t); });
      CHECK(at_merton == doctest::Approx(ln_eta0(s, alpha, 10.0)).epsilon(1e-14));
      const double off = ln_h(s, alpha, 10.0, [&](double t) { return 1.1 * merton_amount(s, alpha, t); });
      CHECK(off > at_merton);
    }
  }

  TEST_CASE("ln H in deviation form equals the direct definition") {
    // Direct: -alpha x0 e^{rT} - alpha v Int e^{r(T-s)} P + (alpha^2 sigma^2/2) Int e^{2r(T-s)} P^2,
    // for the constant path P = 2 (integrals in closed form).
    const Market m;
    const Schedule s(m, 10.0, TimeModel::continuous());
    const double alpha = 0.4, x0 = 10.0, p = 2.0, r = m.r, T = 10.0, v = m.excess_return();
    const double i1 = std::expm1(r * T) / r, i2 = std::expm1(2 * r * T) / (2 * r);
    const double direct = -alpha * x0 * std::exp(r * T) - alpha * v * p * i1 +
                          0.5 * alpha * alpha * m.sigma * m.sigma * p * p * i2;
    CHECK(ln_h(s, alpha, x0, [&](double) { return p; }) == doctest::Approx(direct).epsilon(1e-13));
  }

  TEST_CASE("wealth moments: constant amount in continuous time and discrete steps") {
    const Market m;
    const Schedule s(m, 10.0, TimeModel::continuous());
    const double r = m.r, v = m.excess_return(), t = 7.0;
    const auto mom = wealth_moments(
        s, 10.0, [](double) { return 2.0; }, t);
    CHECK(mom.mean ==
          doctest::Approx(10.0 * std::exp(r * t) + v * 2.0 * std::expm1(r * t) / r).epsilon(1e-13));
    CHECK(mom.variance ==
          doctest::Approx(m.sigma * m.sigma * 4.0 * std::expm1(2 * r * t) / (2 * r)).epsilon(1e-13));
    const Schedule a(m, 10.0, TimeModel::annual());
    const auto d = wealth_moments(
        a, 10.0, [](double) { return 2.0; }, 2.0);
    CHECK(d.mean == doctest::Approx((10.0 * 1.04 + 2.0 * v) * 1.04 + 2.0 * v).epsilon(1e-14));
    CHECK(d.variance == doctest::Approx(4.0 * m.sigma * m.sigma * (1.04 * 1.04 + 1.0)).epsilon(1e-14));
  }

  TEST_CASE("a discrete horizon that is not a whole number of steps is rejected") {
    CHECK_THROWS_AS(Schedule(Market{}, 10.5, TimeModel::annual()), herdsim::InputError);
    CHECK_NOTHROW(Schedule(Market{}, 10.5, TimeModel::discrete(2)));
    CHECK_THROWS_AS(Schedule(Market{}, -1.0, TimeModel::continuous()), herdsim::InputError);
  }
}
