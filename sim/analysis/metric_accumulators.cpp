#include "sim/analysis/metric_accumulators.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "sim/error.hpp"

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

std::string lsv_verdict(const LsvResult& r, double alpha) {
  if (r.n_cells < 2 || !finite(r.p_value))
    return fmt::format("not testable ({} qualifying market-periods)", r.n_cells);
  if (r.p_value < alpha && r.mean_h > 0.0)
    return fmt::format("significant correlated trading (mean H = {:.4f}, t = {:.2f}, p = {:.3g})", r.mean_h,
                       r.t_stat, r.p_value);
  if (r.p_value < alpha)
    return fmt::format(
        "significantly negative H: trades less aligned than independent ones (mean H = {:.4f}, p = {:.3g})",
        r.mean_h, r.p_value);
  return fmt::format("no significant correlated trading (mean H = {:.4f}, p = {:.3g})", r.mean_h, r.p_value);
}

/// The decisions of one row beside the agents' own Merton amounts and their reference Pbar:
/// simulated(i, P, P_alpha, Pbar) for each path and agent (path-major), then theory(i, plan, P_alpha,
/// Pbar_plan) for each agent.
template <class Simulated, class Theory>
void for_each_decision(const DecisionRow& row, const ReferenceRow& reference, const Eigen::MatrixXd& merton,
                       const Eigen::MatrixXd& plan, Simulated&& simulated, Theory&& theory) {
  const int k = row.step;
  const auto m = static_cast<int>(row.amount.rows());
  for (int p = 0; p < static_cast<int>(row.amount.cols()); ++p)
    for (int i = 0; i < m; ++i) simulated(i, row.amount(i, p), merton(i, k), reference.simulated(i, p));
  for (int i = 0; i < m; ++i) theory(i, plan(i, k), merton(i, k), reference.theory(i));
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Decision error

SquaredErrors::SquaredErrors(int rows, int agents)
    : row_sum_(static_cast<std::size_t>(rows), 0.0),
      row_count_(static_cast<std::size_t>(rows), 0),
      agent_sum_(Eigen::VectorXd::Zero(agents)),
      agent_count_(Eigen::VectorXd::Zero(agents)) {}

void SquaredErrors::add(int row, int agent, double error) {
  row_sum_[static_cast<std::size_t>(row)] += error * error;
  ++row_count_[static_cast<std::size_t>(row)];
  agent_sum_[agent] += error * error;
  agent_count_[agent] += 1.0;
}

ErrorSeries SquaredErrors::series() const {
  ErrorSeries s;
  double total = 0.0;
  long long count = 0;
  for (std::size_t d = 0; d < row_sum_.size(); ++d) {
    s.per_step.push_back(mean_or_nan(row_sum_[d], row_count_[d]));
    total += row_sum_[d];
    count += row_count_[d];
  }
  s.mse = mean_or_nan(total, count);
  s.rmse = std::sqrt(s.mse);
  return s;
}

Eigen::VectorXd SquaredErrors::per_agent() const {
  return (agent_count_.array() > 0.0).select(agent_sum_.array() / agent_count_.array(), kNaN);
}

DecisionErrorAccumulator::DecisionErrorAccumulator(const Eigen::MatrixXd& plan, int rows, int agents)
    : plan_(plan), amount_(rows, agents), proportion_pp_(rows, agents) {}

void DecisionErrorAccumulator::add(const DecisionRow& row) {
  for (Eigen::Index p = 0; p < row.amount.cols(); ++p) {
    for (int i = 0; i < static_cast<int>(row.amount.rows()); ++i) {
      const double e = row.amount(i, p) - plan_(i, row.step);
      amount_.add(row.index, i, e);
      const double x = row.wealth(i, p);
      if (x > 0.0 && finite(x))
        proportion_pp_.add(row.index, i, 100.0 * e / x);
      else
        ++proportion_skipped_;
    }
  }
}

DecisionError DecisionErrorAccumulator::finish(std::vector<std::string>& notes) const {
  DecisionError de;
  de.amount = amount_.series();
  de.proportion_pp = proportion_pp_.series();
  de.agent_mse_amount = amount_.per_agent();
  de.agent_mse_pp = proportion_pp_.per_agent();
  if (proportion_skipped_ > 0)
    notes.push_back(fmt::format(
        "{} decisions with non-positive wealth left out of the proportion error (a proportion needs X > 0)",
        proportion_skipped_));
  return de;
}

// ---------------------------------------------------------------------------------------------
// Herding distance and opinion

ReferenceRow::ReferenceRow(const PopulationInput& input, const DecisionRow& row) : step_(row.step) {
  if (input.reference == HerdReference::leader) {
    leader_ = &input.leader;
  } else {
    path_mean_ = row.amount.colwise().mean();
    plan_mean_ = input.theory.col(row.step).mean();
  }
}

HerdingDistanceAccumulator::HerdingDistanceAccumulator(const PopulationInput& input)
    : merton_(input.merton),
      plan_(input.theory),
      simulated_num_(Eigen::VectorXd::Zero(input.agents)),
      simulated_den_(Eigen::VectorXd::Zero(input.agents)),
      theory_num_(Eigen::VectorXd::Zero(input.agents)),
      theory_den_(Eigen::VectorXd::Zero(input.agents)) {}

void HerdingDistanceAccumulator::add(const DecisionRow& row, const ReferenceRow& reference) {
  for_each_decision(
      row, reference, merton_, plan_,
      [&](int i, double a, double own, double ref) {
        simulated_num_[i] += (a - own) * (a - own);
        simulated_den_[i] += (ref - own) * (ref - own);
      },
      [&](int i, double plan, double own, double ref) {
        theory_num_[i] += (plan - own) * (plan - own);
        theory_den_[i] += (ref - own) * (ref - own);
      });
}

HerdingDistance HerdingDistanceAccumulator::finish() const {
  HerdingDistance hd;
  const auto m = simulated_num_.size();
  hd.per_agent_simulated.resize(m);
  hd.per_agent_theory.resize(m);
  for (Eigen::Index i = 0; i < m; ++i) {
    hd.per_agent_simulated[i] =
        simulated_den_[i] > 0.0 ? std::sqrt(simulated_num_[i] / simulated_den_[i]) : kNaN;
    hd.per_agent_theory[i] = theory_den_[i] > 0.0 ? std::sqrt(theory_num_[i] / theory_den_[i]) : kNaN;
  }
  hd.simulated = describe({hd.per_agent_simulated.data(), hd.per_agent_simulated.data() + m});
  hd.theory = describe({hd.per_agent_theory.data(), hd.per_agent_theory.data() + m});
  return hd;
}

OpinionAccumulator::OpinionAccumulator(const PopulationInput& input, int rows)
    : merton_(input.merton),
      plan_(input.theory),
      simulated_num_(static_cast<std::size_t>(rows), 0.0),
      simulated_den_(static_cast<std::size_t>(rows), 0.0),
      theory_num_(static_cast<std::size_t>(rows), 0.0),
      theory_den_(static_cast<std::size_t>(rows), 0.0),
      agent_simulated_num_(Eigen::VectorXd::Zero(input.agents)),
      agent_simulated_den_(Eigen::VectorXd::Zero(input.agents)),
      agent_theory_num_(Eigen::VectorXd::Zero(input.agents)),
      agent_theory_den_(Eigen::VectorXd::Zero(input.agents)),
      defined_(Eigen::VectorXi::Zero(input.agents)) {
  for (const double t : input.opinion_at_years) {
    if (input.decision_steps.empty()) break;
    Opinion::At a;
    a.requested_years = t;
    a.row = nearest_decision_row(input.decision_steps, input.dt, t);
    a.step = input.decision_steps[static_cast<std::size_t>(a.row)];
    a.time_years = a.step * input.dt;
    at_.push_back(std::move(a));
    for (auto* v : {&at_simulated_num_, &at_simulated_den_, &at_theory_num_, &at_theory_den_})
      v->push_back(Eigen::VectorXd::Zero(input.agents));
  }
}

void OpinionAccumulator::add(const DecisionRow& row, const ReferenceRow& reference) {
  const auto d = static_cast<std::size_t>(row.index);
  for_each_decision(
      row, reference, merton_, plan_,
      [&](int i, double a, double own, double ref) {
        simulated_num_[d] += (ref - a) * (ref - own);
        simulated_den_[d] += (ref - own) * (ref - own);
        agent_simulated_num_[i] += (ref - a) * (ref - own);
        agent_simulated_den_[i] += (ref - own) * (ref - own);
      },
      [&](int i, double plan, double own, double ref) {
        theory_num_[d] += (ref - plan) * (ref - own);
        theory_den_[d] += (ref - own) * (ref - own);
        agent_theory_num_[i] += (ref - plan) * (ref - own);
        agent_theory_den_[i] += (ref - own) * (ref - own);
        if (ref != own) defined_[i] = 1;
      });
  for (std::size_t k = 0; k < at_.size(); ++k) {
    if (at_[k].row != row.index) continue;
    for_each_decision(
        row, reference, merton_, plan_,
        [&](int i, double a, double own, double ref) {
          at_simulated_num_[k][i] += (ref - a) * (ref - own);
          at_simulated_den_[k][i] += (ref - own) * (ref - own);
        },
        [&](int i, double plan, double own, double ref) {
          at_theory_num_[k][i] += (ref - plan) * (ref - own);
          at_theory_den_[k][i] += (ref - own) * (ref - own);
        });
  }
}

Opinion OpinionAccumulator::finish() const {
  Opinion op;
  for (std::size_t d = 0; d < simulated_num_.size(); ++d) {
    op.simulated.push_back(simulated_den_[d] > 0.0 ? simulated_num_[d] / simulated_den_[d] : kNaN);
    op.theory.push_back(theory_den_[d] > 0.0 ? theory_num_[d] / theory_den_[d] : kNaN);
  }
  op.agents = defined_.sum();
  const auto ratio = [](double num, double den) { return den > 0.0 ? num / den : kNaN; };
  op.per_agent_simulated = agent_simulated_num_.binaryExpr(agent_simulated_den_, ratio);
  op.per_agent_theory = agent_theory_num_.binaryExpr(agent_theory_den_, ratio);
  op.at = at_;
  for (std::size_t k = 0; k < at_.size(); ++k) {
    op.at[k].per_agent_simulated = at_simulated_num_[k].binaryExpr(at_simulated_den_[k], ratio);
    op.at[k].per_agent_theory = at_theory_num_[k].binaryExpr(at_theory_den_[k], ratio);
  }
  return op;
}

// ---------------------------------------------------------------------------------------------
// LSV

LsvAccumulator::LsvAccumulator(const PopulationInput& input)
    : input_(input),
      possible_(input.agents >= 2 && input.decision_steps.size() >= 2 &&
                input.market_return.rows() == input.paths &&
                input.market_return.cols() >= static_cast<Eigen::Index>(input.decision_steps.size())) {}

void LsvAccumulator::add(const DecisionRow& row) {
  if (!possible_ || row.index < 1) return;
  // A trade is the new amount against what the previous holding grew into over one step.
  if (row.step - row.previous_step != 1) {
    possible_ = false;
    return;
  }
  const bool shares = input_.lsv_trade == LsvTrade::shares;
  for (int p = 0; p < input_.paths; ++p) {
    const double growth = 1.0 + input_.market_return(p, row.index - 1);
    int buys = 0;
    int sells = 0;
    for (int i = 0; i < input_.agents; ++i) {
      double now = row.amount(i, p);
      double before = row.previous_amount(i, p) * growth;
      if (!shares) {
        // Proportions need positive wealth on both sides; others are not trading here.
        if (!(row.wealth(i, p) > 0.0) || !(row.previous_wealth(i, p) > 0.0)) continue;
        now = row.amount(i, p) / row.wealth(i, p);
        before = row.previous_amount(i, p) / row.previous_wealth(i, p);
      }
      const double trade = now - before;
      const double tol = 1e-12 * std::max(std::abs(now), std::abs(before));
      if (!finite(trade)) continue;
      if (trade > tol) ++buys;
      if (trade < -tol) ++sells;
    }
    cells_.push_back({row.index, p, buys, sells});
  }
}

std::optional<LsvSummary> LsvAccumulator::finish(std::vector<std::string>& notes) const {
  const auto rows = input_.decision_steps.size();
  if (!possible_) {
    notes.emplace_back(rows < 2 ? "LSV needs at least two decision rows"
                                : "LSV needs consecutive decisions (record.every = 1)");
    return std::nullopt;
  }
  try {
    LsvSummary ls;
    ls.overall = lsv(cells_, input_.lsv_min_traders);
    std::vector<double> hs(rows, 0.0), bs(rows, 0.0), ss(rows, 0.0);
    std::vector<int> hn(rows, 0), bn(rows, 0), sn(rows, 0);
    for (const auto& c : ls.overall.cells) {
      if (!c.included) continue;
      const auto d = static_cast<std::size_t>(c.period);
      hs[d] += c.h;
      ++hn[d];
      if (c.side == LsvSide::buy) bs[d] += c.h, ++bn[d];
      if (c.side == LsvSide::sell) ss[d] += c.h, ++sn[d];
    }
    for (std::size_t d = 1; d < rows; ++d) {
      ls.decision_steps.push_back(input_.decision_steps[d]);
      ls.h.push_back(mean_or_nan(hs[d], hn[d]));
      ls.buy.push_back(mean_or_nan(bs[d], bn[d]));
      ls.sell.push_back(mean_or_nan(ss[d], sn[d]));
    }
    ls.overall.cells.clear();
    ls.verdict = lsv_verdict(ls.overall, input_.herding.alpha);
    return ls;
  } catch (const InputError& e) {
    notes.push_back(fmt::format("LSV not computed: {}", e.what()));
    return std::nullopt;
  }
}

// ---------------------------------------------------------------------------------------------
// Returns, dispersion and investor metrics

PeriodReturns::PeriodReturns(int agents, int paths)
    : ruined_(Eigen::Array<bool, Eigen::Dynamic, Eigen::Dynamic>::Constant(agents, paths, false)) {}

void PeriodReturns::start(const Eigen::MatrixXd& wealth) {
  ruined_ = wealth.array() <= 0.0 || !wealth.array().isFinite();
}

const std::vector<AgentReturn>& PeriodReturns::on_path(int p, const Eigen::MatrixXd& previous,
                                                       const Eigen::MatrixXd& wealth) {
  returns_.clear();
  for (int i = 0; i < static_cast<int>(wealth.rows()); ++i) {
    if (ruined_(i, p)) continue;
    const double x1 = wealth(i, p);
    const double ret = x1 / previous(i, p) - 1.0;
    if (!(x1 > 0.0) || !finite(ret)) {
      ruined_(i, p) = true;
      continue;
    }
    returns_.push_back({i, ret});
  }
  return returns_;
}

DispersionAccumulator::DispersionAccumulator(int paths, int periods)
    : market_(Eigen::MatrixXd::Constant(paths, std::max(periods, 0), kNaN)), cssd_(market_), csad_(market_) {}

void DispersionAccumulator::add(int path, int period, const std::vector<AgentReturn>& returns) {
  if (returns.size() < 2) return;
  double mean = 0.0;
  for (const AgentReturn& r : returns) mean += r.value;
  mean /= static_cast<double>(returns.size());
  double ss = 0.0;
  double sa = 0.0;
  for (const AgentReturn& r : returns) {
    ss += (r.value - mean) * (r.value - mean);
    sa += std::abs(r.value - mean);
  }
  market_(path, period) = mean;
  cssd_(path, period) = std::sqrt(ss / static_cast<double>(returns.size() - 1));
  csad_(path, period) = sa / static_cast<double>(returns.size());
}

std::optional<DispersionSummary> DispersionAccumulator::finish(const PopulationInput& input,
                                                               std::vector<std::string>& notes) const {
  const auto paths = static_cast<int>(market_.rows());
  const auto periods = static_cast<int>(market_.cols());
  if (periods < 1) return std::nullopt;
  // The pooled (path, period) cross-sections, path-major so that each path's periods are adjacent
  // (Newey–West lags then mostly pair periods of one path).
  std::vector<double> vm, vs, va;
  for (int p = 0; p < paths; ++p)
    for (int t = 0; t < periods; ++t)
      if (finite(market_(p, t))) {
        vm.push_back(market_(p, t));
        vs.push_back(cssd_(p, t));
        va.push_back(csad_(p, t));
      }
  DispersionSummary ds;
  ds.observations = static_cast<int>(vm.size());
  for (int t = 0; t < periods; ++t) {
    ds.decision_steps.push_back(input.wealth_steps[static_cast<std::size_t>(t)]);
    double a = 0.0;
    double b = 0.0;
    int c = 0;
    for (int p = 0; p < paths; ++p)
      if (finite(market_(p, t))) a += csad_(p, t), b += market_(p, t), ++c;
    ds.csad_series.push_back(mean_or_nan(a, c));
    ds.market_series.push_back(mean_or_nan(b, c));
  }
  const Eigen::Map<const Eigen::VectorXd> mv(vm.data(), static_cast<Eigen::Index>(vm.size()));
  const Eigen::Map<const Eigen::VectorXd> sv(vs.data(), static_cast<Eigen::Index>(vs.size()));
  const Eigen::Map<const Eigen::VectorXd> av(va.data(), static_cast<Eigen::Index>(va.size()));
  bool ok = true;
  try {
    ds.cssd = christie_huang(sv, extreme_market_dummies(mv, input.herding.quantile), input.herding);
  } catch (const InputError& e) {
    ok = false;
    notes.push_back(fmt::format("CSSD regression not estimated: {}", e.what()));
  }
  try {
    ds.csad = chang_cheng_khorana(av, mv, input.herding);
  } catch (const InputError& e) {
    ok = false;
    notes.push_back(fmt::format("CSAD regression not estimated: {}", e.what()));
  }
  if (ok || ds.cssd.fit || ds.csad.fit) return ds;
  return std::nullopt;
}

InvestorAccumulator::InvestorAccumulator(int agents, int paths)
    : peak_(Eigen::MatrixXd::Zero(agents, paths)),
      max_drawdown_(peak_),
      sum_(peak_),
      sum_squares_(peak_),
      sum_excess_(peak_),
      count_(peak_) {}

void InvestorAccumulator::start(const Eigen::MatrixXd& wealth) {
  peak_ = wealth;
}

void InvestorAccumulator::add(int path, const std::vector<AgentReturn>& returns,
                              const Eigen::MatrixXd& wealth, double risk_free) {
  for (const AgentReturn& r : returns) {
    const int i = r.agent;
    const double x1 = wealth(i, path);
    sum_(i, path) += r.value;
    sum_squares_(i, path) += r.value * r.value;
    sum_excess_(i, path) += r.value - risk_free;
    count_(i, path) += 1.0;
    peak_(i, path) = std::max(peak_(i, path), x1);
    max_drawdown_(i, path) = std::max(max_drawdown_(i, path), 1.0 - x1 / peak_(i, path));
  }
}

InvestorMetrics InvestorAccumulator::finish(const Eigen::MatrixXd& final_wealth,
                                            const Eigen::VectorXd& wealth0, const PeriodReturns& returns,
                                            double periods_per_year, std::vector<std::string>& notes) const {
  const auto m = static_cast<int>(peak_.rows());
  const auto paths = static_cast<int>(peak_.cols());
  InvestorMetrics im;
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
      const bool ruined = returns.ruined(i, p);
      if (ruined) ++im.ruined_pairs;
      const double x0 = wealth0.size() == m ? wealth0[i] : kNaN;
      const double c = x0 > 0.0 ? final_wealth(i, p) / x0 - 1.0 : kNaN;
      const double cnt = count_(i, p);
      double v = kNaN;
      double sh = kNaN;
      if (cnt >= 2.0) {
        const double mean = sum_(i, p) / cnt;
        const double var = std::max(0.0, (sum_squares_(i, p) - cnt * mean * mean) / (cnt - 1.0));
        v = std::sqrt(var * periods_per_year);
        sh = var > 0.0 ? sum_excess_(i, p) / cnt / std::sqrt(var) * std::sqrt(periods_per_year) : kNaN;
      }
      const double dd = ruined ? 1.0 : max_drawdown_(i, p);
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
    notes.push_back(fmt::format(
        "{} (agent, path) pairs reached non-positive wealth (CARA amounts do not scale with wealth): their "
        "returns stop there and their drawdown counts as 1",
        im.ruined_pairs));
  return im;
}

// ---------------------------------------------------------------------------------------------
// Certainty equivalent

CertaintyEquivalent estimate_certainty_equivalent(const PopulationInput& in,
                                                  const Eigen::MatrixXd& final_wealth,
                                                  std::vector<std::string>& notes) {
  const int m = in.agents;
  const int paths = in.paths;
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
    if (final_wealth.row(i).allFinite() && in.alpha[i] > 0.0 && finite(in.ce_theory[i])) agents.push_back(i);
  const double weight = agents.empty() ? 0.0 : 1.0 / static_cast<double>(agents.size());
  ce.per_agent_gap = Eigen::VectorXd::Constant(m, kNaN);
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
    for (int p = 0; p < paths; ++p) zvar += std::pow(std::exp(y[static_cast<std::size_t>(p)] - c) - zbar, 2);
    zvar = paths > 1 ? zvar / (paths - 1) : 0.0;
    // ln of a sample mean is biased low by var / (2 P mean^2) (second-order delta method): remove it,
    // else the CE of a few hundred paths overstates the simulated CE.
    const double gap = -(c + std::log(zbar) + zvar / (2.0 * paths * zbar * zbar)) / in.alpha[i];
    gap_sum += gap;
    ce.per_agent_gap[i] = gap;
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
      notes.emplace_back("one path: no confidence interval for the CE gap");
    }
  }
  if (used < m)
    notes.push_back(fmt::format("{} agents with non-finite terminal wealth left out of the CE", m - used));
  return ce;
}

}  // namespace herdsim::analysis
