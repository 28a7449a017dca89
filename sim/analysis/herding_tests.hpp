#pragma once
// Empirical herding statistics (docs/theory.md §5): the LSV measure on buy/sell counts, and the
// Christie–Huang (CSSD) and Chang–Cheng–Khorana (CSAD) dispersion regressions on a returns panel,
// with classical and Newey–West standard errors. Library part of `herdsim compare`.
//
// Minimum-sample rules (each violation throws herdsim::InputError naming the requirement):
//  * returns panel: N >= 2 columns, all entries finite; the regressions need T >= 10 periods;
//  * CH: 0 < q < 0.5, and neither extreme-market dummy may be all zeros;
//  * OLS: more observations than regressors, a full-rank design, finite data;
//  * LSV: non-negative counts, each (period, asset) at most once, n_min >= 1, and at least one cell
//    with n_it >= n_min.
// Asymmetric CCK fits on a subset with fewer than 10 periods are not estimated (left empty, with a
// reason) rather than refused, so the symmetric fits stay usable on one-sided samples.
#include <Eigen/Dense>
#include <limits>
#include <optional>
#include <string>
#include <vector>

namespace herdsim::analysis {

// ---------------------------------------------------------------------------------------------
// Ordinary least squares

/// Minimum number of periods for any herding regression (also per asymmetric CCK subset).
inline constexpr int kMinPeriods = 10;

/// An OLS fit with classical and (optionally) Newey–West HAC inference.
struct OlsResult {
  Eigen::VectorXd coef;       ///< estimates b, one per column of X
  Eigen::VectorXd residuals;  ///< e = y - X b, one per observation
  int n_obs = 0;              ///< n, rows of X
  int n_regressors = 0;       ///< k, columns of X
  double sigma2 = 0.0;        ///< e'e / (n - k), the classical error variance
  double r_squared = 0.0;     ///< centred R^2 = 1 - e'e / sum (y - ybar)^2 (meaningful with a constant)
  Eigen::MatrixXd cov_ols;    ///< sigma2 (X'X)^-1, assumes homoskedastic, uncorrelated errors
  Eigen::VectorXd se_ols;     ///< sqrt(diag cov_ols)
  Eigen::VectorXd t_ols;      ///< coef / se_ols
  Eigen::VectorXd p_ols;      ///< two-sided p-values, Student t with n - k df
  int hac_lag = 0;            ///< Newey–West lag used; 0 = no HAC computed (hac fields empty)
  Eigen::MatrixXd cov_hac;    ///< (X'X)^-1 S (X'X)^-1, Bartlett weights, no small-sample scaling
  Eigen::VectorXd se_hac;     ///< sqrt(diag cov_hac)
  Eigen::VectorXd t_hac;      ///< coef / se_hac
  Eigen::VectorXd p_hac;      ///< two-sided p-values, Student t with n - k df
  [[nodiscard]] bool has_hac() const { return hac_lag > 0; }
};

/// Default Newey–West lag floor(4 (n/100)^(2/9)) for n observations.
[[nodiscard]] int default_newey_west_lag(int n_obs);

/// Newey–West covariance of the OLS estimate for design X (n x k) and residuals e (n):
/// (X'X)^-1 S (X'X)^-1 with S = sum e_t^2 x_t x_t' + sum_{l=1..lag} (1 - l/(lag+1)) sum_t e_t e_{t-l}
/// (x_t x_{t-l}' + x_{t-l} x_t'). lag = 0 gives White's HC0 sandwich. Requires 0 <= lag < n.
[[nodiscard]] Eigen::MatrixXd newey_west_covariance(const Eigen::MatrixXd& X, const Eigen::VectorXd& e,
                                                    int lag);

/// OLS of y on X by column-pivoting Householder QR (include a column of ones for a constant).
/// newey_west_lag: -1 = default rule, 0 = classical inference only, > 0 = that lag (must be < n).
[[nodiscard]] OlsResult ols(const Eigen::MatrixXd& X, const Eigen::VectorXd& y, int newey_west_lag = -1);

/// Two-sided p-value of statistic t under Student t with df degrees of freedom (NaN for NaN t).
[[nodiscard]] double two_sided_p_value(double t, double df);

// ---------------------------------------------------------------------------------------------
// LSV (Lakonishok–Shleifer–Vishny)

/// Trades of one asset (or agent group) in one period: counts of buyers and sellers.
struct LsvCell {
  int period = 0;
  int asset = 0;
  int buys = 0;   ///< B_it >= 0
  int sells = 0;  ///< n_it - B_it >= 0
};

/// Which side a cell leans to relative to its period: buy if p_it > pbar_t, sell if p_it < pbar_t.
enum class LsvSide { none, buy, sell };

/// "buy", "sell" or "none".
[[nodiscard]] const char* to_string(LsvSide side);

/// Per-cell LSV quantities. p, pbar, af and h are NaN for a cell without trades.
struct LsvCellResult {
  int period = 0;
  int asset = 0;
  int n = 0;          ///< n_it = buys + sells
  double p = 0.0;     ///< p_it = B_it / n_it
  double pbar = 0.0;  ///< pbar_t = sum_i B_it / sum_i n_it over all cells of the period
  double af = 0.0;    ///< adjustment factor E|B/n - pbar|, B ~ Binomial(n_it, pbar_t)
  double h = 0.0;     ///< H_it = |p_it - pbar_t| - AF_it
  LsvSide side = LsvSide::none;
  bool included = false;  ///< n_it >= n_min: counted in the summary
};

/// LSV cells and summary. Means are NaN when no cell qualifies for them.
struct LsvResult {
  std::vector<LsvCellResult> cells;  ///< in input order
  int n_min = 5;                     ///< minimum traders per cell used for the summary
  int n_cells = 0;                   ///< cells with n_it >= n_min
  double mean_h = 0.0;               ///< mean H over those cells
  int n_buy = 0;                     ///< included cells with p_it > pbar_t
  double buy_mean_h = 0.0;           ///< buy herding: mean H over them
  int n_sell = 0;                    ///< included cells with p_it < pbar_t
  double sell_mean_h = 0.0;          ///< sell herding: mean H over them
  double std_err = 0.0;              ///< sd(H) / sqrt(n_cells); assumes independent cells (NaN if < 2)
  double t_stat = 0.0;               ///< mean_h / std_err
  double p_value = 0.0;              ///< two-sided, H0: E[H] = 0, Student t with n_cells - 1 df
};

/// Exact binomial expectation E|k/n - pbar| for k ~ Binomial(n, pbar); n >= 1, 0 <= pbar <= 1.
/// O(n) recurrence outward from the mode; stable for n up to ~1e7 (far tails underflow to 0).
[[nodiscard]] double lsv_adjustment_factor(int n, double pbar);

/// LSV herding measure of the given cells; summary over cells with at least n_min traders.
[[nodiscard]] LsvResult lsv(const std::vector<LsvCell>& cells, int n_min = 5);

// ---------------------------------------------------------------------------------------------
// Cross-sectional dispersion: CSSD (Christie–Huang) and CSAD (Chang–Cheng–Khorana)

/// Per-period series of a T x N returns panel (rows = periods, columns = investors or assets).
struct DispersionSeries {
  Eigen::VectorXd market_return;  ///< R_mt, equal-weighted row mean (return units, e.g. 0.01 = 1 %)
  Eigen::VectorXd cssd;           ///< sqrt(sum_i (R_it - R_mt)^2 / (N - 1))
  Eigen::VectorXd csad;           ///< (1/N) sum_i |R_it - R_mt|
};

/// R_m, CSSD and CSAD of each row; needs N >= 2 columns, T >= 1 rows and finite returns.
[[nodiscard]] DispersionSeries cross_sectional_dispersion(const Eigen::MatrixXd& returns);

/// Sample q-quantile (finite x, 0 <= q <= 1), linear interpolation between order statistics (numpy default).
[[nodiscard]] double quantile_linear(const Eigen::VectorXd& x, double q);

/// Christie–Huang extreme-market indicators (0/1) of a market-return series.
struct ExtremeDummies {
  Eigen::VectorXd lower;         ///< D_L = 1 where R_m <= lower_threshold
  Eigen::VectorXd upper;         ///< D_U = 1 where R_m >= upper_threshold
  double lower_threshold = 0.0;  ///< q-quantile of R_m
  double upper_threshold = 0.0;  ///< (1 - q)-quantile of R_m
};

/// D_L and D_U from the q and (1 - q) linear-interpolation quantiles of R_m; requires 0 < q < 0.5.
[[nodiscard]] ExtremeDummies extreme_market_dummies(const Eigen::VectorXd& market_return, double q);

/// Settings of the CH and CCK regressions.
struct HerdingOptions {
  double quantile = 0.05;   ///< CH tail fraction q (0 < q < 0.5); the original study used 0.01, 0.05
  double alpha = 0.05;      ///< significance level of the two-sided tests behind the verdicts
  int newey_west_lag = -1;  ///< -1 = default rule, 0 = classical only, > 0 = that lag
  bool asymmetric = false;  ///< also fit CCK on the R_m > 0 and R_m < 0 subsets
};

/// One herding regression with its plain-language verdict.
struct HerdingRegression {
  std::string model;                           ///< "CH_CSSD", "CCK_CSAD", "CCK_CSAD_up", "CCK_CSAD_down"
  std::vector<std::string> coefficient_names;  ///< e.g. {"const", "beta_L", "beta_U"}
  std::optional<OlsResult> fit;                ///< empty when the sample was too small to estimate
  bool herding = false;                        ///< a herding coefficient is negative with p < alpha
  bool uses_hac = false;                       ///< verdict from Newey–West p-values (else classical)
  std::string verdict;                         ///< e.g. "significant herding (beta_L < 0, p = 0.003)"
};

/// A coefficient of a fitted regression: estimate, standard error and p-value (Newey–West where the
/// regression's verdict uses them, else classical); NaN when it was not fitted or has no such coefficient.
struct RegressionCoefficient {
  double estimate = std::numeric_limits<double>::quiet_NaN();
  double se = std::numeric_limits<double>::quiet_NaN();
  double p = std::numeric_limits<double>::quiet_NaN();
};
[[nodiscard]] RegressionCoefficient regression_coefficient(const HerdingRegression& r,
                                                           const std::string& name);

/// CH: CSSD = a + beta_L D_L + beta_U D_U; herding = significantly negative beta_L or beta_U.
/// Requires T >= 10 and both dummies not all zeros.
[[nodiscard]] HerdingRegression christie_huang(const Eigen::VectorXd& cssd, const ExtremeDummies& dummies,
                                               const HerdingOptions& options = {});

/// CCK: CSAD = a + g1 |R_m| + g2 R_m^2; herding = significantly negative g2. Requires T >= 10.
[[nodiscard]] HerdingRegression chang_cheng_khorana(const Eigen::VectorXd& csad,
                                                    const Eigen::VectorXd& market_return,
                                                    const HerdingOptions& options = {});

/// Everything computed from one returns panel.
struct HerdingTestsResult {
  DispersionSeries series;
  ExtremeDummies dummies;
  HerdingRegression ch;
  HerdingRegression cck;
  std::optional<HerdingRegression> cck_up;    ///< R_m > 0 subset, when options.asymmetric
  std::optional<HerdingRegression> cck_down;  ///< R_m < 0 subset, when options.asymmetric
};

/// Dispersion series, CH and CCK regressions of a T x N returns panel (T >= 10, N >= 2).
[[nodiscard]] HerdingTestsResult herding_regressions(const Eigen::MatrixXd& returns,
                                                     const HerdingOptions& options = {});

}  // namespace herdsim::analysis
