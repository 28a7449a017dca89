#pragma once
// LLM-backed investors ("InvestAgents", docs/investagents.md "InvestAgent populations"): each agent
// answers the InvestAlign prompt of sim/investalign/prompt.hpp through an inference::Backend, and plays
// the amounts its answers imply. Protocols:
//   absolute - P3: one request per agent at t = 0 for T proportions pi_j; P_k = pi_{k+1} B_{k+1} on
//              every path (B_j the dataset's reference budgets scaled by x0 / 10);
//   relative - P1, two stages: the absolute prompt at t = 0 (only year 1 kept), the relative prompt at
//              t = 1 for T - 1 changes; proportions rebuilt by cumulative sum, amounts as for absolute;
//   mutual   - P2: as absolute with the mutual prompt, which adds the profile of the agent's peer, another
//              agent of the population drawn with the run's seed (peer_of); scored against the P2 game
//              of the advisor, the agent and its peer (investalign::mutual_group_game);
//   step     - each step, one request per (agent, path) with the current state; P = pi X_k.
// Requests go to the backend in batches from prepare_step (serial), never from the parallel decide();
// path-independent ones (the plans) through Backend::generate_shared, which a path split shares out.
// In a market of several assets the population trades one, `asset` (docs/theory.md §7.1, "InvestAgents in
// one of N assets"): its prompts quote that asset's drift and volatility and the advisor's holding of it, its
// theory is the one-asset problem there, and its amounts in the other assets are 0.
// Keys: alpha, lottery, theta, leader, protocol, asset, inference.
// Parameters: alpha, theta, wealth0, leader_alpha, lottery_prob, score (mutual: also peer, the peer's index).
// Kind state (sim::PopulationState::kind_state): absolute, relative, mutual: `plan`, count x T, the amounts
// the answers imply (column k = decision k, currency units); relative: `first_year`, count x 1, the stage-0
// year-1 proportion; step: `step_amount`, count x paths, this step's amounts (currency units),
// `last_proportion`, count x paths, each agent's last answer (fraction), and `leader_wealth`, leaders x
// paths, the leaders' wealth at the last decision (currency units).
#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "agents/kind.hpp"
#include "sim/inference/backend.hpp"
#include "sim/investalign/prompt.hpp"
#include "sim/population.hpp"

namespace herdsim::agents {

/// How an investagent population asks its model (docs/investagents.md, "InvestAgent populations").
enum class InvestProtocol {
  absolute,  ///< P3: one request per agent at t = 0 for T proportions, played as a plan on every path
  relative,  ///< P1, two stages: the absolute prompt's year 1 at t = 0, then T - 1 changes at t = 1
  mutual,    ///< P2: one request per agent at t = 0 for T proportions, with a peer of the population
  step,      ///< each step, one request per (agent, path) with the current state
};
constexpr std::array<NamedValue<InvestProtocol>, 4> enum_names(InvestProtocol /*unused*/) {
  return {{{InvestProtocol::absolute, "absolute"},
           {InvestProtocol::relative, "relative"},
           {InvestProtocol::mutual, "mutual"},
           {InvestProtocol::step, "step"}}};
}

/// The parameters of an investagent population.
struct InvestAgentParams {
  static constexpr std::string_view kind = "investagent";
  sim::ParamSpec alpha;  ///< CARA risk aversion, per currency unit (usually {lottery_prob = ...})
  /// The questionnaire's lottery: maps lottery probabilities to alpha, and is quoted by the prompt.
  theory::LotteryConvention lottery = theory::lottery_win10_sure3;
  sim::ParamSpec theta;  ///< herding coefficient (usually {score = ...})
  std::string leader;    ///< the advisor: a merton population; agent i follows its agent i mod count
  InvestProtocol protocol = InvestProtocol::absolute;
  /// The market asset it trades and its prompts are about (a name of [market]); "": the only asset.
  std::string asset;
  sim::InferenceSpec inference;  ///< which backend answers, and how
};

/// The investagent kind (registered by the registry).
[[nodiscard]] std::unique_ptr<Kind> make_investagent_kind();

/// The problem a protocol's answers are scored against (theory/amount): "P3", "P1" or "P2".
[[nodiscard]] const char* scored_problem(InvestProtocol protocol);

/// The index of the market asset an investagent population trades: its `asset`, or 0 without one in a
/// one-asset market; -1 for a population of another kind or a name the market does not have.
[[nodiscard]] int traded_asset(const sim::ScenarioSpec& spec, const sim::PopulationSpec& ps);

class InvestAgentPopulation final : public sim::Population {
 public:
  /// For a checked spec (the kind's check: one decision a year, a horizon of 1..10 whole years, a merton
  /// leader, an asset of the market); backend: not null.
  InvestAgentPopulation(const sim::ScenarioSpec& spec, int index,
                        std::unique_ptr<inference::Backend> backend);
  void initialize(const sim::RunState& state, sim::PopulationState& own) override;
  void prepare_step(const sim::DecisionContext& ctx, sim::PopulationState& own) override;
  void decide(const sim::DecisionContext& ctx, int p0, int p1, int a0, int a1,
              sim::PopulationState& own) const override;
  // Decisions come from answers, not from theory_amount: never the fused kernel.
  [[nodiscard]] bool path_independent() const override { return false; }

