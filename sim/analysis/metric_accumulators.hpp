#pragma once
// The accumulators behind analyse_population (run_metrics.hpp), one per metric. The driver reads the
// rows of one population once, in order, and hands each row to the accumulators that need it; each
// keeps only per-agent, per-(agent, path) or per-row state and is finished into its result (and notes
// saying what it left out) after the last row.
#include <Eigen/Core>
#include <optional>
#include <string>
#include <vector>

#include "sim/analysis/herding_tests.hpp"
#include "sim/analysis/run_metrics.hpp"

namespace herdsim::analysis {

/// One decision row d and what the metrics read beside it (matrices agents x paths).
struct DecisionRow {
  int index = 0;                           ///< d (0-based, among the recorded decision rows)
  int step = 0;                            ///< k: the step of the decision, the column of the theory matrices
  const Eigen::MatrixXd& amount;           ///< P_k, currency units
  const Eigen::MatrixXd& wealth;           ///< X_k, wealth at the decision
  const Eigen::MatrixXd& previous_amount;  ///< row d - 1 (unset at d = 0)
  const Eigen::MatrixXd& previous_wealth;  ///< wealth at row d - 1 (unset at d = 0)
  int previous_step = -1;                  ///< step of row d - 1 (-1 at d = 0)
};

/// Squared errors per decision row and per agent, and their means.
class SquaredErrors {
 public:
  SquaredErrors(int rows, int agents);
  void add(int row, int agent, double error);
  /// Mean per row and over all (NaN where nothing was added).
  [[nodiscard]] ErrorSeries series() const;
  /// Mean per agent (NaN where nothing was added).
  [[nodiscard]] Eigen::VectorXd per_agent() const;

 private:
  std::vector<double> row_sum_;
  std::vector<long long> row_count_;
  Eigen::VectorXd agent_sum_;
  Eigen::VectorXd agent_count_;
};

/// Decision error against the plan: amounts, and proportions of the realised wealth in percentage
/// points (decisions at non-positive wealth have no proportion and are counted for a note).
class DecisionErrorAccumulator {
 public:
  /// plan: agents x steps (PopulationInput::theory), kept by reference.
  DecisionErrorAccumulator(const Eigen::MatrixXd& plan, int rows, int agents);
  void add(const DecisionRow& row);
  [[nodiscard]] DecisionError finish(std::vector<std::string>& notes) const;

 private:
  const Eigen::MatrixXd& plan_;
  SquaredErrors amount_;
  SquaredErrors proportion_pp_;
  long long proportion_skipped_ = 0;
};

/// Pbar at one decision row, what an agent's herding distance and opinion are measured against: its
/// leader's decision, or the population's mean decision on the path (simulated) and of the plan (theory).
class ReferenceRow {
 public:
  /// input.reference must be leader or population_mean.
  ReferenceRow(const PopulationInput& input, const DecisionRow& row);
  [[nodiscard]] double simulated(int agent, int path) const {
    return leader_ != nullptr ? (*leader_)(agent, step_) : path_mean_[path];
  }
  [[nodiscard]] double theory(int agent) const {
    return leader_ != nullptr ? (*leader_)(agent, step_) : plan_mean_;
  }

 private:
  const Eigen::MatrixXd* leader_ = nullptr;
  int step_ = 0;
  Eigen::RowVectorXd path_mean_;
  double plan_mean_ = 0.0;
};

/// h_i from sums of squares over the recorded decisions (dt cancels in the ratio), for the simulated
/// decisions and for the plan.
class HerdingDistanceAccumulator {
 public:
  /// input.merton and input.theory are kept by reference.
  explicit HerdingDistanceAccumulator(const PopulationInput& input);
  void add(const DecisionRow& row, const ReferenceRow& reference);
  [[nodiscard]] HerdingDistance finish() const;

 private:
  const Eigen::MatrixXd& merton_;
  const Eigen::MatrixXd& plan_;
  Eigen::VectorXd simulated_num_, simulated_den_, theory_num_, theory_den_;
};

/// w per decision row as the least-squares weight sum (Pbar - P)(Pbar - P_alpha) / sum (Pbar -
/// P_alpha)^2: equal to w when agents share it, and stable where some agent's reference nearly equals
/// its Merton path.
class OpinionAccumulator {
 public:
  /// input.merton and input.theory are kept by reference.
  OpinionAccumulator(const PopulationInput& input, int rows);
  void add(const DecisionRow& row, const ReferenceRow& reference);
  [[nodiscard]] Opinion finish() const;

