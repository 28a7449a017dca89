#include "sim/analysis/market_stats.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>

#include "sim/error.hpp"

namespace herdsim::analysis {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

std::vector<double> finite_values(const Eigen::Ref<const Eigen::VectorXd>& x) {
  std::vector<double> v;
  v.reserve(static_cast<std::size_t>(x.size()));
  for (Eigen::Index i = 0; i < x.size(); ++i)
    if (std::isfinite(x[i])) v.push_back(x[i]);
  return v;
}

double mean_of(const std::vector<double>& v) {
  double s = 0.0;
  for (double x : v) s += x;
  return s / static_cast<double>(v.size());
}

void require_finite_panel(const Eigen::MatrixXd& m, const char* what) {
  if (!m.allFinite()) throw InputError(fmt::format("{}: all values must be finite", what));
}

}  // namespace

Eigen::MatrixXd log_returns(const Eigen::MatrixXd& simple_returns) {
  return simple_returns.unaryExpr([](double r) { return r > -1.0 ? std::log1p(r) : kNaN; });
}

double excess_kurtosis(const Eigen::Ref<const Eigen::VectorXd>& x) {
  const std::vector<double> v = finite_values(x);
  if (v.size() < 4) return kNaN;
  const double m = mean_of(v);
  double m2 = 0.0;
  double m4 = 0.0;
  for (double y : v) {
    const double d2 = (y - m) * (y - m);
    m2 += d2;
    m4 += d2 * d2;
  }
  const auto n = static_cast<double>(v.size());
  m2 /= n;
  m4 /= n;
  return m2 > 0.0 ? m4 / (m2 * m2) - 3.0 : kNaN;
}

HillEstimate hill_tail_index(const Eigen::Ref<const Eigen::VectorXd>& x, double q) {
  if (!(q > 0.0 && q < 0.5))
    throw InputError(fmt::format("hill_tail_index: tail fraction q = {} must be in (0, 0.5)", q));
  std::vector<double> v = finite_values(x);
  HillEstimate h;
  h.tail_fraction = q;
  const auto k = static_cast<std::size_t>(std::floor(q * static_cast<double>(v.size())));
  if (k < 2)
    throw InputError(fmt::format(
        "hill_tail_index: floor(q n) = {} order statistics at q = {} of n = {}, need 2", k, q, v.size()));
  const double m = mean_of(v);
  for (double& y : v) y = std::abs(y - m);
  // The k + 1 largest, in decreasing order; the (k+1)-th is the threshold.
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end(), std::greater<>());
  h.k = static_cast<int>(k);
  h.threshold = v[k];
  if (!(h.threshold > 0.0))
    throw InputError("hill_tail_index: the threshold |x - mean| is 0 (too many equal values)");
  double s = 0.0;
  for (std::size_t i = 0; i < k; ++i) s += std::log(v[i] / h.threshold);
  h.index = static_cast<double>(k) / s;
  h.se = h.index / std::sqrt(static_cast<double>(k));
  return h;
}

Autocorrelation autocorrelation(const Eigen::MatrixXd& panel, int max_lag) {
  require_finite_panel(panel, "autocorrelation");
  if (max_lag < 1 || panel.rows() < max_lag + 2 || panel.cols() < 1)
    throw InputError(fmt::format("autocorrelation: {} periods for lags up to {}, need at least {}",
                                 panel.rows(), max_lag, max_lag + 2));
  Autocorrelation a;
  a.observations = static_cast<int>(panel.size());
  const Eigen::ArrayXXd d = panel.array() - panel.mean();
  const double denom = d.square().sum();
  a.acf.resize(max_lag);
  const Eigen::Index t = panel.rows();
  for (int l = 1; l <= max_lag; ++l)
    a.acf[l - 1] = denom > 0.0 ? (d.topRows(t - l) * d.bottomRows(t - l)).sum() / denom : kNaN;
  a.band = 1.96 / std::sqrt(static_cast<double>(a.observations));
  return a;
}

StylisedFacts stylised_facts(const Eigen::MatrixXd& log_returns, int max_lag,
                             const std::vector<double>& tail_fractions) {
  require_finite_panel(log_returns, "stylised_facts: log returns");
  StylisedFacts f;
  f.observations = static_cast<int>(log_returns.size());
  const Eigen::Map<const Eigen::VectorXd> all(log_returns.data(), log_returns.size());
  f.mean = all.mean();
  f.sd = std::sqrt((all.array() - f.mean).square().mean());
  f.excess_kurtosis = excess_kurtosis(all);
  for (double q : tail_fractions) f.hill.push_back(hill_tail_index(all, q));
  f.acf_r = autocorrelation(log_returns, max_lag);
  f.acf_abs = autocorrelation(log_returns.cwiseAbs(), max_lag);
  f.acf_squared = autocorrelation(log_returns.cwiseAbs2(), max_lag);
  return f;
}

