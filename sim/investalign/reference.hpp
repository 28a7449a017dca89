#pragma once
// Reference answerers (docs/investagents.md, "Reference answerers"): answer sources of the investagent kind
// that compute an InvestAlign answer instead of generating one. They are inference backends like a model's:
// they receive the same requests, write answer TEXT in the answer format (format_answer), and the
// population parses and scores it exactly as a model's, so their MSEs are yardsticks for a model's:
//   p3_closed_form - the P3 closed form of the agent's profile (a perfectly P3-aligned InvestAgent; its P1
//                    and P2 scores are the ceiling of the transfer fine-tuning on P3 hopes for);
//   advisor        - the advisor's proportions as the prompt quotes them (pure herding);
//   merton         - the investor's own Merton proportions (no herding);
//   own_theory     - the theory the problem is scored against (P3, P1 or P2): its error is only the
//                    answer format's rounding to hundredths of a percent (and clamping to its range).
// A model reads the prompt; an answerer reads the structured inputs the prompt was rendered from
// (inference::Request::question holds a Question), so that no number is lost to the prompt's printing.
#include <array>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "sim/enum_names.hpp"
#include "sim/inference/backend.hpp"
#include "sim/investalign/dataset.hpp"
#include "sim/investalign/prompt.hpp"

namespace herdsim::investalign {

/// What one InvestAlign request asks, in the structured form its prompt was rendered from.
struct Question {
  Problem problem = Problem::absolute;  ///< what the asking protocol is scored against (step: absolute, P3)
  TaskKind task = TaskKind::absolute;   ///< the prompt's task (relative protocol: absolute at stage 0)
  TaskSettings settings;  ///< the template's shared settings (market, advisor alpha, T, lottery)
  PromptInputs inputs;    ///< the agent's inputs (profile, advisor, year-1 proportion, peer, state)
};

/// The reference answerers.
enum class Answerer { p3_closed_form, advisor, merton, own_theory };
constexpr std::array<NamedValue<Answerer>, 4> enum_names(Answerer /*unused*/) {
  return {{{Answerer::p3_closed_form, "p3_closed_form"},
           {Answerer::advisor, "advisor"},
           {Answerer::merton, "merton"},
           {Answerer::own_theory, "own_theory"}}};
}

/// The optimal amounts at t = 1..T (million dollars, continuous time, correct eta) of a problem for one
/// investor: P3 (absolute herding on the advisor), P1 (relative herding, `bc` ends) or P2 (the group of
/// three of mutual_group_game with `peer`, which mutual needs), the advisor holding the Merton path of
/// settings.advisor_alpha() in settings.market. The theory investagent populations and the reference
/// answerers score and answer with.
[[nodiscard]] std::vector<double> problem_amounts(
    Problem problem, const TaskSettings& settings, const InvestorProfile& investor,
    const std::optional<InvestorProfile>& peer,
    theory::BoundaryCondition bc = theory::BoundaryCondition::pinned);

/// The answer text of `answerer` to `question` (format_answer of the task's schema): its path of amounts
/// A(t = j) as proportions of the reference budgets B_j (plan tasks), as changes from the quoted year-1
/// proportion (relative: c_1 = pi_2 - year 1, c_j = pi_{j+1} - pi_j of the two-decimal proportions), or as
/// A(t = year) over the current wealth (step); values clamped to the schema's range. Throws InputError for a
/// question that does not fit its task.
[[nodiscard]] std::string reference_answer(Answerer answerer, const Question& question);

/// An answerer as an inference backend (name "reference"): answers every request that carries a Question
/// (Request::question); a request without one gets HERDSIM_ERR_INVALID_ARGUMENT. Theory solutions are kept
/// per distinct profile.
class ReferenceBackend final : public inference::Backend {
 public:
  explicit ReferenceBackend(Answerer answerer) : answerer_(answerer) {}
  [[nodiscard]] std::vector<inference::Response> generate(
      const std::vector<inference::Request>& requests) override;
  [[nodiscard]] std::string name() const override { return "reference"; }
  /// {"backend": "reference", "answerer": NAME}.
  [[nodiscard]] std::string describe() const override;

 private:
  Answerer answerer_;
};

}  // namespace herdsim::investalign