  /// The peer of `agent` under the mutual protocol: another agent of the population (count >= 2), uniform
  /// over the other count - 1, a pure function of (run seed, population, agent) on the `parameters` stream.
  [[nodiscard]] static int peer_of(const sim::CounterRng& rng, int population, int agent, int count);

  /// The sampling seed of one request: a pure function of (run seed, population, agent, step, path,
  /// stage) on the `inference` stream (path -1: a path-independent request), never of the batch.
  [[nodiscard]] static std::uint64_t request_seed(const sim::CounterRng& rng, int population, int agent,
                                                  int step, int path, int stage);

 private:
  /// One request before it is sent.
  struct Query {
    int agent = 0;
    int path = -1;
    int stage = 0;
    const investalign::PromptTemplate* prompt_template = nullptr;
    investalign::PromptInputs inputs;  ///< what the prompt was rendered from
    investalign::Prompt prompt;
    std::uint64_t seed = 0;
    const investalign::AnswerSchema* schema = nullptr;
    const std::string* grammar = nullptr;
    std::vector<double> fallback;  ///< the advisor's values: what an invalid answer plays
  };
  /// Sends n queries in batches of inference.batch; make(i) builds query i, use(i, answer) takes its
  /// parsed answer. Records a transcript per request and the totals in own.inference.
  void ask(int step, std::size_t n, const std::function<Query(std::size_t)>& make,
           const std::function<void(std::size_t, const investalign::ParsedAnswer&)>& use,
           sim::PopulationState& own);
  [[nodiscard]] const investalign::PromptTemplate& prompt_template(investalign::TaskKind kind,
                                                                   double alpha_leader) const;
  [[nodiscard]] investalign::InvestorProfile profile_of(int agent) const;
  [[nodiscard]] investalign::PromptInputs inputs_of(int agent) const;
  void ask_plan(const sim::DecisionContext& ctx, sim::PopulationState& own);
  void ask_changes(const sim::DecisionContext& ctx, sim::PopulationState& own);
  void ask_step(const sim::DecisionContext& ctx, sim::PopulationState& own);

  const sim::ScenarioSpec& spec_;
  const sim::PopulationSpec& ps_;
  const InvestAgentParams& ip_;
  int index_;
  int asset_ = 0;   ///< the asset it trades (traded_asset)
  int assets_ = 1;  ///< N, the market's assets
  int leader_index_ = -1;
  int leader_count_ = 0;
  int horizon_years_ = 0;  ///< T; one decision per year
  std::unique_ptr<inference::Backend> backend_;
  /// By (task, leader alpha): every template the protocol asks, built in initialize.
  std::map<std::pair<int, double>, investalign::PromptTemplate> templates_;
  investalign::AnswerSchema plan_schema_, change_schema_, step_schema_;
  std::string plan_grammar_, change_grammar_, step_grammar_;  ///< empty without `grammar`
  Eigen::VectorXd alpha_, theta_, x0_, leader_alpha_, lottery_prob_, score_;
  std::vector<std::vector<double>> budgets_;  ///< per agent: B_1..B_T, currency units
  std::vector<std::vector<double>> advisor_;  ///< per agent: the advisor's proportions as quoted, fractions
  Eigen::VectorXi peer_;                      ///< mutual: each agent's peer (an index in the population)
};

}  // namespace herdsim::agents
