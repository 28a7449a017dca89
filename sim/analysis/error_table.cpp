#include "sim/analysis/error_table.hpp"

#include <algorithm>
#include <cmath>
#include <utility>

namespace herdsim::analysis {

Levels make_levels(const Eigen::VectorXd& x) {
  Levels lv;
  std::vector<double> distinct;
  for (double v : x)
    if (std::isfinite(v)) distinct.push_back(v);
  std::sort(distinct.begin(), distinct.end());
  distinct.erase(std::unique(distinct.begin(), distinct.end()), distinct.end());
  lv.of_agent.assign(static_cast<std::size_t>(x.size()), -1);
  if (distinct.size() <= kErrorTableMaxLevels) {
    lv.labels = distinct;
    for (Eigen::Index i = 0; i < x.size(); ++i) {
      const auto it = std::lower_bound(distinct.begin(), distinct.end(), x[i]);
      if (std::isfinite(x[i]))
        lv.of_agent[static_cast<std::size_t>(i)] = static_cast<int>(it - distinct.begin());
    }
    return lv;
  }
  // Equal-count bins over the sorted agents; each bin labelled by its mean value.
  std::vector<std::pair<double, Eigen::Index>> order;
  for (Eigen::Index i = 0; i < x.size(); ++i)
    if (std::isfinite(x[i])) order.emplace_back(x[i], i);
  std::sort(order.begin(), order.end());
  std::vector<double> sum(kErrorTableBins, 0.0);
  std::vector<int> count(kErrorTableBins, 0);
  for (std::size_t j = 0; j < order.size(); ++j) {
    const auto bin = static_cast<int>(j * kErrorTableBins / order.size());
    lv.of_agent[static_cast<std::size_t>(order[j].second)] = bin;
    sum[static_cast<std::size_t>(bin)] += order[j].first;
    ++count[static_cast<std::size_t>(bin)];
  }
  for (int b = 0; b < kErrorTableBins; ++b)
    lv.labels.push_back(count[static_cast<std::size_t>(b)] > 0
                            ? sum[static_cast<std::size_t>(b)] / count[static_cast<std::size_t>(b)]
                            : kNaN);
  return lv;
}

std::optional<ErrorTable> make_error_table(const Eigen::VectorXd& alpha, const Eigen::VectorXd& theta,
                                           const DecisionError& de, const ErrorTableAxes& axes) {
  ErrorTable t;
  const auto m = alpha.size();
  Eigen::VectorXd row_x = alpha;
  t.row_param = "alpha";
  if (axes.alpha_as_lottery_prob) {
    t.row_param = "lottery_prob";
    for (Eigen::Index i = 0; i < m; ++i) row_x[i] = theory::lottery_prob_from_alpha(alpha[i], axes.lottery);
  }
  Eigen::VectorXd col_x = theta.size() == m ? theta : Eigen::VectorXd::Zero(m);
  t.col_param = "theta";
  if (axes.theta_as_score) {
    t.col_param = "theta_score";
    col_x /= theory::defaults::theta_per_score;
  }
  // Grid values that went through a conversion carry rounding noise: group at 1e-9 relative.
  const auto snap = [](Eigen::VectorXd& v) {
    for (double& x : v)
      if (std::isfinite(x) && x != 0.0) {
        // Divide by an exact power of ten: the result is the double nearest the rounded decimal.
        const double inv = std::pow(10.0, 9 - std::floor(std::log10(std::abs(x))));
        x = std::round(x * inv) / inv;
      }
  };
  snap(row_x);
  snap(col_x);
  const Levels rows = make_levels(row_x);
  const Levels cols = make_levels(col_x);
  t.row_values = rows.labels;
  t.col_values = cols.labels;
  const auto nr = static_cast<Eigen::Index>(rows.labels.size());
  const auto nc = static_cast<Eigen::Index>(cols.labels.size());
  Eigen::MatrixXd sa = Eigen::MatrixXd::Zero(nr, nc);
  Eigen::MatrixXd sp = sa;
  Eigen::MatrixXi np = Eigen::MatrixXi::Zero(nr, nc);
  t.agents = Eigen::MatrixXi::Zero(nr, nc);
  for (Eigen::Index i = 0; i < m; ++i) {
    const int r = rows.of_agent[static_cast<std::size_t>(i)];
    const int c = cols.of_agent[static_cast<std::size_t>(i)];
    if (r < 0 || c < 0 || !std::isfinite(de.agent_mse_amount[i])) continue;
    sa(r, c) += de.agent_mse_amount[i];
    ++t.agents(r, c);
    if (std::isfinite(de.agent_mse_pp[i])) sp(r, c) += de.agent_mse_pp[i], ++np(r, c);
  }
  t.mse_amount = (t.agents.array() > 0).select(sa.array() / t.agents.cast<double>().array(), kNaN);
  t.mse_proportion_pp = (np.array() > 0).select(sp.array() / np.cast<double>().array(), kNaN);
  if (t.row_values.size() * t.col_values.size() <= 1) return std::nullopt;  // nothing to tabulate
  return t;
}

}  // namespace herdsim::analysis
