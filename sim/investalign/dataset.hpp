#pragma once
// InvestAlign dataset (docs/theory.md §4): questionnaire attributes (lottery probability -> alpha,
// dependence score -> theta, initial budget) on a grid or sampled within grid cells, targets from the
// theory library (P3 absolute with the correct eta, P1 relative, P2 mutual), prompts and target answers,
// and a train/test split that holds out whole (lottery probability, score) cells. Deterministic for a
// seed: every random draw is a pure function of (seed, key) through sim::CounterRng.
//
// Proportion convention (advisor and targets alike): the proportion for year j = 1..T is
//   pi_j = P(t = j) / B_j,
// the continuous-time AMOUNT at t = j over the reference budget B_j = (x0 / 10) * static_budget_list[j-1].
// For the advisor (P = its own Merton path) this is exactly the ratio docs/theory.md §4.2 quotes (golden
// advisor_reference.csv); using the same denominator for the targets makes theta -> inf reproduce the
// advisor's numbers and keeps the conversion back to amounts (P = pi_j B_j) deterministic.
#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "sim/enum_names.hpp"
#include "sim/investalign/prompt.hpp"
#include "sim/theory/mutual_game.hpp"
#include "sim/theory/relative_herd.hpp"

namespace herdsim::investalign {

/// The problems of the dataset (docs/theory.md §2).
enum class Problem { absolute, relative, mutual };
constexpr std::array<NamedValue<Problem>, 3> enum_names(Problem /*unused*/) {
  return {{{Problem::absolute, "absolute"}, {Problem::relative, "relative"}, {Problem::mutual, "mutual"}}};
}
/// "absolute", "relative", "mutual" (the name table's spelling, as a C string).
[[nodiscard]] const char* problem_name(Problem problem);
/// The task a problem's prompt asks (absolute -> absolute, relative -> relative, mutual -> mutual).
[[nodiscard]] TaskKind task_of(Problem problem);

/// T of the InvestAlign dataset, years (the static budget list has one entry per year).
inline constexpr int dataset_horizon_years = 10;
/// Static reference budgets B_1..B_10 for a budget of 10 million dollars (docs/theory.md §4.2; origin
/// unknown, shipped as constants).
inline constexpr std::array<double, 10> static_budget_list{10.00, 10.59, 11.22, 11.89, 12.60,
                                                           13.35, 14.15, 15.01, 15.91, 16.88};
/// The initial budget the static list belongs to, million dollars.
inline constexpr double static_budget_base = 10.0;

/// A fraction in hundredths of a percent (0.1534 -> 1534), rounded to nearest: the resolution of the
/// prompts' and the answers' percentages.
[[nodiscard]] long long centi(double fraction);

/// Reference budgets B_1..B_T for an initial budget (million dollars): the static list times budget / 10.
[[nodiscard]] std::vector<double> reference_budgets(double budget);

/// pi_j = amount(t = j) / budgets[j-1] for j = 1..budgets.size() (t in years, amounts and budgets in the
/// same unit): the proportion convention of the advisor and of every target.
[[nodiscard]] std::vector<double> proportions_of(const std::function<double(double)>& amount,
                                                 std::span<const double> budgets);

/// The advisor's recommended proportions for years 1..T (fractions): its continuous-time Merton amount at
/// t = j over B_j. With the defaults this is docs/theory.md §4.2's 36.21, 35.59, ..., 30.75 % (to +-0.01 pp).
[[nodiscard]] std::vector<double> advisor_proportions(const theory::Market& market, double alpha_leader,
                                                      double budget);

/// Which file a sample goes to.
enum class Split { train, test };
constexpr std::array<NamedValue<Split>, 2> enum_names(Split /*unused*/) {
  return {{{Split::train, "train"}, {Split::test, "test"}}};
}
/// "train", "test" (the name table's spelling, as a C string).
[[nodiscard]] const char* split_name(Split split);

/// What to generate. Lists are sorted by build_dataset; each (lottery probability, score) pair is a cell.
struct DatasetConfig {
  std::vector<Problem> problems{Problem::absolute, Problem::relative, Problem::mutual};  ///< in this order
  std::vector<double> lottery_probs{0.4, 0.5, 0.6, 0.7, 0.8, 0.9};  ///< indifference probabilities p
  std::vector<double> scores{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10};  ///< dependence scores, theta = score * 1e-8
  std::vector<double> budgets{10.0};                             ///< initial budgets x0, million dollars
  int samples = 0;  ///< 0: one sample per (cell, budget); N > 0: N samples per problem, drawn in cells
  std::uint64_t seed = 2024;   ///< keys every random draw (split, sampling, mutual peers)
  double test_fraction = 0.2;  ///< share of cells held out for test, in [0, 1]
  theory::LotteryConvention lottery = theory::lottery_win10_sure3;  ///< p -> alpha (and the prompt's amounts)
  std::string lottery_name = "w10s3";                               ///< how the card names the convention
  bool training_prompts = false;  ///< prompts also carry eta and the optimal values (docs/theory.md §4.3)
  theory::Market market{};        ///< market of every problem
  double alpha_leader = theory::defaults::alpha_leader;                       ///< the advisor's risk aversion
  theory::BoundaryCondition relative_bc = theory::BoundaryCondition::pinned;  ///< P1 end conditions
};

/// One problem with a configuration: the config field and a message naming the bad value.
struct ConfigProblem {
  std::string field;    ///< e.g. "lottery_probs"
  std::string message;  ///< e.g. "lottery probability 0.2 must lie in (0.3, 1)"
};
/// Every problem with the configuration at once (empty when it is valid).
[[nodiscard]] std::vector<ConfigProblem> check_dataset_config(const DatasetConfig& config);

/// A (lottery probability, score) cell: the unit of the train/test split.
struct Cell {
  double lottery_prob = 0.0;   ///< grid probability
  double score = 0.0;          ///< grid score
  Split split = Split::train;  ///< where every sample of the cell goes
};

/// One generated example.
struct Sample {
  std::string id;  ///< "<problem>-<sample index, 5 digits>"
  Problem problem = Problem::absolute;
  Split split = Split::train;
  int cell = 0;                         ///< index into Dataset::cells
  InvestorProfile investor;             ///< the agent's attributes (p rounded to 3 decimals when sampled)
  std::optional<InvestorProfile> peer;  ///< mutual: the peer (drawn from the grid)
  double ln_eta = 0.0;                  ///< ln eta of the agent at the optimum
  std::vector<double> budgets;          ///< reference budgets B_1..B_T, million dollars
  std::vector<double> advisor;  ///< advisor proportions as the prompt shows them (two-decimal %), fractions
  std::vector<double> amounts;  ///< optimal AMOUNTS P*(t = j), j = 1..T, million dollars
  std::vector<double> proportions;  ///< target proportions (two-decimal %, clamped to [0, 100] %), fractions
  std::vector<double> target;  ///< the answer's values: proportions, or T - 1 changes (relative), fractions
  bool clamped = false;        ///< a proportion P*/B lay outside [0, 100] % and was clamped
  Prompt prompt;               ///< the rendered prompt
  std::string answer;          ///< the target answer (JSON text, format_answer)
};

/// The generated dataset.
struct Dataset {
  DatasetConfig config;         ///< the configuration with sorted lists
  std::vector<Cell> cells;      ///< lottery-major order: cell = lottery index * scores + score index
  std::vector<Sample> samples;  ///< by problem (config order), then sample index
};

/// The P2 (mutual) group of three that a mutual sample, and an investagent agent with protocol = "mutual",
/// is scored against: agent 0 the advisor (alpha_leader, zero row of Theta: it plays its own Merton path),
/// 1 the investor, 2 the peer; each influenced agent weighs both others with its own theta. The advisor's
/// x0 is the investor's budget (its Merton path does not depend on it). Continuous time, rho = 0, horizon
/// T years; solve it with theory::solve_mutual_game and read agent 1.
[[nodiscard]] theory::MutualGame mutual_group_game(const theory::Market& market, int horizon_years,
                                                   double alpha_leader, const InvestorProfile& investor,
                                                   const InvestorProfile& peer);

/// Builds the dataset. Throws InputError (all configuration problems in one message) and SolverError
/// (a theory solver failed; never a silently dropped sample).
[[nodiscard]] Dataset build_dataset(const DatasetConfig& config);

}  // namespace herdsim::investalign