MispricingSummary mispricing_summary(const Eigen::MatrixXd& log_mispricing) {
  require_finite_panel(log_mispricing, "mispricing_summary");
  MispricingSummary s;
  s.observations = static_cast<int>(log_mispricing.size());
  if (s.observations == 0) return {0, kNaN, kNaN, kNaN};
  s.mean = log_mispricing.mean();
  s.sd = std::sqrt((log_mispricing.array() - s.mean).square().mean());
  s.max_abs = log_mispricing.cwiseAbs().maxCoeff();
  return s;
}

EpisodeSummary find_episodes(const Eigen::MatrixXd& log_mispricing, const EpisodeRule& rule) {
  if (!(rule.threshold > 0.0) || !std::isfinite(rule.threshold))
    throw InputError(fmt::format("episodes: threshold = {} must be > 0", rule.threshold));
  if (rule.min_rows < 1) throw InputError(fmt::format("episodes: min_rows = {} must be >= 1", rule.min_rows));
  require_finite_panel(log_mispricing, "episodes: log mispricing");
  EpisodeSummary s;
  s.rule = rule;
  s.rows = static_cast<int>(log_mispricing.rows());
  s.paths = static_cast<int>(log_mispricing.cols());
  long long bubble_cells = 0;
  long long crash_cells = 0;
  for (int p = 0; p < s.paths; ++p) {
    int t = 0;
    while (t < s.rows) {
      const double m = log_mispricing(t, p);
      const int sign = m > rule.threshold ? 1 : m < -rule.threshold ? -1 : 0;
      if (sign == 0) {
        ++t;
        continue;
      }
      Episode e{p, t, 0, 0.0};
      while (t < s.rows &&
             (sign > 0 ? log_mispricing(t, p) > rule.threshold : log_mispricing(t, p) < -rule.threshold)) {
        if (std::abs(log_mispricing(t, p)) > std::abs(e.peak)) e.peak = log_mispricing(t, p);
        ++e.rows;
        ++t;
      }
      if (e.rows < rule.min_rows) continue;
      (sign > 0 ? bubble_cells : crash_cells) += e.rows;
      (sign > 0 ? s.bubbles : s.crashes).push_back(e);
    }
  }
  const double cells = static_cast<double>(s.rows) * static_cast<double>(s.paths);
  s.bubble_fraction = cells > 0 ? static_cast<double>(bubble_cells) / cells : kNaN;
  s.crash_fraction = cells > 0 ? static_cast<double>(crash_cells) / cells : kNaN;
  s.bubble_mean_rows =
      s.bubbles.empty() ? kNaN : static_cast<double>(bubble_cells) / static_cast<double>(s.bubbles.size());
  s.crash_mean_rows =
      s.crashes.empty() ? kNaN : static_cast<double>(crash_cells) / static_cast<double>(s.crashes.size());
  return s;
}

AssetHerding herding_across_assets(const std::vector<Eigen::MatrixXd>& asset_returns,
                                   const std::vector<double>& tail_fractions, const HerdingOptions& options) {
  if (asset_returns.size() < 2)
    throw InputError(fmt::format("herding across assets: {} asset(s), need at least 2 for a cross-section",
                                 asset_returns.size()));
  const Eigen::Index periods = asset_returns.front().rows();
  const Eigen::Index paths = asset_returns.front().cols();
  for (const auto& r : asset_returns)
    if (r.rows() != periods || r.cols() != paths)
      throw InputError("herding across assets: the assets' return panels differ in shape");
  AssetHerding h;
  h.assets = static_cast<int>(asset_returns.size());
  h.observations = static_cast<int>(periods * paths);
  // Row p * periods + t is path p's cross-section at period t (path-major: a path's periods adjacent).
  Eigen::MatrixXd panel(periods * paths, h.assets);
  for (int a = 0; a < h.assets; ++a) panel.col(a) = asset_returns[static_cast<std::size_t>(a)].reshaped();
  h.series = cross_sectional_dispersion(panel);
  h.tail_fractions = tail_fractions;
  for (double q : tail_fractions) {
    HerdingOptions o = options;
    o.quantile = q;
    h.ch.push_back(christie_huang(h.series.cssd, extreme_market_dummies(h.series.market_return, q), o));
  }
  h.cck = chang_cheng_khorana(h.series.csad, h.series.market_return, options);
  return h;
}

double plan_certainty_equivalent_assets(const Eigen::MatrixXd& plan, const Eigen::VectorXd& excess_return,
                                        const Eigen::MatrixXd& covariance, double growth, double dt,
                                        double x0, double alpha) {
  const Eigen::Index n = plan.cols();
  double ce = x0 * std::pow(growth, static_cast<double>(n));
  for (Eigen::Index k = 0; k < n; ++k) {
    const double g = std::pow(growth, static_cast<double>(n - 1 - k));
    const auto p = plan.col(k);
    ce += g * p.dot(excess_return) * dt - 0.5 * alpha * g * g * p.dot(covariance * p) * dt;
  }
  return ce;
}

}  // namespace herdsim::analysis