 private:
  const Eigen::MatrixXd& merton_;
  const Eigen::MatrixXd& plan_;
  std::vector<double> simulated_num_, simulated_den_, theory_num_, theory_den_;
  /// Per agent, pooled over its recorded decisions and paths (Opinion::per_agent_*).
  Eigen::VectorXd agent_simulated_num_, agent_simulated_den_, agent_theory_num_, agent_theory_den_;
  Eigen::VectorXi defined_;  ///< 1 for agents whose reference differs from their Merton path somewhere
  /// Per chosen time (PopulationInput::opinion_at_years): its row, and per-agent sums over that row only.
  std::vector<Opinion::At> at_;
  std::vector<Eigen::VectorXd> at_simulated_num_, at_simulated_den_, at_theory_num_, at_theory_den_;
};

/// LSV cells (period = decision row, asset = path): buyers and sellers of each path at each decision
/// after the first, as PopulationInput::lsv_trade defines a trade.
class LsvAccumulator {
 public:
  /// input (market_return, decision_steps, lsv settings) is kept by reference.
  explicit LsvAccumulator(const PopulationInput& input);
  void add(const DecisionRow& row);
  /// The summary, or nullopt with a note saying why LSV was not computed.
  [[nodiscard]] std::optional<LsvSummary> finish(std::vector<std::string>& notes) const;

 private:
  const PopulationInput& input_;
  bool possible_ = false;
  std::vector<LsvCell> cells_;
};

/// One agent's simple return over a period.
struct AgentReturn {
  int agent = 0;
  double value = 0.0;  ///< X_s / X_{s-1} - 1
};

/// Simple returns of each (agent, path) over the wealth periods until its wealth first reaches <= 0 or
/// a non-finite value (ruin): the returns the investor metrics and CSSD/CSAD read.
class PeriodReturns {
 public:
  PeriodReturns(int agents, int paths);
  /// The first wealth row: agents already without positive wealth are ruined from the start.
  void start(const Eigen::MatrixXd& wealth);
  /// Returns on path p over the period from `previous` to `wealth`, surviving agents in order; marks
  /// the agents ruined in this period. The vector is reused by the next call.
  const std::vector<AgentReturn>& on_path(int p, const Eigen::MatrixXd& previous,
                                          const Eigen::MatrixXd& wealth);
  [[nodiscard]] bool ruined(int agent, int path) const { return ruined_(agent, path); }

 private:
  Eigen::Array<bool, Eigen::Dynamic, Eigen::Dynamic> ruined_;
  std::vector<AgentReturn> returns_;
};

/// Cross-sectional dispersion of the returns per (path, period): R_m, CSSD and CSAD, for the
/// Christie–Huang and Chang–Cheng–Khorana regressions.
class DispersionAccumulator {
 public:
  DispersionAccumulator(int paths, int periods);
  void add(int path, int period, const std::vector<AgentReturn>& returns);
  /// The regressions (with notes where one cannot be estimated); nullopt when there is no period or
  /// neither regression could be fitted.
  [[nodiscard]] std::optional<DispersionSummary> finish(const PopulationInput& input,
                                                        std::vector<std::string>& notes) const;

 private:
  Eigen::MatrixXd market_, cssd_, csad_;  ///< paths x periods (NaN: fewer than two returns)
};

/// Per (agent, path) return sums, peak wealth and maximum drawdown, for the investor metrics.
class InvestorAccumulator {
 public:
  InvestorAccumulator(int agents, int paths);
  /// The first wealth row.
  void start(const Eigen::MatrixXd& wealth);
  /// The returns on path p over one period ending at `wealth`; risk_free: the deposit's return over it.
  void add(int path, const std::vector<AgentReturn>& returns, const Eigen::MatrixXd& wealth,
           double risk_free);
  /// periods_per_year annualises; ruined pairs count as a drawdown of 1.
  [[nodiscard]] InvestorMetrics finish(const Eigen::MatrixXd& final_wealth, const Eigen::VectorXd& wealth0,
                                       const PeriodReturns& returns, double periods_per_year,
                                       std::vector<std::string>& notes) const;

 private:
  Eigen::MatrixXd peak_, max_drawdown_, sum_, sum_squares_, sum_excess_, count_;
};

/// The CE gap of terminal wealth against the plan's CE (input.alpha, input.ce_theory), estimated over
/// the paths with the second-order bias correction and a delta-method interval.
[[nodiscard]] CertaintyEquivalent estimate_certainty_equivalent(const PopulationInput& input,
                                                                const Eigen::MatrixXd& final_wealth,
                                                                std::vector<std::string>& notes);

}  // namespace herdsim::analysis
