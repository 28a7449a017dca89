#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <numbers>
#include <random>
#include <string>
#include <vector>

#include "sim/analysis/herding_tests.hpp"
#include "sim/error.hpp"
#include "support/golden.hpp"

using namespace herdsim::analysis;
using herdsim::test::close_rel;

namespace {

bool close_abs(double a, double b, double tol) {
  return std::abs(a - b) <= tol;
}

Eigen::MatrixXd golden_panel() {
  const auto rows = herdsim::test::read_golden("herding_returns_panel.csv");
  Eigen::MatrixXd r(static_cast<Eigen::Index>(rows.size()), 6);
  for (std::size_t t = 0; t < rows.size(); ++t) {
    for (int i = 0; i < 6; ++i) {
      std::string column = "R";  // built in place: GCC 12 -Wrestrict misfires on "R" + std::string&&
      column += std::to_string(i);
      r(static_cast<Eigen::Index>(t), i) = rows[t].num(column);
    }
  }
  return r;
}

// De Moivre's closed form E|X - np| = 2 m C(n, m) p^m q^(n-m+1), m = floor(np) + 1: an independent
// check of the summed adjustment factor (AF = that / n).
double af_de_moivre(int n, double p) {
  const int m = static_cast<int>(std::floor(n * p)) + 1;
  const double ln = std::log(2.0 * m) + std::lgamma(n + 1.0) - std::lgamma(m + 1.0) -
                    std::lgamma(n - m + 1.0) + m * std::log(p) + (n - m + 1.0) * std::log1p(-p);
  return std::exp(ln) / n;
}

// Returns panel T x N; with `herding`, dispersion collapses as R_m^2 grows.
Eigen::MatrixXd simulated_panel(std::mt19937_64& rng, int t_periods, int n_assets, bool herding) {
  std::normal_distribution<double> z(0.0, 1.0);
  const double sd = 0.02;
  Eigen::MatrixXd r(t_periods, n_assets);
  for (int t = 0; t < t_periods; ++t) {
    const double rm = sd * z(rng);
    // Concave in R_m^2 on purpose: the CCK fit has |R_m| as well, which a convex decay would load on.
    const double s = herding ? sd * std::max(0.1, 1.0 - 0.1 * (rm / sd) * (rm / sd)) : sd;
    for (int i = 0; i < n_assets; ++i) r(t, i) = herding ? rm + s * z(rng) : sd * z(rng);
  }
  return r;
}

}  // namespace

