#include "sim/analysis/herding_tests.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <boost/math/distributions/students_t.hpp>
#include <cmath>
#include <limits>
#include <map>
#include <set>
#include <utility>

#include "sim/error.hpp"

namespace herdsim::analysis {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

void require_finite(const Eigen::MatrixXd& m, const char* what) {
  if (!m.allFinite()) throw InputError(fmt::format("{}: all values must be finite", what));
}

// (X'X)^-1 from a column-pivoting QR X P = Q R: (X'X)^-1 = P R^-1 R^-T P'.
Eigen::MatrixXd xtx_inverse(const Eigen::ColPivHouseholderQR<Eigen::MatrixXd>& qr, Eigen::Index k) {
  const Eigen::MatrixXd r = qr.matrixR().topLeftCorner(k, k).triangularView<Eigen::Upper>();
  const Eigen::MatrixXd r_inv = r.triangularView<Eigen::Upper>().solve(Eigen::MatrixXd::Identity(k, k));
  const Eigen::MatrixXd inv_perm = r_inv * r_inv.transpose();
  return qr.colsPermutation() * inv_perm * qr.colsPermutation().transpose();
}

Eigen::ColPivHouseholderQR<Eigen::MatrixXd> full_rank_qr(const Eigen::MatrixXd& X) {
  Eigen::ColPivHouseholderQR<Eigen::MatrixXd> qr(X);
  if (qr.rank() < X.cols()) {
    throw InputError(fmt::format("ols: design matrix has rank {} < {} regressors (collinear columns)",
                                 qr.rank(), X.cols()));
  }
  return qr;
}

// Bartlett-weighted sandwich around a precomputed (X'X)^-1.
Eigen::MatrixXd sandwich(const Eigen::MatrixXd& X, const Eigen::VectorXd& e, int lag,
                         const Eigen::MatrixXd& xtx_inv) {
  const Eigen::Index n = X.rows();
  const Eigen::MatrixXd z = X.array().colwise() * e.array();  // row t = e_t x_t'
  Eigen::MatrixXd s = z.transpose() * z;
  for (int l = 1; l <= lag; ++l) {
    const double w = 1.0 - static_cast<double>(l) / (lag + 1.0);
    const Eigen::MatrixXd g =
        z.bottomRows(n - l).transpose() * z.topRows(n - l);  // sum e_t e_{t-l} x_t x_{t-l}'
    s += w * (g + g.transpose());
  }
  return xtx_inv * s * xtx_inv;
}

std::string format_p(double p) {
  return p < 0.001 ? "p < 0.001" : fmt::format("p = {:.3f}", p);
}

// Herding = a listed coefficient significantly negative (two-sided test at alpha).
void set_verdict(HerdingRegression& reg, const std::vector<int>& herding_coefs, double alpha) {
  if (!(alpha > 0.0 && alpha < 1.0))
    throw InputError(fmt::format("herding tests: alpha = {} must be in (0, 1)", alpha));
  const OlsResult& fit = *reg.fit;
  reg.uses_hac = fit.has_hac();
  const Eigen::VectorXd& p = reg.uses_hac ? fit.p_hac : fit.p_ols;
  std::string negative, positive;
  for (int j : herding_coefs) {
    if (!(p(j) < alpha)) continue;  // NaN p-values are never significant
    std::string& list = fit.coef(j) < 0.0 ? negative : positive;
    if (!list.empty()) list += "; ";
    list +=
        fmt::format("{} {} 0, {}", reg.coefficient_names[j], fit.coef(j) < 0.0 ? "<" : ">", format_p(p(j)));
  }
  reg.herding = !negative.empty();
  if (reg.herding) {
    reg.verdict = "significant herding (" + negative + ")";
  } else if (!positive.empty()) {
    reg.verdict = "no significant herding (" + positive + ": dispersion rises with market moves)";
  } else {
    reg.verdict = "no significant herding";
  }
}

void require_periods(Eigen::Index t, const char* what) {
  if (t < kMinPeriods) {
    throw InputError(fmt::format("{}: T = {} periods, need at least {}", what, t, kMinPeriods));
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// OLS

int default_newey_west_lag(int n_obs) {
  return static_cast<int>(std::floor(4.0 * std::pow(n_obs / 100.0, 2.0 / 9.0)));
}

double two_sided_p_value(double t, double df) {
  if (std::isnan(t)) return kNaN;
  if (std::isinf(t)) return 0.0;
  // The complement keeps tiny p-values accurate instead of 1 - cdf rounding to 0.
  return 2.0 * boost::math::cdf(boost::math::complement(boost::math::students_t(df), std::abs(t)));
}

Eigen::MatrixXd newey_west_covariance(const Eigen::MatrixXd& X, const Eigen::VectorXd& e, int lag) {
  if (X.rows() != e.size()) throw InputError("newey_west_covariance: X and e differ in length");
  if (lag < 0 || lag >= X.rows()) {
    throw InputError(fmt::format("newey_west_covariance: lag = {} must be in [0, n = {})", lag, X.rows()));
  }
  return sandwich(X, e, lag, xtx_inverse(full_rank_qr(X), X.cols()));
}

OlsResult ols(const Eigen::MatrixXd& X, const Eigen::VectorXd& y, int newey_west_lag) {
  const Eigen::Index n = X.rows(), k = X.cols();
  if (y.size() != n) throw InputError(fmt::format("ols: X has {} rows but y has {} values", n, y.size()));
  if (k < 1 || n <= k)
    throw InputError(fmt::format("ols: need more observations ({}) than regressors ({})", n, k));
  require_finite(X, "ols: X");
  require_finite(y, "ols: y");
  const int lag = newey_west_lag < 0 ? default_newey_west_lag(static_cast<int>(n)) : newey_west_lag;
  if (lag >= n) throw InputError(fmt::format("ols: Newey-West lag = {} must be below n = {}", lag, n));

  const auto qr = full_rank_qr(X);
  OlsResult r;
  r.n_obs = static_cast<int>(n);
  r.n_regressors = static_cast<int>(k);
  r.coef = qr.solve(y);
  r.residuals = y - X * r.coef;
  const double df = static_cast<double>(n - k);
  const double ssr = r.residuals.squaredNorm();
  r.sigma2 = ssr / df;
  const double sst = (y.array() - y.mean()).square().sum();
  r.r_squared = sst > 0.0 ? 1.0 - ssr / sst : kNaN;

  const Eigen::MatrixXd inv = xtx_inverse(qr, k);
  auto inference = [&](const Eigen::MatrixXd& cov, Eigen::VectorXd& se, Eigen::VectorXd& t,
                       Eigen::VectorXd& p) {
    se = cov.diagonal().cwiseMax(0.0).cwiseSqrt();
    t = r.coef.cwiseQuotient(se);
    p.resize(k);
    for (Eigen::Index j = 0; j < k; ++j) p(j) = two_sided_p_value(t(j), df);
  };
  r.cov_ols = r.sigma2 * inv;
  inference(r.cov_ols, r.se_ols, r.t_ols, r.p_ols);
  if (lag > 0) {
    r.hac_lag = lag;
    r.cov_hac = sandwich(X, r.residuals, lag, inv);
    inference(r.cov_hac, r.se_hac, r.t_hac, r.p_hac);
  }
  return r;
}

// ---------------------------------------------------------------------------------------------
// LSV

const char* to_string(LsvSide side) {
  switch (side) {
    case LsvSide::buy:
      return "buy";
    case LsvSide::sell:
      return "sell";
    case LsvSide::none:
      break;
  }
  return "none";
}

double lsv_adjustment_factor(int n, double pbar) {
  if (n < 1) throw InputError(fmt::format("lsv_adjustment_factor: n = {} must be >= 1", n));
  if (!(pbar >= 0.0 && pbar <= 1.0)) {
    throw InputError(fmt::format("lsv_adjustment_factor: pbar = {} must be in [0, 1]", pbar));
  }
  if (pbar == 0.0 || pbar == 1.0) return 0.0;  // degenerate: k/n = pbar surely
  // Unnormalised pmf weights w_k = pmf(k) / pmf(mode) by the ratio recurrence, walking outward from
  // the mode so every weight is <= 1 and the tails underflow to 0 harmlessly; AF = sum w|.| / sum w.
  const double odds = pbar / (1.0 - pbar);
  const double dn = n;
  const int mode = std::min(n, static_cast<int>(std::floor((dn + 1.0) * pbar)));
  double sum_w = 1.0;
  double sum_wd = std::abs(mode / dn - pbar);
  double w = 1.0;
  for (int k = mode; k < n; ++k) {  // w_{k+1} = w_k (n-k)/(k+1) odds
    w *= (dn - k) / (k + 1.0) * odds;
    if (w == 0.0) break;
    sum_w += w;
    sum_wd += w * std::abs((k + 1) / dn - pbar);
  }
  w = 1.0;
  for (int k = mode; k > 0; --k) {  // w_{k-1} = w_k k/(n-k+1) / odds
    w *= k / (dn - k + 1.0) / odds;
    if (w == 0.0) break;
    sum_w += w;
    sum_wd += w * std::abs((k - 1) / dn - pbar);
  }
  return sum_wd / sum_w;
}

LsvResult lsv(const std::vector<LsvCell>& cells, int n_min) {
  if (n_min < 1) throw InputError(fmt::format("lsv: n_min = {} must be >= 1", n_min));
  std::map<int, std::pair<double, double>> period_totals;  // period -> (sum B, sum n); exact below 2^53
  std::set<std::pair<int, int>> seen;
  for (const LsvCell& c : cells) {
    if (c.buys < 0 || c.sells < 0) {
      throw InputError(fmt::format("lsv: period {} asset {}: buys = {} and sells = {} must be >= 0", c.period,
                                   c.asset, c.buys, c.sells));
    }
    if (static_cast<long long>(c.buys) + c.sells > std::numeric_limits<int>::max()) {
      throw InputError(fmt::format("lsv: period {} asset {}: too many trades", c.period, c.asset));
    }
    if (!seen.emplace(c.period, c.asset).second) {
      throw InputError(fmt::format("lsv: period {} asset {} appears more than once", c.period, c.asset));
    }
    auto& tot = period_totals[c.period];
    tot.first += c.buys;
    tot.second += c.buys + c.sells;
  }

  LsvResult res;
  res.n_min = n_min;
  res.cells.reserve(cells.size());
  std::map<std::pair<int, int>, double> af_cache;  // (period, n) -> AF: cells of a period share pbar
  double sum_h = 0.0, sum_buy = 0.0, sum_sell = 0.0;
  for (const LsvCell& c : cells) {
    LsvCellResult out;
    out.period = c.period;
    out.asset = c.asset;
    out.n = c.buys + c.sells;
    if (out.n == 0) {
      out.p = out.pbar = out.af = out.h = kNaN;
      res.cells.push_back(out);
      continue;
    }
    const auto& tot = period_totals.at(c.period);
    out.p = c.buys / static_cast<double>(out.n);
    out.pbar = tot.first / tot.second;
    // Correctly rounded quotients: equal fractions give equal doubles, so the sides are exact.
    out.side = out.p > out.pbar ? LsvSide::buy : out.p < out.pbar ? LsvSide::sell : LsvSide::none;
    auto [it, inserted] = af_cache.try_emplace({c.period, out.n}, 0.0);
    if (inserted) it->second = lsv_adjustment_factor(out.n, out.pbar);
    out.af = it->second;
    out.h = std::abs(out.p - out.pbar) - out.af;
    out.included = out.n >= n_min;
    if (out.included) {
      ++res.n_cells;
      sum_h += out.h;
      if (out.side == LsvSide::buy) {
        ++res.n_buy;
        sum_buy += out.h;
      } else if (out.side == LsvSide::sell) {
        ++res.n_sell;
        sum_sell += out.h;
      }
    }
    res.cells.push_back(out);
  }
  if (res.n_cells == 0) {
    throw InputError(fmt::format("lsv: no period-asset cell has at least n_min = {} traders", n_min));
  }
  res.mean_h = sum_h / res.n_cells;
  res.buy_mean_h = res.n_buy > 0 ? sum_buy / res.n_buy : kNaN;
  res.sell_mean_h = res.n_sell > 0 ? sum_sell / res.n_sell : kNaN;
  if (res.n_cells < 2) {
    res.std_err = res.t_stat = res.p_value = kNaN;
    return res;
  }
  double ss = 0.0;
  for (const auto& c : res.cells) {
    if (c.included) ss += (c.h - res.mean_h) * (c.h - res.mean_h);
  }
  res.std_err = std::sqrt(ss / (res.n_cells - 1.0) / res.n_cells);
  // All H equal: t is +-inf (p = 0) unless they are all 0 (t undefined).
  res.t_stat = res.std_err > 0.0   ? res.mean_h / res.std_err
               : res.mean_h == 0.0 ? kNaN
                                   : std::copysign(std::numeric_limits<double>::infinity(), res.mean_h);
  res.p_value = two_sided_p_value(res.t_stat, res.n_cells - 1.0);
  return res;
}

// ---------------------------------------------------------------------------------------------
// CSSD / CSAD

DispersionSeries cross_sectional_dispersion(const Eigen::MatrixXd& returns) {
  if (returns.cols() < 2) {
    throw InputError(
        fmt::format("cross_sectional_dispersion: N = {} columns, need at least 2", returns.cols()));
  }
  if (returns.rows() < 1) throw InputError("cross_sectional_dispersion: the panel has no periods");
  require_finite(returns, "cross_sectional_dispersion: returns");
  DispersionSeries s;
  s.market_return = returns.rowwise().mean();
  const Eigen::ArrayXXd dev = (returns.colwise() - s.market_return).array();
  s.cssd = (dev.square().rowwise().sum() / (static_cast<double>(returns.cols()) - 1.0)).sqrt().matrix();
  s.csad = dev.abs().rowwise().mean().matrix();
  return s;
}

double quantile_linear(const Eigen::VectorXd& x, double q) {
  if (x.size() == 0) throw InputError("quantile_linear: empty sample");
  if (!(q >= 0.0 && q <= 1.0)) throw InputError(fmt::format("quantile_linear: q = {} must be in [0, 1]", q));
  require_finite(x, "quantile_linear: sample");
  std::vector<double> v(x.data(), x.data() + x.size());
  std::sort(v.begin(), v.end());
  const double h = (static_cast<double>(v.size()) - 1.0) * q;
  const auto lo = static_cast<std::size_t>(std::floor(h));
  if (lo + 1 >= v.size()) return v.back();
  const double a = v[lo], b = v[lo + 1], t = h - static_cast<double>(lo);
  // Interpolate from the nearer end (as numpy does) so the result never leaves [a, b].
  return t < 0.5 ? a + (b - a) * t : b - (b - a) * (1.0 - t);
}

ExtremeDummies extreme_market_dummies(const Eigen::VectorXd& market_return, double q) {
  if (!(q > 0.0 && q < 0.5))
    throw InputError(fmt::format("extreme_market_dummies: q = {} must be in (0, 0.5)", q));
  require_finite(market_return, "extreme_market_dummies: market return");
  ExtremeDummies d;
  d.lower_threshold = quantile_linear(market_return, q);
  d.upper_threshold = quantile_linear(market_return, 1.0 - q);
  d.lower = (market_return.array() <= d.lower_threshold).cast<double>().matrix();
  d.upper = (market_return.array() >= d.upper_threshold).cast<double>().matrix();
  return d;
}

RegressionCoefficient regression_coefficient(const HerdingRegression& r, const std::string& name) {
  RegressionCoefficient c;
  if (!r.fit) return c;
  for (std::size_t i = 0; i < r.coefficient_names.size(); ++i) {
    if (r.coefficient_names[i] != name) continue;
    const auto k = static_cast<Eigen::Index>(i);
    c.estimate = r.fit->coef[k];
    c.se = r.uses_hac ? r.fit->se_hac[k] : r.fit->se_ols[k];
    c.p = r.uses_hac ? r.fit->p_hac[k] : r.fit->p_ols[k];
    break;
  }
  return c;
}

HerdingRegression christie_huang(const Eigen::VectorXd& cssd, const ExtremeDummies& dummies,
                                 const HerdingOptions& options) {
  const Eigen::Index t = cssd.size();
  if (dummies.lower.size() != t || dummies.upper.size() != t) {
    throw InputError("christie_huang: CSSD and dummies differ in length");
  }
  require_periods(t, "christie_huang");
  if ((dummies.lower.array() == 0.0).all())
    throw InputError("christie_huang: lower-tail dummy D_L is all zeros");
  if ((dummies.upper.array() == 0.0).all())
    throw InputError("christie_huang: upper-tail dummy D_U is all zeros");
  Eigen::MatrixXd x(t, 3);
  x << Eigen::VectorXd::Ones(t), dummies.lower, dummies.upper;
  HerdingRegression reg;
  reg.model = "CH_CSSD";
  reg.coefficient_names = {"const", "beta_L", "beta_U"};
  reg.fit = ols(x, cssd, options.newey_west_lag);
  set_verdict(reg, {1, 2}, options.alpha);
  return reg;
}

HerdingRegression chang_cheng_khorana(const Eigen::VectorXd& csad, const Eigen::VectorXd& market_return,
                                      const HerdingOptions& options) {
  const Eigen::Index t = csad.size();
  if (market_return.size() != t) throw InputError("chang_cheng_khorana: CSAD and R_m differ in length");
  require_periods(t, "chang_cheng_khorana");
  Eigen::MatrixXd x(t, 3);
  x << Eigen::VectorXd::Ones(t), market_return.cwiseAbs(), market_return.cwiseAbs2();
  HerdingRegression reg;
  reg.model = "CCK_CSAD";
  reg.coefficient_names = {"const", "gamma1", "gamma2"};
  reg.fit = ols(x, csad, options.newey_west_lag);
  set_verdict(reg, {2}, options.alpha);
  return reg;
}

namespace {

// CCK on the periods where R_m has the given sign, kept in time order (HAC lags then count sample
// positions, the usual practice for these subsets).
HerdingRegression cck_subset(const DispersionSeries& s, bool up, const HerdingOptions& options) {
  std::vector<Eigen::Index> rows;
  for (Eigen::Index i = 0; i < s.market_return.size(); ++i) {
    if (up ? s.market_return(i) > 0.0 : s.market_return(i) < 0.0) rows.push_back(i);
  }
  const char* sign = up ? ">" : "<";
  if (rows.size() < static_cast<std::size_t>(kMinPeriods)) {
    HerdingRegression reg;
    reg.model = up ? "CCK_CSAD_up" : "CCK_CSAD_down";
    reg.coefficient_names = {"const", "gamma1", "gamma2"};
    reg.verdict = fmt::format("not estimated: {} periods with R_m {} 0, need at least {}", rows.size(), sign,
                              kMinPeriods);
    return reg;
  }
  const auto m = static_cast<Eigen::Index>(rows.size());
  Eigen::VectorXd csad(m), rm(m);
  for (Eigen::Index j = 0; j < m; ++j) {
    csad(j) = s.csad(rows[static_cast<std::size_t>(j)]);
    rm(j) = s.market_return(rows[static_cast<std::size_t>(j)]);
  }
  HerdingRegression reg = chang_cheng_khorana(csad, rm, options);
  reg.model = up ? "CCK_CSAD_up" : "CCK_CSAD_down";
  return reg;
}

}  // namespace

HerdingTestsResult herding_regressions(const Eigen::MatrixXd& returns, const HerdingOptions& options) {
  require_periods(returns.rows(), "herding_regressions");
  HerdingTestsResult r;
  r.series = cross_sectional_dispersion(returns);
  r.dummies = extreme_market_dummies(r.series.market_return, options.quantile);
  r.ch = christie_huang(r.series.cssd, r.dummies, options);
  r.cck = chang_cheng_khorana(r.series.csad, r.series.market_return, options);
  if (options.asymmetric) {
    r.cck_up = cck_subset(r.series, true, options);
    r.cck_down = cck_subset(r.series, false, options);
  }
  return r;
}

}  // namespace herdsim::analysis
