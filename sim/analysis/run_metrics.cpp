#include "sim/analysis/run_metrics.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "sim/analysis/summary_stats.hpp"
#include "sim/error.hpp"
#include "sim/theory/merton.hpp"

namespace herdsim::analysis {

namespace {

bool finite(double x) {
  return std::isfinite(x);
}

double mean_or_nan(double sum, long long count) {
  return count > 0 ? sum / static_cast<double>(count) : kNaN;
}

/// Two-sided standard normal quantile for a confidence level (bisection on erfc: no table needed).
double normal_critical_value(double confidence) {
  const double tail = (1.0 - confidence) / 2.0;
  double lo = 0.0;
  double hi = 10.0;
  for (int i = 0; i < 200; ++i) {
    const double mid = 0.5 * (lo + hi);
    (0.5 * std::erfc(mid / std::sqrt(2.0)) > tail ? lo : hi) = mid;
  }
  return 0.5 * (lo + hi);
}

/// Accumulates squared errors per decision row and per agent.
struct ErrorAccumulator {
  std::vector<double> step_sum;
  std::vector<long long> step_count;
  Eigen::VectorXd agent_sum;
  Eigen::VectorXd agent_count;

  ErrorAccumulator(int rows, int agents)
      : step_sum(static_cast<std::size_t>(rows), 0.0),
        step_count(static_cast<std::size_t>(rows), 0),
        agent_sum(Eigen::VectorXd::Zero(agents)),
        agent_count(Eigen::VectorXd::Zero(agents)) {}

  void add(int row, int agent, double err) {
    step_sum[static_cast<std::size_t>(row)] += err * err;
    ++step_count[static_cast<std::size_t>(row)];
    agent_sum[agent] += err * err;
    agent_count[agent] += 1.0;
  }

  [[nodiscard]] ErrorSeries series() const {
    ErrorSeries s;
    double total = 0.0;
    long long count = 0;
    for (std::size_t d = 0; d < step_sum.size(); ++d) {
      s.per_step.push_back(mean_or_nan(step_sum[d], step_count[d]));
      total += step_sum[d];
      count += step_count[d];
    }
    s.mse = mean_or_nan(total, count);
    s.rmse = std::sqrt(s.mse);
    return s;
  }

