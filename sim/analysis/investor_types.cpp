#include "sim/analysis/investor_types.hpp"

#include <fmt/format.h>
#include <boost/math/distributions/students_t.hpp>
#include <cmath>

#include "sim/analysis/error_table.hpp"
#include "sim/analysis/herding_tests.hpp"

namespace herdsim::analysis {

double t_quantile(double confidence, double df) {
  return boost::math::quantile(boost::math::students_t(df), 0.5 + confidence / 2.0);
}

std::string opinion_at_name(const std::string& measure, double t_years) {
  return fmt::format("{}_at_t={:g}", measure, t_years);
}

std::vector<AgentMeasure> agent_measures(const PopulationMetrics& m) {
  std::vector<AgentMeasure> out;
  if (m.decision_error) {
    out.push_back({"decision_mse_pp", "pp^2", m.decision_error->agent_mse_pp});
    out.push_back({"decision_mse_amount", "currency^2", m.decision_error->agent_mse_amount});
  }
  if (m.certainty_equivalent && m.certainty_equivalent->per_agent_gap.size() > 0)
    out.push_back({"ce_gap", "currency", m.certainty_equivalent->per_agent_gap});
  if (m.herding_distance) {
    out.push_back({"h_simulated", "", m.herding_distance->per_agent_simulated});
    out.push_back({"h_theory", "", m.herding_distance->per_agent_theory});
  }
  if (m.opinion && m.opinion->per_agent_simulated.size() > 0) {
    out.push_back({"w_simulated", "", m.opinion->per_agent_simulated});
    out.push_back({"w_theory", "", m.opinion->per_agent_theory});
    for (const auto& at : m.opinion->at) {
      out.push_back({opinion_at_name("w_simulated", at.requested_years), "", at.per_agent_simulated});
      out.push_back({opinion_at_name("w_theory", at.requested_years), "", at.per_agent_theory});
    }
  }
  if (m.investor) {
    out.push_back({"cumulative_return", "fraction", m.investor->agent_cumulative_return});
    out.push_back({"sharpe", "per sqrt(year)", m.investor->agent_sharpe});
    out.push_back({"volatility", "per sqrt(year)", m.investor->agent_volatility});
    out.push_back({"max_drawdown", "fraction", m.investor->agent_max_drawdown});
  }
  return out;
}

MeanInterval mean_interval(const Eigen::VectorXd& values, double confidence) {
  MeanInterval r;
  double sum = 0.0;
  for (double v : values)
    if (std::isfinite(v)) {
      sum += v;
      ++r.n;
    }
  if (r.n == 0) return r;
  r.mean = sum / r.n;
  if (r.n < 2) return r;
  double ss = 0.0;
  for (double v : values)
    if (std::isfinite(v)) ss += (v - r.mean) * (v - r.mean);
  const double se = std::sqrt(ss / (r.n - 1) / r.n);
  const double half = t_quantile(confidence, r.n - 1) * se;
  r.ci_low = r.mean - half;
  r.ci_high = r.mean + half;
  r.p = se > 0.0 ? two_sided_p_value(r.mean / se, r.n - 1) : (r.mean == 0.0 ? 1.0 : 0.0);
  return r;
}

Trend linear_trend(const Eigen::VectorXd& x, const Eigen::VectorXd& y, double confidence) {
  Trend t;
  std::vector<Eigen::Index> keep;
  for (Eigen::Index i = 0; i < std::min(x.size(), y.size()); ++i)
    if (std::isfinite(x[i]) && std::isfinite(y[i])) keep.push_back(i);
  t.n = static_cast<int>(keep.size());
  if (t.n < 3) return t;
  Eigen::MatrixXd X(t.n, 2);
  Eigen::VectorXd Y(t.n);
  for (int j = 0; j < t.n; ++j) {
    X(j, 0) = 1.0;
    X(j, 1) = x[keep[static_cast<std::size_t>(j)]];
    Y[j] = y[keep[static_cast<std::size_t>(j)]];
  }
  if (X.col(1).maxCoeff() == X.col(1).minCoeff()) return t;  // one level: no slope
  const OlsResult fit = ols(X, Y, 0);
  t.slope = fit.coef[1];
  const Eigen::MatrixXd hc0 = newey_west_covariance(X, fit.residuals, 0);
  const double se = std::sqrt(hc0(1, 1) * t.n / (t.n - 2.0));
  const double half = t_quantile(confidence, t.n - 2.0) * se;
  t.ci_low = t.slope - half;
  t.ci_high = t.slope + half;
  t.p = se > 0.0 ? two_sided_p_value(t.slope / se, t.n - 2.0) : (t.slope == 0.0 ? 1.0 : 0.0);
  return t;
}

std::optional<TypeTable> make_type_table(const std::string& param, const Eigen::VectorXd& x,
                                         const std::vector<AgentMeasure>& measures, double confidence) {
  const Levels lv = make_levels(x);
  if (lv.labels.size() < 2) return std::nullopt;
  TypeTable t;
  t.param = param;
  t.levels = lv.labels;
  t.agents.assign(lv.labels.size(), 0);
  for (const int l : lv.of_agent)
    if (l >= 0) ++t.agents[static_cast<std::size_t>(l)];
  for (const AgentMeasure& m : measures) {
    t.measures.push_back(m.name);
    t.units.push_back(m.units);
    std::vector<MeanInterval> row;
    for (std::size_t l = 0; l < lv.labels.size(); ++l) {
      Eigen::VectorXd in_level = Eigen::VectorXd::Constant(m.values.size(), kNaN);
      for (Eigen::Index i = 0; i < std::min<Eigen::Index>(m.values.size(), x.size()); ++i)
        if (lv.of_agent[static_cast<std::size_t>(i)] == static_cast<int>(l)) in_level[i] = m.values[i];
      row.push_back(mean_interval(in_level, confidence));
    }
    t.by_level.push_back(std::move(row));
    t.trends.push_back(linear_trend(x, m.values, confidence));
  }
  return t;
}

PairedDifferences paired_differences(const std::vector<AgentMeasure>& population,
                                     const std::vector<AgentMeasure>& source, double confidence) {
  PairedDifferences out;
  for (const AgentMeasure& a : population) {
    for (const AgentMeasure& b : source) {
      if (a.name != b.name) continue;
      const Eigen::Index n = std::min(a.values.size(), b.values.size());
      AgentMeasure d{a.name, a.units, a.values.head(n) - b.values.head(n)};
      out.mean.push_back(mean_interval(d.values, confidence));
      out.differences.push_back(std::move(d));
    }
  }
  return out;
}

}  // namespace herdsim::analysis
