#pragma once
// Per-agent measures by investor type and between paired populations (docs/analysis.md, "By investor
// type" and "Paired populations"): every per-agent measure compare computes (decision MSE, herding
// distance h, investor metrics), tabulated by the levels of one per-agent parameter (lottery
// probability, score, alpha, theta, wealth0, ...) with a trend test across the ordered levels, and the
// agent-by-agent differences of two populations that share their investors, with paired intervals.
// No file access: io/compare.cpp hands in the vectors.
#include <Eigen/Core>
#include <optional>
#include <string>
#include <vector>

#include "sim/analysis/run_metrics.hpp"

namespace herdsim::analysis {

/// One value per agent of a measure (NaN where the agent has none).
struct AgentMeasure {
  std::string name;   ///< e.g. "decision_mse_pp"
  std::string units;  ///< e.g. "pp^2"
  Eigen::VectorXd values;
};

/// The name of a per-agent measure at a chosen time, e.g. "w_simulated_at_t=5" (t in years, %g).
[[nodiscard]] std::string opinion_at_name(const std::string& measure, double t_years);

/// The per-agent measures of a population's metrics, in a fixed order; those it lacks are left out.
[[nodiscard]] std::vector<AgentMeasure> agent_measures(const PopulationMetrics& metrics);

/// The Student-t quantile for a two-sided interval of level `confidence` with df degrees of freedom.
[[nodiscard]] double t_quantile(double confidence, double df);

/// Mean of the finite values with its Student-t interval (n - 1 df); NaN interval below 2 values.
struct MeanInterval {
  double mean = kNaN;
  double ci_low = kNaN;
  double ci_high = kNaN;
  double p = kNaN;  ///< two-sided p-value of mean = 0
  int n = 0;
};
[[nodiscard]] MeanInterval mean_interval(const Eigen::VectorXd& values, double confidence);

/// Linear trend of a measure y across an ordered parameter x: the OLS slope of y on x over the agents
/// with both finite, with White's heteroskedasticity-robust standard error scaled by n/(n-2) (HC1: the
/// levels' spreads differ), a Student-t interval and p-value with n - 2 df. Chosen over a rank test
/// (Jonckheere–Terpstra) because the slope has units and a size, and its interval answers "by how much".
struct Trend {
  double slope = kNaN;  ///< measure units per parameter unit
  double ci_low = kNaN;
  double ci_high = kNaN;
  double p = kNaN;
  int n = 0;
};
[[nodiscard]] Trend linear_trend(const Eigen::VectorXd& x, const Eigen::VectorXd& y, double confidence);

/// Every measure by the levels of one parameter (make_levels: its distinct values, or equal-count bins).
struct TypeTable {
  std::string param;
  std::vector<double> levels;                       ///< value (or bin mean) per level
  std::vector<int> agents;                          ///< agents per level
  std::vector<std::string> measures, units;         ///< one per measure
  std::vector<std::vector<MeanInterval>> by_level;  ///< [measure][level]
  std::vector<Trend> trends;                        ///< [measure]: across the agents' parameter values
};
/// nullopt when x has fewer than two levels (nothing to compare).
[[nodiscard]] std::optional<TypeTable> make_type_table(const std::string& param, const Eigen::VectorXd& x,
                                                       const std::vector<AgentMeasure>& measures,
                                                       double confidence);

/// Differences population - source, agent by agent (the same investors), for the measures both have:
/// each an AgentMeasure named "<measure>" (the differences), with its paired interval.
struct PairedDifferences {
  std::vector<AgentMeasure> differences;
  std::vector<MeanInterval> mean;  ///< [measure]
};
[[nodiscard]] PairedDifferences paired_differences(const std::vector<AgentMeasure>& population,
                                                   const std::vector<AgentMeasure>& source,
                                                   double confidence);

}  // namespace herdsim::analysis