  [[nodiscard]] Eigen::VectorXd per_agent() const {
    return (agent_count.array() > 0.0).select(agent_sum.array() / agent_count.array(), kNaN);
  }
};

std::string lsv_verdict(const LsvResult& r, double alpha) {
  if (r.n_cells < 2 || !finite(r.p_value))
    return fmt::format("not testable ({} qualifying market-periods)", r.n_cells);
  if (r.p_value < alpha && r.mean_h > 0.0)
    return fmt::format("significant herding (mean H = {:.4f}, t = {:.2f}, p = {:.3g})", r.mean_h, r.t_stat,
                       r.p_value);
  if (r.p_value < alpha)
    return fmt::format(
        "significantly negative H: trades less aligned than independent ones (mean H = {:.4f}, p = {:.3g})",
        r.mean_h, r.p_value);
  return fmt::format("no significant herding (mean H = {:.4f}, p = {:.3g})", r.mean_h, r.p_value);
}

}  // namespace

Distribution describe(std::vector<double> values) {
  values.erase(std::remove_if(values.begin(), values.end(), [](double x) { return !finite(x); }),
               values.end());
  Distribution d;
  d.count = static_cast<long long>(values.size());
  if (values.empty()) return d;
  std::sort(values.begin(), values.end());
  double sum = 0.0;
  for (double x : values) sum += x;
  d.mean = sum / static_cast<double>(values.size());
  if (values.size() > 1) {
    double ss = 0.0;
    for (double x : values) ss += (x - d.mean) * (x - d.mean);
    d.std = std::sqrt(ss / static_cast<double>(values.size() - 1));
  }
  const auto sorted = [&](std::size_t rank) { return values[rank]; };
  d.q05 = interpolated_quantile(0.05, values.size(), sorted);
  d.median = interpolated_quantile(0.5, values.size(), sorted);
  d.q95 = interpolated_quantile(0.95, values.size(), sorted);
  return d;
}

double plan_certainty_equivalent(const theory::Schedule& steps, const Eigen::VectorXd& plan, double x0,
                                 double alpha) {
  if (!steps.time().is_discrete())
    throw InputError("plan_certainty_equivalent: the plan's CE is defined on the discrete step market");
  const double dt = steps.step_years();
  const auto path = [&](double t) { return plan[static_cast<Eigen::Index>(std::lround(t / dt))]; };
  const theory::WealthMoments m =
      theory::wealth_moments(steps, x0, path, static_cast<double>(plan.size()) * dt);
  return m.mean - 0.5 * alpha * m.variance;
}

PopulationMetrics analyse_population(const PopulationInput& in, RowSource& rows) {
  const int m = in.agents;
  const int paths = in.paths;
  const int n_wealth = static_cast<int>(in.wealth_steps.size());
  const int n_decision = static_cast<int>(in.decision_steps.size());
  if (n_wealth < 1 || n_decision >= n_wealth)
    throw InputError(
        fmt::format("analysis needs wealth rows after the decisions ({} wealth rows, {} decision rows)",
                    n_wealth, n_decision));
  for (int d = 0; d < n_decision; ++d)
    if (in.decision_steps[static_cast<std::size_t>(d)] != in.wealth_steps[static_cast<std::size_t>(d)])
      throw InputError("decision rows must coincide with the first wealth rows (schema v1 row selection)");

  PopulationMetrics out;
  const bool has_theory = in.theory.size() > 0;
  const bool has_reference =
      has_theory && in.reference != HerdReference::none && in.merton.rows() == m && in.merton.size() > 0;
  const bool has_ce = has_theory && in.alpha.size() == m && in.ce_theory.size() == m;
  const auto rowsz = static_cast<std::size_t>(n_decision);

  // Decision error.
  ErrorAccumulator err_amount(n_decision, m);
  ErrorAccumulator err_pp(n_decision, m);
  long long pp_skipped = 0;
  // Herding distance (sums of squares over recorded decisions; dt cancels in the ratio) and opinion.
  Eigen::VectorXd h_num = Eigen::VectorXd::Zero(m);
  Eigen::VectorXd h_den = Eigen::VectorXd::Zero(m);
  Eigen::VectorXd h_num_th = Eigen::VectorXd::Zero(m);
  Eigen::VectorXd h_den_th = Eigen::VectorXd::Zero(m);
  // w per row as the least-squares weight sum (Pbar - P)(Pbar - P_alpha) / sum (Pbar - P_alpha)^2: equal
  // to w when agents share it, and stable where some agent's reference nearly equals its Merton path.
  std::vector<double> w_num(rowsz, 0.0), w_den(rowsz, 0.0), w_th_num(rowsz, 0.0), w_th_den(rowsz, 0.0);
  Eigen::VectorXi w_defined = Eigen::VectorXi::Zero(m);
  // LSV cells: (period = decision row, asset = path).
  std::vector<LsvCell> cells;
  const bool cross_section = m >= 2;
  bool lsv_possible = cross_section && n_decision >= 2 && in.market_return.rows() == paths &&
                      in.market_return.cols() >= n_decision;
  // Dispersion per (path, period).
  const int periods = n_wealth - 1;
  Eigen::MatrixXd rm = Eigen::MatrixXd::Constant(paths, std::max(periods, 0), kNaN);
  Eigen::MatrixXd cssd = rm;
  Eigen::MatrixXd csad = rm;
  // Investor metrics per (agent, path).
  Eigen::MatrixXd peak, max_dd, sum_r, sum_r2, sum_ex, count_r;
  Eigen::Array<bool, Eigen::Dynamic, Eigen::Dynamic> ruined =
      Eigen::Array<bool, Eigen::Dynamic, Eigen::Dynamic>::Constant(m, paths, false);

  Eigen::MatrixXd wealth, prev_wealth, amount, prev_amount;
  std::vector<double> returns;
  for (int s = 0; s < n_wealth; ++s) {
    rows.wealth_row(s, wealth);
    if (wealth.rows() != m || wealth.cols() != paths)
      throw InputError(fmt::format("wealth row {} is {} x {}, expected {} x {}", s, wealth.rows(),
                                   wealth.cols(), m, paths));
    if (s < n_decision) {
      rows.amount_row(s, amount);
      if (amount.rows() != m || amount.cols() != paths)
        throw InputError(fmt::format("decision row {} has the wrong shape", s));
      const int k = in.decision_steps[static_cast<std::size_t>(s)];
      const auto su = static_cast<std::size_t>(s);
      // Population-mean reference (peers): the mean decision of the population on each path.
      Eigen::RowVectorXd pop_mean;
      double theory_mean = 0.0;
      if (has_reference && in.reference == HerdReference::population_mean) {
        pop_mean = amount.colwise().mean();
        theory_mean = in.theory.col(k).mean();
      }
      for (int p = 0; p < paths; ++p) {
        for (int i = 0; i < m; ++i) {
          const double a = amount(i, p);
          if (has_theory) {
            const double e = a - in.theory(i, k);
            err_amount.add(s, i, e);
            const double x = wealth(i, p);
            if (x > 0.0 && finite(x))
              err_pp.add(s, i, 100.0 * e / x);
            else
              ++pp_skipped;
          }
          if (has_reference) {
            const double own = in.merton(i, k);
            const double ref = in.reference == HerdReference::leader ? in.leader(i, k) : pop_mean[p];
            h_num[i] += (a - own) * (a - own);
            h_den[i] += (ref - own) * (ref - own);
            w_num[su] += (ref - a) * (ref - own);
            w_den[su] += (ref - own) * (ref - own);
          }
        }
      }
      if (has_reference) {
        for (int i = 0; i < m; ++i) {
          const double own = in.merton(i, k);
          const double plan = in.theory(i, k);
          const double ref = in.reference == HerdReference::leader ? in.leader(i, k) : theory_mean;
          h_num_th[i] += (plan - own) * (plan - own);
          h_den_th[i] += (ref - own) * (ref - own);
          w_th_num[su] += (ref - plan) * (ref - own);
          w_th_den[su] += (ref - own) * (ref - own);
          if (ref != own) w_defined[i] = 1;
        }
      }
      // LSV: trade = new amount minus what the previous holding grew into over one step.
      if (lsv_possible && s >= 1) {
        if (k - in.decision_steps[su - 1] != 1) {
          lsv_possible = false;
        } else {
          const bool shares = in.lsv_trade == LsvTrade::shares;
          for (int p = 0; p < paths; ++p) {
            const double growth = 1.0 + in.market_return(p, s - 1);
            int buys = 0;
            int sells = 0;
            for (int i = 0; i < m; ++i) {
              double now = amount(i, p);
              double before = prev_amount(i, p) * growth;
              if (!shares) {
                // Proportions need positive wealth on both sides; others are not trading here.
                if (!(wealth(i, p) > 0.0) || !(prev_wealth(i, p) > 0.0)) continue;
                now = amount(i, p) / wealth(i, p);
                before = prev_amount(i, p) / prev_wealth(i, p);
              }
              const double trade = now - before;
              const double tol = 1e-12 * std::max(std::abs(now), std::abs(before));
              if (!finite(trade)) continue;
              if (trade > tol) ++buys;
              if (trade < -tol) ++sells;
            }
            cells.push_back({s, p, buys, sells});
          }
        }
      }
      std::swap(prev_amount, amount);
    }

    if (s == 0) {
      peak = wealth;
      max_dd = Eigen::MatrixXd::Zero(m, paths);
      sum_r = Eigen::MatrixXd::Zero(m, paths);
      sum_r2 = sum_r;
      sum_ex = sum_r;
      count_r = sum_r;
      ruined = wealth.array() <= 0.0 || !wealth.array().isFinite();
    } else {
      const int len =
          in.wealth_steps[static_cast<std::size_t>(s)] - in.wealth_steps[static_cast<std::size_t>(s - 1)];
      const double rf = std::pow(1.0 + in.r * in.dt, len) - 1.0;
      for (int p = 0; p < paths; ++p) {
        returns.clear();
        for (int i = 0; i < m; ++i) {
          const double x0 = prev_wealth(i, p);
          const double x1 = wealth(i, p);
          if (ruined(i, p)) continue;
          const double ret = x1 / x0 - 1.0;
          if (!(x1 > 0.0) || !finite(ret)) {
            ruined(i, p) = true;
            continue;
          }
          returns.push_back(ret);
          sum_r(i, p) += ret;
          sum_r2(i, p) += ret * ret;
          sum_ex(i, p) += ret - rf;
          count_r(i, p) += 1.0;
          peak(i, p) = std::max(peak(i, p), x1);
          max_dd(i, p) = std::max(max_dd(i, p), 1.0 - x1 / peak(i, p));
        }
        if (returns.size() >= 2) {
          double mean = 0.0;
          for (double x : returns) mean += x;
          mean /= static_cast<double>(returns.size());
          double ss = 0.0;
          double sa = 0.0;
          for (double x : returns) {
            ss += (x - mean) * (x - mean);
            sa += std::abs(x - mean);
          }
          rm(p, s - 1) = mean;
          cssd(p, s - 1) = std::sqrt(ss / static_cast<double>(returns.size() - 1));
          csad(p, s - 1) = sa / static_cast<double>(returns.size());
        }
      }
    }
    std::swap(prev_wealth, wealth);
  }
  // prev_wealth now holds the final row (step n).
  const Eigen::MatrixXd& final_wealth = prev_wealth;

  if (has_theory) {
    DecisionError de;
    de.amount = err_amount.series();
    de.proportion_pp = err_pp.series();
    de.agent_mse_amount = err_amount.per_agent();
    de.agent_mse_pp = err_pp.per_agent();
    if (pp_skipped > 0)
      out.notes.push_back(fmt::format(
          "{} decisions with non-positive wealth left out of the proportion error (a proportion needs X > 0)",
          pp_skipped));
    out.decision_error = std::move(de);
  } else {
    out.notes.emplace_back("no theoretical plan for this population: no decision error, CE gap, h or w(t)");
  }

  if (has_ce) {
    CertaintyEquivalent ce;
    ce.confidence = in.confidence;
    ce.exact = in.ce_exact;
    ce.paths = paths;
    Eigen::VectorXd u = Eigen::VectorXd::Zero(paths);
    std::vector<double> y(static_cast<std::size_t>(paths));
    double gap_sum = 0.0;
    double th_sum = 0.0;
    int used = 0;
    // Agents whose terminal wealth is finite on every path.
    std::vector<int> agents;
    for (int i = 0; i < m; ++i)
      if (final_wealth.row(i).allFinite() && in.alpha[i] > 0.0 && finite(in.ce_theory[i]))
        agents.push_back(i);
    const double weight = agents.empty() ? 0.0 : 1.0 / static_cast<double>(agents.size());
    for (int i : agents) {
      // ln E[exp(-alpha (X - CE_th))] by log-sum-exp: exp(-alpha X) over- or underflows for rich agents.
      double c = -std::numeric_limits<double>::infinity();
      for (int p = 0; p < paths; ++p) {
        y[static_cast<std::size_t>(p)] = -in.alpha[i] * (final_wealth(i, p) - in.ce_theory[i]);
        c = std::max(c, y[static_cast<std::size_t>(p)]);
      }
      double zbar = 0.0;
      for (int p = 0; p < paths; ++p) zbar += std::exp(y[static_cast<std::size_t>(p)] - c);
      zbar /= paths;
      double zvar = 0.0;
      for (int p = 0; p < paths; ++p)
        zvar += std::pow(std::exp(y[static_cast<std::size_t>(p)] - c) - zbar, 2);
      zvar = paths > 1 ? zvar / (paths - 1) : 0.0;
      // ln of a sample mean is biased low by var / (2 P mean^2) (second-order delta method): remove it,
      // else the CE of a few hundred paths overstates the simulated CE.
      const double gap = -(c + std::log(zbar) + zvar / (2.0 * paths * zbar * zbar)) / in.alpha[i];
      gap_sum += gap;
      th_sum += in.ce_theory[i];
      ++used;
      // Delta method: d(mean gap)/d z_ip = -1 / (M alpha_i zbar_i), z scaled by e^{-c} consistently.
      for (int p = 0; p < paths; ++p)
        u[p] += -weight / (in.alpha[i] * zbar) * std::exp(y[static_cast<std::size_t>(p)] - c);
    }
    ce.agents = used;
    if (used > 0) {
      ce.gap = gap_sum / used;
      ce.theory = th_sum / used;
      ce.simulated = ce.theory + ce.gap;
      if (paths >= 2) {
        const double var = (u.array() - u.mean()).square().sum() / (paths - 1) / paths;
        const double half = normal_critical_value(in.confidence) * std::sqrt(var);
        ce.ci_low = ce.gap - half;
        ce.ci_high = ce.gap + half;
      } else {
        out.notes.emplace_back("one path: no confidence interval for the CE gap");
      }
    }
    if (used < m)
      out.notes.push_back(
          fmt::format("{} agents with non-finite terminal wealth left out of the CE", m - used));
    out.certainty_equivalent = ce;
  }

  if (has_reference) {
    HerdingDistance hd;
    hd.per_agent_simulated.resize(m);
    hd.per_agent_theory.resize(m);
    for (int i = 0; i < m; ++i) {
      hd.per_agent_simulated[i] = h_den[i] > 0.0 ? std::sqrt(h_num[i] / h_den[i]) : kNaN;
      hd.per_agent_theory[i] = h_den_th[i] > 0.0 ? std::sqrt(h_num_th[i] / h_den_th[i]) : kNaN;
    }
    hd.simulated = describe({hd.per_agent_simulated.data(), hd.per_agent_simulated.data() + m});
    hd.theory = describe({hd.per_agent_theory.data(), hd.per_agent_theory.data() + m});
    out.herding_distance = std::move(hd);
    if (in.opinion) {
      Opinion op;
      for (std::size_t d = 0; d < rowsz; ++d) {
        op.simulated.push_back(w_den[d] > 0.0 ? w_num[d] / w_den[d] : kNaN);
        op.theory.push_back(w_th_den[d] > 0.0 ? w_th_num[d] / w_th_den[d] : kNaN);
      }
      op.agents = w_defined.sum();
      out.opinion = std::move(op);
    }
  }

  // LSV.
  if (!cross_section) {
    out.notes.emplace_back("one agent: the herding tests across agents (LSV, CSSD, CSAD) need at least two");
  } else if (!lsv_possible) {
    out.notes.emplace_back(n_decision < 2 ? "LSV needs at least two decision rows"
                                          : "LSV needs consecutive decisions (record.every = 1)");
  } else {
    try {
      LsvSummary ls;
      ls.overall = lsv(cells, in.lsv_min_traders);
      std::vector<double> hs(rowsz, 0.0), bs(rowsz, 0.0), ss(rowsz, 0.0);
      std::vector<int> hn(rowsz, 0), bn(rowsz, 0), sn(rowsz, 0);
      for (const auto& c : ls.overall.cells) {
        if (!c.included) continue;
        const auto d = static_cast<std::size_t>(c.period);
        hs[d] += c.h;
        ++hn[d];
        if (c.side == LsvSide::buy) bs[d] += c.h, ++bn[d];
        if (c.side == LsvSide::sell) ss[d] += c.h, ++sn[d];
      }
      for (std::size_t d = 1; d < rowsz; ++d) {
        ls.decision_steps.push_back(in.decision_steps[d]);
        ls.h.push_back(mean_or_nan(hs[d], hn[d]));
        ls.buy.push_back(mean_or_nan(bs[d], bn[d]));
        ls.sell.push_back(mean_or_nan(ss[d], sn[d]));
      }
      ls.overall.cells.clear();
      ls.verdict = lsv_verdict(ls.overall, in.herding.alpha);
      out.lsv = std::move(ls);
    } catch (const InputError& e) {
      out.notes.push_back(fmt::format("LSV not computed: {}", e.what()));
    }
  }

  // CSSD / CSAD on the pooled (path, period) cross-sections, path-major so that each path's periods
  // are adjacent (Newey–West lags then mostly pair periods of one path).
  if (periods >= 1 && cross_section) {
    std::vector<double> vm, vs, va;
    for (int p = 0; p < paths; ++p)
      for (int t = 0; t < periods; ++t)
        if (finite(rm(p, t))) {
          vm.push_back(rm(p, t));
          vs.push_back(cssd(p, t));
          va.push_back(csad(p, t));
        }
    DispersionSummary ds;
    ds.observations = static_cast<int>(vm.size());
    for (int t = 0; t < periods; ++t) {
      ds.decision_steps.push_back(in.wealth_steps[static_cast<std::size_t>(t)]);
      double a = 0.0;
      double b = 0.0;
      int c = 0;
      for (int p = 0; p < paths; ++p)
        if (finite(rm(p, t))) a += csad(p, t), b += rm(p, t), ++c;
      ds.csad_series.push_back(mean_or_nan(a, c));
      ds.market_series.push_back(mean_or_nan(b, c));
    }
    const Eigen::Map<const Eigen::VectorXd> mv(vm.data(), static_cast<Eigen::Index>(vm.size()));
    const Eigen::Map<const Eigen::VectorXd> sv(vs.data(), static_cast<Eigen::Index>(vs.size()));
    const Eigen::Map<const Eigen::VectorXd> av(va.data(), static_cast<Eigen::Index>(va.size()));
    bool ok = true;
    try {
      ds.cssd = christie_huang(sv, extreme_market_dummies(mv, in.herding.quantile), in.herding);
    } catch (const InputError& e) {
      ok = false;
      out.notes.push_back(fmt::format("CSSD regression not estimated: {}", e.what()));
    }
    try {
      ds.csad = chang_cheng_khorana(av, mv, in.herding);
    } catch (const InputError& e) {
      ok = false;
      out.notes.push_back(fmt::format("CSAD regression not estimated: {}", e.what()));
    }
    if (ok || ds.cssd.fit || ds.csad.fit) out.dispersion = std::move(ds);
  }

  // Investor metrics.
  {
    InvestorMetrics im;
    const double periods_per_year =
        n_wealth >= 2 ? 1.0 / ((in.wealth_steps[1] - in.wealth_steps[0]) * in.dt) : kNaN;
    std::vector<double> cum, shp, vol, mdd;
    cum.reserve(static_cast<std::size_t>(m) * static_cast<std::size_t>(paths));
    im.agent_cumulative_return.resize(m);
    im.agent_sharpe.resize(m);
    im.agent_volatility.resize(m);
    im.agent_max_drawdown.resize(m);
    for (int i = 0; i < m; ++i) {
      double a_cum = 0.0, a_shp = 0.0, a_vol = 0.0, a_mdd = 0.0;
      int n_cum = 0, n_shp = 0, n_vol = 0, n_mdd = 0;
      for (int p = 0; p < paths; ++p) {
        if (ruined(i, p)) ++im.ruined_pairs;
        const double x0 = in.wealth0.size() == m ? in.wealth0[i] : kNaN;
        const double c = x0 > 0.0 ? final_wealth(i, p) / x0 - 1.0 : kNaN;
        const double cnt = count_r(i, p);
        double v = kNaN;
        double sh = kNaN;
        if (cnt >= 2.0) {
          const double mean = sum_r(i, p) / cnt;
          const double var = std::max(0.0, (sum_r2(i, p) - cnt * mean * mean) / (cnt - 1.0));
          v = std::sqrt(var * periods_per_year);
          sh = var > 0.0 ? sum_ex(i, p) / cnt / std::sqrt(var) * std::sqrt(periods_per_year) : kNaN;
        }
        const double dd = ruined(i, p) ? 1.0 : max_dd(i, p);
        cum.push_back(c);
        shp.push_back(sh);
        vol.push_back(v);
        mdd.push_back(dd);
        if (finite(c)) a_cum += c, ++n_cum;
        if (finite(sh)) a_shp += sh, ++n_shp;
        if (finite(v)) a_vol += v, ++n_vol;
        if (finite(dd)) a_mdd += dd, ++n_mdd;
      }
      im.agent_cumulative_return[i] = mean_or_nan(a_cum, n_cum);
      im.agent_sharpe[i] = mean_or_nan(a_shp, n_shp);
      im.agent_volatility[i] = mean_or_nan(a_vol, n_vol);
      im.agent_max_drawdown[i] = mean_or_nan(a_mdd, n_mdd);
    }
    im.cumulative_return = describe(std::move(cum));
    im.sharpe = describe(std::move(shp));
    im.volatility = describe(std::move(vol));
    im.max_drawdown = describe(std::move(mdd));
    if (im.ruined_pairs > 0)
      out.notes.push_back(fmt::format(
          "{} (agent, path) pairs reached non-positive wealth (CARA amounts do not scale with wealth): their "
          "returns stop there and their drawdown counts as 1",
          im.ruined_pairs));
    out.investor = std::move(im);
  }
  return out;
}

}  // namespace herdsim::analysis
