#pragma once
// Theory-versus-simulation metrics of one recorded population (docs/analysis.md): decision error
// against the theoretical plan, certainty-equivalent gap, herding distance h and opinion w(t), LSV and
// CSSD/CSAD herding tests across the agents, and investor metrics. Rows are pulled one at a time from
// a RowSource and handed to one accumulator per metric (metric_accumulators.hpp), so memory is a few
// rows plus a few numbers per (agent, path) (agents_within_budget), whatever the run length.
// No file access here: io/compare.cpp feeds rows read from a run file, tests feed matrices.
#include <Eigen/Core>
#include <cstddef>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "sim/analysis/herding_tests.hpp"
#include "sim/theory/schedule.hpp"

namespace herdsim::analysis {

inline constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

/// Mean, standard deviation (ddof = 1) and linear-interpolation quantiles of the finite values.
struct Distribution {
  double mean = kNaN;
  double std = kNaN;
  double q05 = kNaN;
  double median = kNaN;
  double q95 = kNaN;
  long long count = 0;  ///< finite values described
};
[[nodiscard]] Distribution describe(std::vector<double> values);

/// Where the recorded trajectories come from: rows in the file's order.
class RowSource {
 public:
  virtual ~RowSource() = default;
  /// Wealth row s (0 <= s < S) into out (agents x paths).
  virtual void wealth_row(int s, Eigen::MatrixXd& out) = 0;
  /// Decision row d (0 <= d < D) into out (agents x paths).
  virtual void amount_row(int d, Eigen::MatrixXd& out) = 0;
};

/// Where an agent's herding distance and opinion look: its leader's decisions, or the mean decision of
/// its population (a mean-field stand-in for its network neighbours).
enum class HerdReference { none, leader, population_mean };

/// What makes an agent a buyer at decision k for LSV.
enum class LsvTrade {
  /// It raises the proportion of wealth it decides to hold: pi_k = P_k / X_k above pi_{k-1}. Only
  /// decisions count, so agents deciding independently show no herding whatever the market does.
  proportion,
  /// It holds more shares: P_k above P_{k-1} (1 + R), what the previous holding grew into. With one
  /// asset and common shocks any rebalancing rule co-moves here (all sell after a rise), which LSV
  /// reads as herding.
  shares,
};

/// Everything analyse_population needs besides the rows. Matrices are agents x steps (column k =
/// decision k, every step 0..n-1), like the engine's theory_amount.
struct PopulationInput {
  int agents = 0;                   ///< M, agents in the rows
  int paths = 0;                    ///< P
  std::vector<int> wealth_steps;    ///< step of each wealth row (S rows, the last is n)
  std::vector<int> decision_steps;  ///< step of each decision row (D rows)
  double dt = 1.0;                  ///< years per step
  double r = 0.0;                   ///< risk-free rate per year (excess returns)
  Eigen::VectorXd wealth0;          ///< initial wealth per agent (M)
  Eigen::VectorXd alpha;            ///< CARA risk aversion per agent (M; empty: no CE)
  Eigen::MatrixXd theory;           ///< theoretical plan (empty: no decision error, CE, h, w)
  Eigen::VectorXd ce_theory;        ///< CE of the theoretical plan's terminal wealth per agent (M)
  bool ce_exact = true;             ///< false: ce_theory is an approximation (log-normal market)
  HerdReference reference = HerdReference::none;
  Eigen::MatrixXd merton;  ///< own-alpha Merton amounts (h and w need them)
  Eigen::MatrixXd leader;  ///< leader's decisions (reference = leader; deterministic)
  bool opinion = false;    ///< compute w(t) (absolute herding)
  /// Times (years) at which each agent's w is also reported, at the nearest recorded decision row.
  std::vector<double> opinion_at_years;
  int lsv_min_traders = 5;  ///< n_min of LSV
  LsvTrade lsv_trade = LsvTrade::proportion;
  HerdingOptions herding;         ///< CSSD/CSAD settings and the significance level
  double confidence = 0.95;       ///< of the CE interval
  Eigen::MatrixXd market_return;  ///< P x D: simple return of the step starting at each decision row
};

struct ErrorSeries {
  double mse = kNaN;
  double rmse = kNaN;
  std::vector<double> per_step;  ///< one per decision row
};

/// MSE against the plan over (recorded decision rows, paths, agents).
struct DecisionError {
  ErrorSeries amount;                ///< currency units squared
  ErrorSeries proportion_pp;         ///< percentage points of the agent's realised wealth, squared
  Eigen::VectorXd agent_mse_amount;  ///< per agent (M)
  Eigen::VectorXd agent_mse_pp;      ///< per agent (M)
};

/// CE = -(1/alpha) ln E[exp(-alpha X_T)] estimated over paths (with the second-order bias correction
/// of the log of a sample mean), averaged over agents, against the plan's.
struct CertaintyEquivalent {
  double simulated = kNaN;  ///< mean over agents of the estimated CE
  double theory = kNaN;     ///< mean over agents of the plan's CE
  double gap = kNaN;        ///< simulated - theory
  double ci_low = kNaN;     ///< delta-method interval of the gap over independent paths
  double ci_high = kNaN;
  double confidence = 0.95;
  bool exact = true;
  int agents = 0;
  int paths = 0;
  Eigen::VectorXd per_agent_gap;  ///< each agent's CE gap (M; NaN where left out)
};

/// h_i = sqrt(mean_p ||P_i - P_alpha_i||^2 / mean_p ||Pbar - P_alpha_i||^2) over the recorded
/// decisions; NaN where the reference equals the own Merton path.
struct HerdingDistance {
  Distribution simulated;
  Distribution theory;
  Eigen::VectorXd per_agent_simulated;
  Eigen::VectorXd per_agent_theory;
};

/// w = (Pbar - P) / (Pbar - P_alpha) per decision row, aggregated over agents and paths as the
/// least-squares weight sum (Pbar - P)(Pbar - P_alpha) / sum (Pbar - P_alpha)^2 (w itself when all
/// agents share it; agents whose reference equals their Merton path carry no weight).
struct Opinion {
  std::vector<double> simulated;
  std::vector<double> theory;
  int agents = 0;  ///< agents whose reference differs from their Merton path at some decision
  /// Per agent (M), the same weight pooled over its recorded decisions (and paths); NaN where undefined.
  Eigen::VectorXd per_agent_simulated, per_agent_theory;
  /// Per agent at one chosen time: the weight of the decision row nearest it, pooled over the paths.
  struct At {
    double requested_years = 0.0;
    int row = 0;              ///< decision row used (the nearest; the earlier of two equally near)
    int step = 0;             ///< its step
    double time_years = 0.0;  ///< its time, step x dt
    Eigen::VectorXd per_agent_simulated, per_agent_theory;
  };
  std::vector<At> at;  ///< one per PopulationInput::opinion_at_years, in that order
};

/// The recorded decision row whose time (step x dt, years) is nearest t_years; the earlier on a tie.
[[nodiscard]] int nearest_decision_row(const std::vector<int>& decision_steps, double dt, double t_years);

/// LSV across agents, each path a separate market ("asset"), each decision a period; buys and sells
/// as PopulationInput::lsv_trade defines them.
struct LsvSummary {
  std::vector<int> decision_steps;
  std::vector<double> h, buy, sell;  ///< mean H per period (NaN where no cell qualifies)
  LsvResult overall;                 ///< cells not kept (summary fields only)
  std::string verdict;
};

/// CSSD and CSAD regressions on the pooled (path, period) cross-sections of portfolio returns.
struct DispersionSummary {
  HerdingRegression cssd;
  HerdingRegression csad;
  int observations = 0;
  std::vector<int> decision_steps;    ///< start step of each period in the series
  std::vector<double> csad_series;    ///< mean over paths of CSAD per period
  std::vector<double> market_series;  ///< mean over paths of R_m per period
};

/// Per (agent, path) outcomes, described over all pairs; per-agent values are means over paths.
struct InvestorMetrics {
  Distribution cumulative_return;  ///< X_T / X_0 - 1
  Distribution sharpe;             ///< annualised: mean excess return / sd * sqrt(periods per year)
  Distribution volatility;         ///< annualised sd of period returns
  Distribution max_drawdown;       ///< max over t of 1 - X_t / max_{s<=t} X_s (fraction)
  Eigen::VectorXd agent_cumulative_return, agent_sharpe, agent_volatility, agent_max_drawdown;
  long long ruined_pairs = 0;  ///< (agent, path) pairs whose wealth reached <= 0 (returns stop there)
};

struct PopulationMetrics {
  std::vector<std::string> notes;  ///< why a part is missing
  std::optional<DecisionError> decision_error;
  std::optional<CertaintyEquivalent> certainty_equivalent;
  std::optional<HerdingDistance> herding_distance;
  std::optional<Opinion> opinion;
  std::optional<LsvSummary> lsv;
  std::optional<DispersionSummary> dispersion;
  std::optional<InvestorMetrics> investor;
};

/// One pass over the rows of a population: each row goes to the metrics' accumulators
/// (metric_accumulators.hpp), which are then finished in a fixed order.
[[nodiscard]] PopulationMetrics analyse_population(const PopulationInput& input, RowSource& rows);

/// How many of a population's first recorded agents analyse_population can hold in
/// memory_budget_bytes for its per-(agent, path) state over `paths` paths (at least 2, at most all).
[[nodiscard]] int agents_within_budget(int recorded_agents, int paths, std::size_t memory_budget_bytes);

/// Certainty equivalent of terminal wealth under a deterministic plan (n amounts, currency units) in
/// the arithmetic step market of `steps` (a discrete schedule): X_n is normal with the mean m and
/// variance s^2 of theory::wealth_moments, so CE = m - alpha s^2 / 2 exactly.
[[nodiscard]] double plan_certainty_equivalent(const theory::Schedule& steps, const Eigen::VectorXd& plan,
                                               double x0, double alpha);

}  // namespace herdsim::analysis
