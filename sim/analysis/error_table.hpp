#pragma once
// The paper's table of decision errors: the mean squared error of the agents in each cell of a grid of
// risk aversion (or lottery probability) by herding weight (or dependence score). Parameters with many
// distinct values are cut into equal-count bins.
#include <Eigen/Core>
#include <optional>
#include <string>
#include <vector>

#include "sim/analysis/run_metrics.hpp"
#include "sim/theory/market.hpp"

namespace herdsim::analysis {

/// MSE per (alpha or lottery probability) x (theta or theta score) cell.
struct ErrorTable {
  std::string row_param;  ///< "lottery_prob" or "alpha" (bin means when the values are many)
  std::vector<double> row_values;
  std::string col_param;  ///< "theta_score" or "theta"
  std::vector<double> col_values;
  Eigen::MatrixXd mse_amount;         ///< rows x cols, mean over the cell's agents (NaN: empty cell)
  Eigen::MatrixXd mse_proportion_pp;  ///< rows x cols
  Eigen::MatrixXi agents;             ///< rows x cols
};

/// How the table shows the parameters: on the scale the scenario gave them.
struct ErrorTableAxes {
  bool alpha_as_lottery_prob = false;  ///< rows are lottery probabilities under `lottery`
  theory::LotteryConvention lottery;
  bool theta_as_score = false;  ///< columns are dependence scores (theta / 1e-8)
};

/// At most this many distinct values make a level each; more are cut into kErrorTableBins bins.
inline constexpr std::size_t kErrorTableMaxLevels = 12;
inline constexpr int kErrorTableBins = 6;

/// Levels of a parameter for a table: the distinct values, or equal-count bins when there are many.
struct Levels {
  std::vector<double> labels;  ///< value (or bin mean) per level, ascending
  std::vector<int> of_agent;   ///< level of each agent (-1: non-finite)
};
/// The distinct finite values of x when at most kErrorTableMaxLevels, else kErrorTableBins equal-count bins.
[[nodiscard]] Levels make_levels(const Eigen::VectorXd& x);

/// The table of per-agent decision errors by alpha (M) and theta (M; empty: one column of 0); nullopt
/// when it would have a single cell.
[[nodiscard]] std::optional<ErrorTable> make_error_table(const Eigen::VectorXd& alpha,
                                                         const Eigen::VectorXd& theta,
                                                         const DecisionError& errors,
                                                         const ErrorTableAxes& axes);

}  // namespace herdsim::analysis