TEST_SUITE("analysis.herding_tests") {
  TEST_CASE("lsv_example.csv: AF, H, pbar and side of every row (n_min = 1), 1e-12") {
    const auto rows = herdsim::test::read_golden("lsv_example.csv");
    REQUIRE(rows.size() == 10);
    std::vector<LsvCell> cells;
    for (const auto& row : rows) {
      cells.push_back({static_cast<int>(row.num("period")), row.str("stock").at(0) - 'A',
                       static_cast<int>(row.num("n_buy")), static_cast<int>(row.num("n_sell"))});
    }
    const LsvResult res = lsv(cells, 1);
    REQUIRE(res.cells.size() == rows.size());
    double sum_h = 0.0;
    for (std::size_t i = 0; i < rows.size(); ++i) {
      const auto& c = res.cells[i];
      CAPTURE(i);
      CHECK(c.n == static_cast<int>(rows[i].num("n_trades")));
      CHECK(close_abs(c.p, rows[i].num("p_buy"), 1e-12));
      CHECK(close_abs(c.pbar, rows[i].num("p_bar_period"), 1e-12));
      CHECK(close_abs(c.af, rows[i].num("AF"), 1e-12));
      CHECK(close_abs(c.h, rows[i].num("H_LSV"), 1e-12));
      CHECK(std::string(to_string(c.side)) == rows[i].str("side"));
      CHECK(c.included);
      sum_h += rows[i].num("H_LSV");
    }
    CHECK(res.n_cells == 10);
    CHECK(res.n_buy + res.n_sell == 10);
    CHECK(close_abs(res.mean_h, sum_h / 10.0, 1e-12));
    // With the default n_min = 5 the two-trader cell (period 0, D) and the 4-trader cell drop out.
    const LsvResult res5 = lsv(cells);
    CHECK(res5.n_cells == 8);
    CHECK_FALSE(res5.cells[3].included);
  }

  TEST_CASE("binomial adjustment factor: exact sums, de Moivre's closed form, large-n stability") {
    // Direct sum for small n.
    const int n = 15;
    const double p = 0.37;
    double direct = 0.0, binom = 1.0;
    for (int k = 0; k <= n; ++k) {
      direct += binom * std::pow(p, k) * std::pow(1 - p, n - k) * std::abs(k / double(n) - p);
      binom = binom * (n - k) / (k + 1);
    }
    CHECK(close_rel(lsv_adjustment_factor(n, p), direct, 1e-13));
    CHECK(lsv_adjustment_factor(1, 0.3) == doctest::Approx(2 * 0.3 * 0.7).epsilon(1e-15));
    for (int nn : {10, 1000, 100000}) {
      CAPTURE(nn);
      CHECK(close_rel(lsv_adjustment_factor(nn, 0.3), af_de_moivre(nn, 0.3), 1e-9));
    }
    const double af = lsv_adjustment_factor(100000, 0.3);
    CHECK(std::isfinite(af));
    CHECK(af == doctest::Approx(std::sqrt(2 * 0.3 * 0.7 / (std::numbers::pi * 1e5))).epsilon(1e-3));
    const double af_big = lsv_adjustment_factor(1000000, 0.01);
    CHECK(af_big == doctest::Approx(std::sqrt(2 * 0.01 * 0.99 / (std::numbers::pi * 1e6))).epsilon(1e-2));
    CHECK(lsv_adjustment_factor(7, 0.0) == 0.0);
    CHECK(lsv_adjustment_factor(7, 1.0) == 0.0);
  }

  TEST_CASE("LSV: independent decisions give H ~ 0, correlated decisions give H > 0.1") {
    std::mt19937_64 rng(20240611);
    std::uniform_int_distribution<int> traders(5, 40);
    auto panel = [&](bool correlated) {
      std::vector<LsvCell> cells;
      std::bernoulli_distribution side(0.5);
      for (int t = 0; t < 50; ++t) {
        for (int i = 0; i < 100; ++i) {
          const int n = traders(rng);
          const double p = correlated ? (side(rng) ? 0.9 : 0.1) : 0.5;
          std::binomial_distribution<int> buys(n, p);
          const int b = buys(rng);
          cells.push_back({t, i, b, n - b});
        }
      }
      return lsv(cells);
    };
    const LsvResult indep = panel(false);
    CHECK(indep.n_cells == 5000);
    CAPTURE(indep.mean_h);
    CAPTURE(indep.std_err);
    CHECK(std::abs(indep.mean_h) <= 3.0 * indep.std_err);
    const LsvResult corr = panel(true);
    CHECK(corr.mean_h > 0.1);
    CHECK(corr.buy_mean_h > 0.1);
    CHECK(corr.sell_mean_h > 0.1);
    CHECK(corr.p_value < 1e-6);
  }

  TEST_CASE("LSV input errors") {
    CHECK_THROWS_WITH_AS((void)lsv({{0, 0, -1, 3}}), doctest::Contains(">= 0"), herdsim::InputError);
    CHECK_THROWS_WITH_AS((void)lsv({{0, 0, 1, 3}}, 0), doctest::Contains("n_min"), herdsim::InputError);
    CHECK_THROWS_WITH_AS((void)lsv({{0, 0, 1, 2}}), doctest::Contains("n_min = 5"), herdsim::InputError);
    CHECK_THROWS_WITH_AS((void)lsv({{0, 0, 1, 2}, {0, 0, 3, 3}}), doctest::Contains("more than once"),
                         herdsim::InputError);
  }

  TEST_CASE("herding_returns_panel.csv: R_m, CSSD, CSAD and the 10 % dummies of every row") {
    const auto rows = herdsim::test::read_golden("herding_returns_panel.csv");
    const Eigen::MatrixXd r = golden_panel();
    REQUIRE(r.rows() == 40);
    const DispersionSeries s = cross_sectional_dispersion(r);
    const ExtremeDummies d = extreme_market_dummies(s.market_return, 0.10);
    for (Eigen::Index t = 0; t < r.rows(); ++t) {
      const auto& row = rows[static_cast<std::size_t>(t)];
      CAPTURE(t);
      CHECK(close_rel(s.market_return(t), row.num("R_m_eq"), 1e-10));
      CHECK(close_rel(s.cssd(t), row.num("CSSD"), 1e-10));
      CHECK(close_rel(s.csad(t), row.num("CSAD"), 1e-10));
      CHECK(d.lower(t) == row.num("D_lower10"));
      CHECK(d.upper(t) == row.num("D_upper10"));
    }
    CHECK(d.lower.sum() == 4.0);
    CHECK(d.upper.sum() == 4.0);
  }

  TEST_CASE("herding_regressions.csv: CH and CCK estimates (1e-10) and classical std errors (1e-8)") {
    HerdingOptions opt;
    opt.quantile = 0.10;
    const HerdingTestsResult res = herding_regressions(golden_panel(), opt);
    const auto rows = herdsim::test::read_golden("herding_regressions.csv");
    REQUIRE(rows.size() == 6);
    for (std::size_t i = 0; i < rows.size(); ++i) {
      const bool cck = rows[i].str("model") == "CCK_CSAD";
      const OlsResult& fit = *(cck ? res.cck : res.ch).fit;
      const auto j = static_cast<Eigen::Index>(i % 3);  // const, then the two slopes, per model
      CAPTURE(rows[i].str("model"));
      CAPTURE(rows[i].str("coef"));
      CHECK(close_rel(fit.coef(j), rows[i].num("estimate"), 1e-10));
      CHECK(close_rel(fit.se_ols(j), rows[i].num("std_err_ols"), 1e-8));
    }
    CHECK(res.cck.model == "CCK_CSAD");
    CHECK(res.ch.model == "CH_CSSD");
    CHECK(res.ch.fit->hac_lag == default_newey_west_lag(40));
    CHECK(res.ch.uses_hac);
    // The panel is arbitrary: the CCK gamma2 is positive here, so no herding is reported.
    CHECK_FALSE(res.cck.herding);
    CHECK(res.cck.verdict.rfind("no significant herding", 0) == 0);
  }

  TEST_CASE("Newey-West: lag 0 is White's HC0 sandwich; a positive lag matches the formula") {
    std::mt19937_64 rng(7);
    std::normal_distribution<double> z(0.0, 1.0);
    const int n = 30;
    Eigen::MatrixXd x(n, 3);
    Eigen::VectorXd y(n);
    for (int t = 0; t < n; ++t) {
      x(t, 0) = 1.0;
      x(t, 1) = z(rng);
      x(t, 2) = z(rng) * z(rng);
      y(t) = 0.5 + 2.0 * x(t, 1) - x(t, 2) + (1.0 + std::abs(x(t, 1))) * z(rng);
    }
    const OlsResult fit = ols(x, y, 0);
    CHECK_FALSE(fit.has_hac());
    CHECK(fit.se_hac.size() == 0);
    const Eigen::MatrixXd bread = (x.transpose() * x).inverse();
    auto direct = [&](int lag) {  // the double sum of docs/theory.md §5.4, term by term
      Eigen::MatrixXd s = Eigen::MatrixXd::Zero(3, 3);
      const Eigen::VectorXd& e = fit.residuals;
      for (int t = 0; t < n; ++t) s += e(t) * e(t) * x.row(t).transpose() * x.row(t);
      for (int l = 1; l <= lag; ++l) {
        const double w = 1.0 - l / (lag + 1.0);
        for (int t = l; t < n; ++t) {
          s += w * e(t) * e(t - l) *
               (x.row(t).transpose() * x.row(t - l) + x.row(t - l).transpose() * x.row(t));
        }
      }
      return Eigen::MatrixXd(bread * s * bread);
    };
    for (int lag : {0, 3}) {
      CAPTURE(lag);
      const Eigen::MatrixXd nw = newey_west_covariance(x, fit.residuals, lag);
      CHECK((nw - direct(lag)).norm() <= 1e-12 * direct(lag).norm());
    }
    const OlsResult fit3 = ols(x, y, 3);
    CHECK(fit3.hac_lag == 3);
    CHECK((fit3.cov_hac - direct(3)).norm() <= 1e-12 * direct(3).norm());
    CHECK((fit3.coef - fit.coef).norm() == 0.0);

    // By hand: y = (1, 2, 4, 3) on a constant; b = 2.5, e = (-1.5, -0.5, 1.5, 0.5), X'X = 4,
    // sum e^2 = 5, sum e_t e_{t-1} = 0.75, sum e_t e_{t-2} = -2.5.
    // Lag 1: S = 5 + (1/2)(2)(0.75) = 5.75, Var = 5.75/16. Lag 2: S = 5 + (2/3)(1.5) + (1/3)(-5) = 13/3.
    const Eigen::MatrixXd ones = Eigen::MatrixXd::Ones(4, 1);
    const Eigen::VectorXd yy = (Eigen::VectorXd(4) << 1, 2, 4, 3).finished();
    const OlsResult small = ols(ones, yy, 1);
    CHECK(small.coef(0) == doctest::Approx(2.5).epsilon(1e-15));
    CHECK(small.cov_hac(0, 0) == doctest::Approx(5.75 / 16.0).epsilon(1e-14));
    CHECK(small.se_hac(0) == doctest::Approx(std::sqrt(5.75 / 16.0)).epsilon(1e-14));
    CHECK(small.se_ols(0) == doctest::Approx(std::sqrt(5.0 / 3.0 / 4.0)).epsilon(1e-14));
    CHECK(ols(ones, yy, 2).cov_hac(0, 0) == doctest::Approx(13.0 / 3.0 / 16.0).epsilon(1e-14));
    CHECK(default_newey_west_lag(100) == 4);
    CHECK(default_newey_west_lag(250) == 4);
    CHECK(default_newey_west_lag(1000) == 6);
  }

  TEST_CASE("CCK without herding: gamma2 not significant in >= 90 of 100 panels (nominal rate 5 %)") {
    // Independent Gaussian returns: CSAD is independent of R_m, so gamma1 = gamma2 = 0 holds.
    // Classical p-values reject at the nominal 5 %. Newey-West (lag 4, no small-sample scaling)
    // over-rejects somewhat at T = 250 with these high-leverage regressors: about 7.5 % two-sided,
    // 3.7 % on the herding side, measured over 2000 replications; hence the looser HAC bound.
    std::mt19937_64 rng(12345);
    int not_significant_ols = 0, not_significant_hac = 0, herding = 0;
    for (int rep = 0; rep < 100; ++rep) {
      const HerdingTestsResult res = herding_regressions(simulated_panel(rng, 250, 50, false));
      const OlsResult& fit = *res.cck.fit;
      CHECK(fit.hac_lag == 4);
      if (!(fit.p_ols(2) < 0.05)) ++not_significant_ols;
      if (!(fit.p_hac(2) < 0.05)) ++not_significant_hac;
      if (res.cck.herding) ++herding;  // the default verdict: HAC p-values, negative gamma2
    }
    CAPTURE(not_significant_hac);
    CAPTURE(herding);
    CHECK(not_significant_ols >= 90);
    CHECK(not_significant_hac >= 85);
    CHECK(herding <= 10);
  }

  TEST_CASE("CCK with dispersion collapsing in extreme markets: significant negative gamma2 >= 95 of 100") {
    std::mt19937_64 rng(54321);
    int detected = 0;
    std::string verdict;
    for (int rep = 0; rep < 100; ++rep) {
      const HerdingTestsResult res = herding_regressions(simulated_panel(rng, 250, 50, true));
      if (res.cck.herding && res.cck.fit->coef(2) < 0.0) ++detected;
      verdict = res.cck.verdict;
    }
    CHECK(detected >= 95);
    CAPTURE(verdict);
    CHECK(verdict.rfind("significant herding (gamma2 < 0, p ", 0) == 0);
  }

  TEST_CASE("asymmetric CCK fits: each sign subset is the plain CCK on those periods") {
    std::mt19937_64 rng(99);
    HerdingOptions opt;
    opt.asymmetric = true;
    const Eigen::MatrixXd r = simulated_panel(rng, 120, 20, true);
    const HerdingTestsResult res = herding_regressions(r, opt);
    REQUIRE(res.cck_up.has_value());
    REQUIRE(res.cck_down.has_value());
    REQUIRE(res.cck_up->fit.has_value());
    REQUIRE(res.cck_down->fit.has_value());
    CHECK(res.cck_up->model == "CCK_CSAD_up");
    const auto& s = res.series;
    std::vector<double> csad, rm;
    for (Eigen::Index t = 0; t < s.market_return.size(); ++t) {
      if (s.market_return(t) < 0.0) {
        csad.push_back(s.csad(t));
        rm.push_back(s.market_return(t));
      }
    }
    const auto m = static_cast<Eigen::Index>(csad.size());
    const HerdingRegression down = chang_cheng_khorana(Eigen::Map<Eigen::VectorXd>(csad.data(), m),
                                                       Eigen::Map<Eigen::VectorXd>(rm.data(), m));
    CHECK((down.fit->coef - res.cck_down->fit->coef).norm() <= 1e-12 * down.fit->coef.norm());

    // A market that only rises: the down fit is not estimated, the symmetric fits still are.
    const Eigen::MatrixXd up_only = r.array().abs().matrix();
    const HerdingTestsResult res2 = herding_regressions(up_only, opt);
    REQUIRE(res2.cck_down.has_value());
    CHECK_FALSE(res2.cck_down->fit.has_value());
    CHECK(res2.cck_down->verdict.find("not estimated: 0 periods with R_m < 0") == 0);
    CHECK(res2.cck.fit.has_value());
  }

  TEST_CASE("regression_coefficient reads a fitted coefficient by name, with the verdict's standard errors") {
    std::mt19937_64 rng(7);
    const HerdingTestsResult res = herding_regressions(simulated_panel(rng, 120, 20, true));
    REQUIRE(res.cck.fit.has_value());
    const auto& f = *res.cck.fit;
    const RegressionCoefficient g2 = regression_coefficient(res.cck, "gamma2");
    CHECK(g2.estimate == f.coef(2));
    CHECK(g2.se == (res.cck.uses_hac ? f.se_hac(2) : f.se_ols(2)));
    CHECK(g2.p == (res.cck.uses_hac ? f.p_hac(2) : f.p_ols(2)));
    CHECK(std::isnan(regression_coefficient(res.cck, "beta_L").estimate));
    HerdingRegression unfitted = res.cck;
    unfitted.fit.reset();
    CHECK(std::isnan(regression_coefficient(unfitted, "gamma2").se));
  }

  TEST_CASE("minimum-sample rules throw InputError naming the requirement") {
    std::mt19937_64 rng(1);
    CHECK_THROWS_WITH_AS((void)herding_regressions(simulated_panel(rng, 9, 5, false)),
                         doctest::Contains("need at least 10"), herdsim::InputError);
    CHECK_NOTHROW((void)herding_regressions(simulated_panel(rng, 10, 5, false)));
    CHECK_THROWS_WITH_AS((void)herding_regressions(simulated_panel(rng, 50, 1, false)),
                         doctest::Contains("need at least 2"), herdsim::InputError);
    Eigen::MatrixXd bad = simulated_panel(rng, 50, 3, false);
    bad(4, 1) = std::nan("");
    CHECK_THROWS_WITH_AS((void)herding_regressions(bad), doctest::Contains("finite"), herdsim::InputError);

    const DispersionSeries s = cross_sectional_dispersion(simulated_panel(rng, 30, 4, false));
    ExtremeDummies d = extreme_market_dummies(s.market_return, 0.1);
    d.lower.setZero();
    CHECK_THROWS_WITH_AS((void)christie_huang(s.cssd, d, {}), doctest::Contains("D_L is all zeros"),
                         herdsim::InputError);
    d = extreme_market_dummies(s.market_return, 0.1);
    d.upper.setZero();
    CHECK_THROWS_WITH_AS((void)christie_huang(s.cssd, d, {}), doctest::Contains("D_U is all zeros"),
                         herdsim::InputError);
    CHECK_THROWS_WITH_AS((void)extreme_market_dummies(s.market_return, 0.5), doctest::Contains("(0, 0.5)"),
                         herdsim::InputError);

    const Eigen::MatrixXd collinear = Eigen::MatrixXd::Ones(12, 2);
    CHECK_THROWS_WITH_AS((void)ols(collinear, Eigen::VectorXd::Ones(12)), doctest::Contains("rank"),
                         herdsim::InputError);
    CHECK_THROWS_WITH_AS((void)ols(Eigen::MatrixXd::Ones(1, 1), Eigen::VectorXd::Ones(1)),
                         doctest::Contains("more observations"), herdsim::InputError);
  }
}
