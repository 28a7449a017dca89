#pragma once
// Prompt templates (docs/theory.md §4.4) in herdsim's own wording. A template is data: a system message,
// a task description, and a builder of the agent-specific rest of the user message. A rendered prompt
// keeps the shared prefix (system message + task description, identical for every agent of a template)
// apart from the agent's suffix, so an inference backend can evaluate the prefix once and reuse its KV
// cache, and carries a stable 64-bit hash of its full text.
#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sim/enum_names.hpp"
#include "sim/investalign/answer.hpp"
#include "sim/theory/market.hpp"

namespace herdsim::investalign {

/// The InvestAlign tasks. `absolute` (P3), `relative` (P1, second stage of the two-stage protocol) and
/// `mutual` (P2) ask for a whole plan at t = 0; `step` asks for this year's proportion given the state.
enum class TaskKind { absolute, relative, mutual, step };
constexpr std::array<NamedValue<TaskKind>, 4> enum_names(TaskKind /*unused*/) {
  return {{{TaskKind::absolute, "absolute"},
           {TaskKind::relative, "relative"},
           {TaskKind::mutual, "mutual"},
           {TaskKind::step, "step"}}};
}
/// "absolute", "relative", "mutual", "step" (the name table's spelling, as a C string).
[[nodiscard]] const char* task_kind_name(TaskKind kind);

/// The answer a task asks for: T proportions (absolute, mutual), T - 1 changes (relative), one (step).
[[nodiscard]] AnswerSchema answer_schema(TaskKind kind, int horizon_years);

/// What every agent of one template shares (it goes into the shared prefix).
struct TaskSettings {
  theory::Market market{};                               ///< quoted in the task description
  double alpha_leader = theory::defaults::alpha_leader;  ///< the advisor's risk aversion, per million dollars
  int horizon_years = 10;                                ///< T, years; one decision per year
  theory::LotteryConvention lottery = theory::lottery_win10_sure3;  ///< lottery amounts quoted with alpha
  int max_explanation_chars = default_max_explanation_chars;        ///< quoted bound of the explanation
  /// Theory only, never quoted: the advisor's amounts are the one-asset Merton path in `market` of risk
  /// aversion advisor_alpha() = alpha_leader x this factor. 1 for the one-asset advisor; for InvestAgents
  /// trading asset j of N, theory::merton_alpha_factor of j, which makes that path the N-asset advisor's
  /// holding of asset j (docs/theory.md §7.1).
  double advisor_alpha_factor = 1.0;

  /// The risk aversion whose one-asset Merton path in `market` the advisor holds (alpha_leader with one
  /// asset).
  [[nodiscard]] double advisor_alpha() const { return alpha_leader * advisor_alpha_factor; }
};

/// One investor's questionnaire attributes (amounts in million dollars, the prompts' unit).
struct InvestorProfile {
  double lottery_prob = 0.9;  ///< indifference probability p of the risk lottery
  double alpha = 0.766119;    ///< CARA risk aversion from p under TaskSettings::lottery, per million dollars
  double score = 10.0;        ///< dependence score, 0 (none) .. 10 (strong)
  double theta = 1e-7;        ///< herding coefficient (theory::theta_from_score(score))
  double budget = 10.0;       ///< initial wealth x0, million dollars
};

/// The reference solution a training prompt carries (docs/theory.md §4.3: eta and the optimal proportions).
struct TrainingHint {
  double ln_eta = 0.0;  ///< ln eta, eta = H at the optimum (dimensionless; eta may be below 1e-300)
  std::vector<double>
      values;  ///< optimal proportions (absolute, mutual: T) or changes (relative: T - 1), fractions
};

/// What the per-step prompt shows of the agent's current situation.
struct StepState {
  int year = 1;                       ///< the year being decided, 1..T
  double wealth = 10.0;               ///< current wealth, million dollars
  std::optional<double> own_last;     ///< own proportion last year, fraction (none in year 1)
  std::optional<double> leader_last;  ///< the leader's proportion last year, fraction
  std::vector<double> peers_last;     ///< the peers' proportions last year, fractions
};

/// The agent-specific inputs of one prompt.
struct PromptInputs {
  InvestorProfile investor;     ///< the agent
  std::vector<double> advisor;  ///< advisor's proportions for years 1..T, fractions (not step)
  std::optional<double> first_year_proportion;  ///< relative: the year-1 proportion, fraction
  std::optional<InvestorProfile> peer;          ///< mutual: the peer investor
  std::optional<StepState> step;                ///< step: the current state
  std::optional<TrainingHint> hint;             ///< training variant: the reference solution
};

/// Builds the agent-specific part of the user message.
using AgentPartBuilder = std::function<std::string(const TaskSettings&, const PromptInputs&)>;

/// A prompt template: data, not code paths (see make_prompt_template for the built-in ones).
struct PromptTemplate {
  TaskKind kind = TaskKind::absolute;  ///< which task
  TaskSettings settings;               ///< shared settings quoted by the texts
  std::string system;                  ///< system message
  std::string task;                    ///< task description: the shared start of the user message
  AgentPartBuilder agent_part;         ///< the rest of the user message, per agent
};

/// The built-in template of a task.
[[nodiscard]] PromptTemplate make_prompt_template(TaskKind kind, const TaskSettings& settings = {});

/// A rendered prompt: system message, then a user message made of the shared task description and the
/// agent's part.
struct Prompt {
  std::string system;       ///< system message (shared)
  std::string user_shared;  ///< start of the user message (shared)
  std::string user_agent;   ///< rest of the user message (this agent only)

  /// The whole user message.
  [[nodiscard]] std::string user() const { return user_shared + user_agent; }
  /// FNV-1a 64 of system, a NUL byte, and the user message: stable across runs and platforms.
  [[nodiscard]] std::uint64_t hash() const;
  /// FNV-1a 64 of the shared part alone (system, NUL, user_shared): equal for every agent of a template.
  [[nodiscard]] std::uint64_t shared_hash() const;
};

/// Renders a prompt; throws InputError when the inputs do not fit the task (advisor values not T long,
/// no first-year proportion for relative, no peer for mutual, no state for step, a hint of the wrong
/// length, a non-finite number).
[[nodiscard]] Prompt render_prompt(const PromptTemplate& tpl, const PromptInputs& inputs);

/// exp(ln_value) in scientific notation with `decimals` digits after the point ("9.991e-06"), computed from
/// the logarithm so that values below the double range (eta of wealthy agents) still print; "0" and "inf"
/// where the decimal exponent would exceed a long long (as for ln_value = -inf and +inf).
[[nodiscard]] std::string format_exp_of_ln(double ln_value, int decimals);

/// FNV-1a offset basis (64-bit).
inline constexpr std::uint64_t fnv1a64_offset = 14695981039346656037ULL;
/// FNV-1a 64 of bytes, continuing from state (chain calls to hash several pieces).
[[nodiscard]] std::uint64_t fnv1a64(std::string_view bytes, std::uint64_t state = fnv1a64_offset);
/// 16 lower-case hex digits.
[[nodiscard]] std::string hash_hex(std::uint64_t hash);

}  // namespace herdsim::investalign
