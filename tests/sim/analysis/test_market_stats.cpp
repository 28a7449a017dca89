// Market statistics against results that need none of herdsim's simulation code (issue 13 item 8): the
// samples come from the standard library's generator, the expected values from closed forms.
#include <doctest/doctest.h>

#include <cmath>
#include <numbers>
#include <random>
#include <vector>

#include "sim/analysis/market_stats.hpp"
#include "sim/analysis/run_metrics.hpp"
#include "sim/error.hpp"
#include "sim/theory/schedule.hpp"

using namespace herdsim::analysis;

namespace {

/// GBM log returns (mu − σ²/2) dt + σ √dt z, one column per path, from mt19937_64.
Eigen::MatrixXd gbm_log_returns(int periods, int paths, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> z(0.0, 1.0);
  const double mu = 0.07, sigma = 0.17, dt = 1.0 / 12.0;
  Eigen::MatrixXd r(periods, paths);
  for (Eigen::Index j = 0; j < r.cols(); ++j)
    for (Eigen::Index i = 0; i < r.rows(); ++i)
      r(i, j) = (mu - 0.5 * sigma * sigma) * dt + sigma * std::sqrt(dt) * z(rng);
  return r;
}

}  // namespace

TEST_SUITE("market_stats") {
  TEST_CASE(
      "GBM returns (impact 0): excess kurtosis about 0, Hill index about 6 at the 5 % tail (n = 8000)") {
    const Eigen::MatrixXd r = gbm_log_returns(8000, 1, 2026);
    const StylisedFacts f = stylised_facts(r);
    CHECK(f.observations == 8000);
    // sd of the kurtosis estimate of a normal sample: sqrt(24 / n) = 0.055.
    CHECK(std::abs(f.excess_kurtosis) < 4.0 * std::sqrt(24.0 / 8000.0));
    REQUIRE(f.hill.size() == 2);
    CHECK(f.hill[0].k == 400);
    CHECK(f.hill[1].k == 200);
    // Normal data: the Hill estimate at q = 0.05 of n = 8000 centres on 6.0 (sd 0.28 over samples), at
    // q = 0.025 on 7.3 (sd 0.47): a thin tail read through a power law.
    CHECK(f.hill[0].index == doctest::Approx(6.0).epsilon(0.17));
    CHECK(f.hill[1].index == doctest::Approx(7.3).epsilon(0.2));
    CHECK(f.hill[0].se == doctest::Approx(f.hill[0].index / 20.0).epsilon(1e-12));
    // Independent returns: about 1 lag in 20 outside the 95 % band, never many.
    for (const Autocorrelation* a : {&f.acf_r, &f.acf_abs, &f.acf_squared}) {
      CHECK(a->acf.size() == 20);
      CHECK(a->band == doctest::Approx(1.96 / std::sqrt(8000.0)).epsilon(1e-12));
      CHECK((a->acf.array().abs() > a->band).count() <= 4);
    }
  }

  TEST_CASE("a Student-t(3) sample has a fat tail: Hill index near 3, large excess kurtosis") {
    std::mt19937_64 rng(7);
    std::student_t_distribution<double> t3(3.0);
    Eigen::VectorXd x(20000);
    for (auto& v : x) v = t3(rng);
    const HillEstimate h = hill_tail_index(x, 0.025);
    CHECK(h.index == doctest::Approx(3.0).epsilon(0.25));
    CHECK(excess_kurtosis(x) > 2.0);
  }

  TEST_CASE("pooled autocorrelation of an AR(1) panel recovers its coefficient; lags never cross paths") {
    std::mt19937_64 rng(11);
    std::normal_distribution<double> z(0.0, 1.0);
    const double phi = -0.3;
    Eigen::MatrixXd x(500, 40);
    for (Eigen::Index p = 0; p < x.cols(); ++p) {
      double prev = z(rng) / std::sqrt(1.0 - phi * phi);
      for (Eigen::Index t = 0; t < x.rows(); ++t) x(t, p) = prev = phi * prev + z(rng);
    }
    const Autocorrelation a = autocorrelation(x, 3);
    // sd of rho(1) about sqrt((1 - phi^2) / n) = 0.0067 at n = 20000.
    CHECK(std::abs(a.acf[0] - phi) < 4.0 * std::sqrt((1.0 - phi * phi) / 20000.0));
    CHECK(std::abs(a.acf[1] - phi * phi) < 0.03);
    // Paths that are each constant but differ: every within-path product is the same sign, and a lag that
    // crossed a path boundary would pair unlike values. Two paths: +1 and -1.
    Eigen::MatrixXd two(5, 2);
    two.col(0).setConstant(1.0);
    two.col(1).setConstant(-1.0);
    CHECK(autocorrelation(two, 1).acf[0] == doctest::Approx(0.8).epsilon(1e-12));  // 8 products of 10
  }

  TEST_CASE(
      "identical betas, iid idiosyncratic noise: E[CSAD] = s_e sqrt(2/pi) sqrt(1 - 1/N), CCK and CH 0") {
    // R_it = beta f_t + e_it: the cross-section sees only e, whose mean absolute deviation from its
    // cross-sectional mean is s_e sqrt(2/pi) sqrt(1 - 1/N) whatever f does.
    const int n_assets = 10, periods = 1500, paths = 4;
    const double s_e = 0.02, beta = 1.3;
    std::mt19937_64 rng(99);
    std::normal_distribution<double> z(0.0, 1.0);
    std::vector<Eigen::MatrixXd> returns(n_assets, Eigen::MatrixXd(periods, paths));
    for (int p = 0; p < paths; ++p)
      for (int t = 0; t < periods; ++t) {
        const double f = 0.001 + 0.04 * z(rng);
        for (int a = 0; a < n_assets; ++a)
          returns[static_cast<std::size_t>(a)](t, p) = beta * f + s_e * z(rng);
      }
    const AssetHerding h = herding_across_assets(returns);
    CHECK(h.assets == n_assets);
    CHECK(h.observations == periods * paths);
    const double expected = s_e * std::sqrt(2.0 / std::numbers::pi) * std::sqrt(1.0 - 1.0 / n_assets);
    const Eigen::VectorXd& csad = h.series.csad;
    const double mean = csad.mean();
    const double sd = std::sqrt((csad.array() - mean).square().mean());
    CHECK(std::abs(mean - expected) < 4.0 * sd / std::sqrt(static_cast<double>(csad.size())));
    // CCK: CSAD does not depend on R_m, so gamma1 and gamma2 are 0 (two-sided, at 0.1 %), and the
    // constant is E[CSAD].
    REQUIRE(h.cck.fit);
    CHECK(h.cck.uses_hac);
    CHECK(h.cck.fit->p_hac[1] > 0.001);
    CHECK(h.cck.fit->p_hac[2] > 0.001);
    CHECK(h.cck.fit->coef[0] == doctest::Approx(expected).epsilon(0.05));
    CHECK_FALSE(h.cck.herding);
    REQUIRE(h.ch.size() == 2);
    CHECK(h.tail_fractions == std::vector<double>{0.01, 0.05});
    for (const HerdingRegression& ch : h.ch) {
      REQUIRE(ch.fit);
      CHECK(ch.fit->p_hac[1] > 0.001);
      CHECK(ch.fit->p_hac[2] > 0.001);
    }
  }

  TEST_CASE(
      "herding across assets: a crowd that follows the market on extreme days gives a negative gamma2") {
    // Idiosyncratic dispersion concave in |f| (it stops growing on extreme days): the CCK signature.
    std::mt19937_64 rng(5);
    std::normal_distribution<double> z(0.0, 1.0);
    std::vector<Eigen::MatrixXd> returns(30, Eigen::MatrixXd(10000, 1));
    for (int t = 0; t < 10000; ++t) {
      const double f = 0.02 * z(rng);
      const double s = 0.03 + 0.2 * std::abs(f) - 3.0 * f * f;  // > 0 for |f| < 0.077, 3.8 sd
      for (auto& r : returns) r(t, 0) = f + s * z(rng);
    }
    const AssetHerding h = herding_across_assets(returns);
    CHECK(h.cck.herding);
    CHECK(h.cck.fit->coef[2] < 0.0);
  }

  TEST_CASE("mispricing summary and episodes follow the documented rule") {
    Eigen::MatrixXd m(8, 2);
    m.col(0) << 0.0, 0.2, 0.3, 0.15, 0.0, -0.2, -0.25, 0.0;      // a 3-row bubble, a 2-row crash
    m.col(1) << -0.11, -0.12, -0.5, -0.2, 0.11, 0.12, 0.0, 0.0;  // a 4-row crash, a 2-row bubble
    const MispricingSummary s = mispricing_summary(m);
    CHECK(s.observations == 16);
    CHECK(s.max_abs == doctest::Approx(0.5).epsilon(1e-15));
    CHECK(s.mean == doctest::Approx(m.mean()).epsilon(1e-15));
    const EpisodeSummary e = find_episodes(m, {0.1, 3});
    REQUIRE(e.bubbles.size() == 1);
    CHECK(e.bubbles[0].path == 0);
    CHECK(e.bubbles[0].start_row == 1);
    CHECK(e.bubbles[0].rows == 3);
    CHECK(e.bubbles[0].peak == doctest::Approx(0.3).epsilon(1e-15));
    REQUIRE(e.crashes.size() == 1);
    CHECK(e.crashes[0].path == 1);
    CHECK(e.crashes[0].rows == 4);
    CHECK(e.crashes[0].peak == doctest::Approx(-0.5).epsilon(1e-15));
    CHECK(e.bubble_fraction == doctest::Approx(3.0 / 16.0).epsilon(1e-15));
    CHECK(e.crash_fraction == doctest::Approx(4.0 / 16.0).epsilon(1e-15));
    const EpisodeSummary e2 = find_episodes(m, {0.1, 2});
    CHECK(e2.bubbles.size() == 2);
    CHECK(e2.crashes.size() == 2);
    CHECK(e2.bubble_mean_rows == doctest::Approx(2.5).epsilon(1e-15));
    CHECK(std::isnan(find_episodes(m, {1.0, 1}).bubble_mean_rows));
  }

  TEST_CASE("the N-asset plan CE: one asset is the one-asset CE; two assets the forward recursion") {
    const herdsim::theory::Market market{0.07, 0.04, 0.17};
    const herdsim::theory::Schedule schedule(market, 10.0, herdsim::theory::TimeModel::discrete(4));
    Eigen::VectorXd plan(40);
    for (int k = 0; k < 40; ++k) plan[k] = 3.0 + 0.05 * k;
    const double one = plan_certainty_equivalent_assets(plan.transpose(), Eigen::VectorXd::Constant(1, 0.03),
                                                        Eigen::MatrixXd::Constant(1, 1, 0.17 * 0.17),
                                                        1.0 + 0.04 * 0.25, 0.25, 12.0, 0.3);
    CHECK(one == doctest::Approx(plan_certainty_equivalent(schedule, plan, 12.0, 0.3)).epsilon(1e-12));
    // Two assets: X <- X G + P.v dt, Var <- Var G^2 + P' Sigma P dt, step by step.
    Eigen::MatrixXd plan2(2, 40);
    plan2.row(0) = plan.transpose();
    plan2.row(1) = -0.5 * plan.transpose();
    Eigen::Vector2d v(0.03, 0.01);
    Eigen::Matrix2d cov;
    cov << 0.0289, 0.3 * 0.17 * 0.06, 0.3 * 0.17 * 0.06, 0.0036;
    const double g = 1.01;
    double mean = 12.0, var = 0.0;
    for (int k = 0; k < 40; ++k) {
      mean = mean * g + plan2.col(k).dot(v) * 0.25;
      var = var * g * g + plan2.col(k).dot(cov * plan2.col(k)) * 0.25;
    }
    CHECK(plan_certainty_equivalent_assets(plan2, v, cov, g, 0.25, 12.0, 0.3) ==
          doctest::Approx(mean - 0.15 * var).epsilon(1e-12));
  }

  TEST_CASE("bad input: one clear InputError") {
    const Eigen::VectorXd x = Eigen::VectorXd::LinSpaced(30, 0.0, 1.0);
    CHECK_THROWS_WITH_AS((void)hill_tail_index(x, 0.6), doctest::Contains("(0, 0.5)"), herdsim::InputError);
    CHECK_THROWS_WITH_AS((void)hill_tail_index(x, 0.05), doctest::Contains("need 2"), herdsim::InputError);
    CHECK_THROWS_WITH_AS((void)autocorrelation(Eigen::MatrixXd::Ones(5, 1), 20),
                         doctest::Contains("need at least 22"), herdsim::InputError);
    CHECK_THROWS_WITH_AS((void)find_episodes(Eigen::MatrixXd::Zero(3, 1), {0.0, 1}),
                         doctest::Contains("threshold"), herdsim::InputError);
    CHECK_THROWS_WITH_AS((void)herding_across_assets({Eigen::MatrixXd::Zero(20, 1)}),
                         doctest::Contains("need at least 2"), herdsim::InputError);
    CHECK(std::isnan(log_returns(Eigen::MatrixXd::Constant(1, 1, -1.0))(0, 0)));
    CHECK(log_returns(Eigen::MatrixXd::Constant(1, 1, 0.1))(0, 0) ==
          doctest::Approx(std::log(1.1)).epsilon(1e-15));
  }
}
