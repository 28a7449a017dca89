#pragma once
// Attributable herding (docs/analysis.md, "Rational counterfactual"): the herding statistics of a
// population beside those of its rational counterfactual, the same investors with theta = 0 (each
// playing its own Merton plan, from theory) on the same market paths. LSV and CSSD/CSAD register any
// correlated trading — a common signal, the market, rebalancing — so only the difference between the
// population and its counterfactual is attributable to herding. No file access.
#include <Eigen/Core>
#include <optional>
#include <string>

#include "sim/analysis/run_metrics.hpp"

namespace herdsim::analysis {

/// Rows of the rational counterfactual: decisions = the agents' own Merton amounts (agents x n, the
/// same on every path), wealth settled from wealth0 with the recorded market returns:
/// X_{k+1} = X_k G + P_k (1 + R_k - G), G the deposit growth of a step. Needs every step recorded.
class CounterfactualRows final : public RowSource {
 public:
  /// market_return: paths x n simple stock returns of each step; deposit_growth: 1 + r dt
  /// (arithmetic) or e^{r dt} (lognormal).
  CounterfactualRows(Eigen::VectorXd wealth0, Eigen::MatrixXd merton, Eigen::MatrixXd market_return,
                     double deposit_growth);
  void wealth_row(int s, Eigen::MatrixXd& out) override;
  void amount_row(int d, Eigen::MatrixXd& out) override;

 private:
  Eigen::VectorXd wealth0_;
  Eigen::MatrixXd merton_;
  Eigen::MatrixXd market_return_;
  double growth_;
  Eigen::MatrixXd wealth_;  ///< agents x paths at step at_
  int at_ = -1;
};

/// A statistic of the population beside its counterfactual's: their difference with a standard error
/// taking the two estimates as independent (conservative: both share the paths, which correlates them
/// positively), and what the difference says.
struct AttributedStatistic {
  std::string name;  ///< "lsv_mean_h", "cssd_beta_L", "cssd_beta_U", "csad_gamma2"
  double population = kNaN;
  double counterfactual = kNaN;
  double difference = kNaN;  ///< population - counterfactual
  double se = kNaN;
  double p = kNaN;  ///< two-sided, normal approximation
  std::string verdict;
};

struct Counterfactual {
  std::optional<LsvSummary> lsv;
  std::optional<DispersionSummary> dispersion;
  std::vector<AttributedStatistic> attributed;
};

/// The counterfactual's statistics (lsv and dispersion of its metrics) and what the population adds to
/// them; significance: the two-sided level of the verdicts.
[[nodiscard]] Counterfactual attribute_herding(const PopulationMetrics& population,
                                               const PopulationMetrics& counterfactual, double significance);

}  // namespace herdsim::analysis
