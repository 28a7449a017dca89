#pragma once
// Statistics of the market itself (docs/theory.md §7.5): per-asset stylised facts of the returns (excess
// kurtosis, Hill tail index, autocorrelations of r, |r| and r² with their bands), the mispricing
// ln(S/F) of the market price against its fundamental with its bubble and crash episodes, and the
// Christie–Huang and Chang–Cheng–Khorana regressions ACROSS ASSETS (herding_tests.hpp holds the
// regressions themselves; the across-agent versions are in metric_accumulators.hpp). Pure functions on
// Eigen arrays: `herdsim compare` reads the file (io/compare_market.cpp) and calls these.
//
// Panels are periods x paths (column p = path p, row t = period t): every statistic pools the paths,
// which are independent draws of the same market.
#include <Eigen/Core>
#include <vector>

#include "sim/analysis/herding_tests.hpp"

namespace herdsim::analysis {

/// Log returns ln(1 + R) of simple returns R (return units: 0.01 = 1 %); R <= -1 gives NaN.
[[nodiscard]] Eigen::MatrixXd log_returns(const Eigen::MatrixXd& simple_returns);

/// Excess kurtosis m4 / m2² − 3 of the finite values (population moments, the bias-free form is not
/// used: n is in the thousands); NaN with fewer than 4 values or no variance. 0 for a normal sample.
[[nodiscard]] double excess_kurtosis(const Eigen::Ref<const Eigen::VectorXd>& x);

/// The Hill estimate of the tail index from the k = floor(q n) largest absolute deviations from the mean.
struct HillEstimate {
  double tail_fraction = 0.0;  ///< q, e.g. 0.05
  int k = 0;                   ///< order statistics used (0: not estimated)
  double threshold = 0.0;      ///< X_(k+1), the (k+1)-th largest |x − mean|, return units
  double index = 0.0;  ///< α = k / Σ_{i<=k} ln(X_(i) / X_(k+1)); about 6 for normal data at q = 0.05
  double se = 0.0;     ///< α / √k, the asymptotic standard error
};

/// Hill tail index of |x − mean(x)| over the finite x (both tails pooled); k = floor(q n) must be >= 2
/// and 0 < q < 0.5 (InputError otherwise). Documented in docs/theory.md §7.5.
[[nodiscard]] HillEstimate hill_tail_index(const Eigen::Ref<const Eigen::VectorXd>& x, double q);

/// Sample autocorrelation of a periods x paths panel at lags 1..max_lag, pooled over paths: around the
/// pooled mean, Σ_p Σ_t (x_tp − x̄)(x_{t+l,p} − x̄) / Σ_p Σ_t (x_tp − x̄)²; a lag never crosses paths.
struct Autocorrelation {
  Eigen::VectorXd acf;   ///< acf[l − 1] = ρ(l), l = 1..max_lag
  double band = 0.0;     ///< 1.96 / √n: the 95 % band of ρ(l) under independence (n observations)
  int observations = 0;  ///< n = periods x paths
};
[[nodiscard]] Autocorrelation autocorrelation(const Eigen::MatrixXd& panel, int max_lag);

/// Stylised facts of one asset's log returns (a periods x paths panel).
struct StylisedFacts {
  int observations = 0;            ///< periods x paths
  double mean = 0.0;               ///< of the log returns, per step
  double sd = 0.0;                 ///< ddof 0, per step
  double excess_kurtosis = 0.0;    ///< 0 for normal returns
  std::vector<HillEstimate> hill;  ///< one per tail fraction asked (0.05 and 0.025 by default)
  Autocorrelation acf_r;           ///< of r
  Autocorrelation acf_abs;         ///< of |r| (volatility clustering: positive, slowly decaying)
  Autocorrelation acf_squared;     ///< of r²
};

/// Stylised facts of a periods x paths panel of log returns (finite; at least max_lag + 2 periods and
/// floor(q n) >= 2 for each tail fraction q).
[[nodiscard]] StylisedFacts stylised_facts(const Eigen::MatrixXd& log_returns, int max_lag = 20,
                                           const std::vector<double>& tail_fractions = {0.05, 0.025});

/// Summary of the log mispricing m = ln(S / F) (market price against fundamental), pooled.
struct MispricingSummary {
  int observations = 0;
  double mean = 0.0;     ///< of m
  double sd = 0.0;       ///< of m, ddof 0
  double max_abs = 0.0;  ///< max |m|
};
[[nodiscard]] MispricingSummary mispricing_summary(const Eigen::MatrixXd& log_mispricing);

/// The episode rule (docs/theory.md §7.5): a bubble is a maximal run of at least min_rows consecutive
/// recorded rows of one path with m > threshold, a crash one with m < −threshold.
struct EpisodeRule {
  double threshold = 0.10;  ///< log mispricing, 0.10 = the market about 10.5 % above (below) F
  int min_rows = 3;         ///< recorded rows in a row
};

/// One episode.
struct Episode {
  int path = 0;       ///< column of the panel
  int start_row = 0;  ///< first row with |m| beyond the threshold
  int rows = 0;       ///< its length in recorded rows
  double peak = 0.0;  ///< m of largest |m| in the episode
};

/// The bubble and crash episodes of a panel and their summary.
struct EpisodeSummary {
  EpisodeRule rule;
  std::vector<Episode> bubbles;  ///< m > threshold, by path then time
  std::vector<Episode> crashes;  ///< m < −threshold
  int paths = 0;
  int rows = 0;                   ///< rows per path
  double bubble_fraction = 0.0;   ///< share of all (row, path) cells inside a bubble
  double crash_fraction = 0.0;    ///< share inside a crash
  double bubble_mean_rows = 0.0;  ///< mean length (NaN without bubbles)
  double crash_mean_rows = 0.0;   ///< mean length (NaN without crashes)
};

/// Episodes of a rows x paths panel of log mispricing; threshold > 0, min_rows >= 1 (InputError).
[[nodiscard]] EpisodeSummary find_episodes(const Eigen::MatrixXd& log_mispricing,
                                           const EpisodeRule& rule = {});

/// CSSD and CSAD across assets: the Christie–Huang regression for each tail fraction and the
/// Chang–Cheng–Khorana regression on the pooled (path, period) cross-sections of N asset returns.
struct AssetHerding {
  int assets = 0;
  int observations = 0;                ///< pooled cross-sections, path-major
  DispersionSeries series;             ///< R_m, CSSD, CSAD of each pooled cross-section
  std::vector<double> tail_fractions;  ///< q of each CH regression
  std::vector<HerdingRegression> ch;   ///< one per tail fraction
  HerdingRegression cck;               ///< CSAD = a + γ1 |R_m| + γ2 R_m² (Newey–West per options)
};

/// asset_returns: one periods x paths panel of simple returns per asset (N >= 2, equal shapes, finite,
/// at least 10 cross-sections). Cross-sections are pooled path-major, so Newey–West lags pair periods
/// of one path except at the path boundaries.
[[nodiscard]] AssetHerding herding_across_assets(const std::vector<Eigen::MatrixXd>& asset_returns,
                                                 const std::vector<double>& tail_fractions = {0.01, 0.05},
                                                 const HerdingOptions& options = {});

/// Certainty equivalent of terminal wealth under a deterministic plan of N-asset amounts in the
/// arithmetic step market (docs/theory.md §7.1), where X_n is normal:
/// x0 G^n + Σ_k [G^(n−1−k) P_k·v dt − (α/2) G^(2(n−1−k)) P_k'ΣP_k dt]. plan: N x n amounts (currency
/// units), excess_return v (per year, N), covariance Σ (per year, N x N), growth G = 1 + r dt per step.
[[nodiscard]] double plan_certainty_equivalent_assets(const Eigen::MatrixXd& plan,
                                                      const Eigen::VectorXd& excess_return,
                                                      const Eigen::MatrixXd& covariance, double growth,
                                                      double dt, double x0, double alpha);

}  // namespace herdsim::analysis
