#pragma once
// Herd-following investors: absolute or relative herding, on a leader or on peers (a network, solved as
// the mutual game). A leader is a merton population with every policy, or, with policy adaptive only, a
// chartist, fundamentalist, noise or herd population: plan and replan need the leader's amounts in advance
// (only a Merton leader has a deterministic path), the adaptive rule only the amounts the leader realised
// at the previous step (previous_amount, swapped in before any population decides, so the order of the
// populations in the scenario does not matter). Such a leader has no alpha: leader_alpha is recorded as
// NaN, the rule's weights use the follower's own alpha and theta, and there are no theory amounts.
// Policies:
//   plan     - the open-loop optimum of the theory, computed at t = 0 (path independent);
//   replan   - each step, the optimum over the remaining horizon from the realised wealth;
//   adaptive - a myopic best response to the decisions the leader/peers actually took at the
//              previous step (docs/scenarios.md, "adaptive rule"); nobody's plan is visible.
// Keys: alpha, lottery, theta, herd, influence, leader, network, policy, optimum, bc, rho.
// Parameters: alpha, theta, wealth0 (+ leader_alpha, or degree for peers).
// Several assets (docs/theory.md §7.1): every influence and policy, solved in the eigenbasis of the
// covariance (for peers: the mutual games, one scalar game per coordinate coupled through each agent's eta).
// Kind state (sim::PopulationState::kind_state): relative adaptive: `seen_before`, count x (assets x paths),
// the reference decision each agent observed at the previous step, per asset (currency units, deflated one
// step); peers replan: `replanned`, count x (assets x paths), this step's decisions solved in prepare_step
// (currency units; column a paths + p: asset a on path p).
#include <array>
#include <memory>
#include <string>
#include <string_view>

#include "agents/agent_support.hpp"
#include "agents/kind.hpp"
#include "agents/network.hpp"
#include "sim/population.hpp"
#include "sim/theory/asset_basis.hpp"
#include "sim/theory/herd_problem.hpp"
#include "sim/theory/relative_herd.hpp"
#include "sim/theory/schedule.hpp"

namespace herdsim::agents {

/// Absolute herding penalises the gap to the reference's amount, relative herding the gap in its changes.
enum class HerdType { absolute, relative };
constexpr std::array<NamedValue<HerdType>, 2> enum_names(HerdType /*unused*/) {
  return {{{HerdType::absolute, "absolute"}, {HerdType::relative, "relative"}}};
}
/// Whom the agents follow: a leader population, or their peers on a network.
enum class Influence { leader, peers };
constexpr std::array<NamedValue<Influence>, 2> enum_names(Influence /*unused*/) {
  return {{{Influence::leader, "leader"}, {Influence::peers, "peers"}}};
}

/// The parameters of a herd population.
struct HerdParams {
  static constexpr std::string_view kind = "herd";
  HerdType herd = HerdType::absolute;
  Influence influence = Influence::leader;
  std::string
      leader;  ///< influence = leader: a population (HerdKind::check); agent i follows its agent i mod count
  NetworkSpec network;  ///< influence = peers
  Policy policy = Policy::plan;
  Optimum optimum = Optimum::discrete;
  theory::BoundaryCondition bc = theory::BoundaryCondition::pinned;  ///< relative herding
  double rho = 0.0;      ///< absolute herding: time-weight exponent
  sim::ParamSpec alpha;  ///< CARA risk aversion, per currency unit
  /// Maps alpha given as lottery probabilities to alpha: the `lottery` key.
  theory::LotteryConvention lottery = theory::lottery_win10_sure3;
  sim::ParamSpec theta;  ///< herding coefficient
};

/// The herd kind (registered by the registry).
[[nodiscard]] std::unique_ptr<Kind> make_herd_kind();

class HerdPopulation final : public sim::Population {
 public:
  HerdPopulation(const sim::ScenarioSpec& spec, int index);
  void initialize(const sim::RunState& state, sim::PopulationState& own) override;
  /// Peers with policy replan: solves the remaining game on every path (in parallel over paths). A block
  /// of an agent split with peers: gathers every rank's previous decisions (the exchange).
  void prepare_step(const sim::DecisionContext& ctx, sim::PopulationState& own) override;
  void set_agent_exchange(sim::AgentExchange* exchange) override { exchange_ = exchange; }
  void decide(const sim::DecisionContext& ctx, int p0, int p1, int a0, int a1,
              sim::PopulationState& own) const override;
  [[nodiscard]] bool path_independent() const override { return hp_.policy == Policy::plan; }
  [[nodiscard]] double decision_cost() const override { return hp_.policy == Policy::replan ? 1000.0 : 1.0; }

 private:
  void plan_with_leader(sim::PopulationState& own);
  void plan_with_peers(sim::PopulationState& own);
  /// The game of agents with risk aversions alpha, initial wealths x0 and network theta: agents x
  /// (assets x decisions) amounts (plan_with_peers names the population on failure).
  [[nodiscard]] Eigen::MatrixXd solve_peer_game(const Eigen::VectorXd& alpha, const Eigen::VectorXd& x0,
                                                const WeightMatrix& theta) const;
  /// The previous decisions the agents observe: their leader population's, their own population's, or,
  /// in a block of an agent split with peers, every agent's (gathered in prepare_step).
  [[nodiscard]] const Eigen::MatrixXd& observed_previous(const sim::DecisionContext& ctx) const;
  /// Agents per chunk of the adaptive rules: their inputs and outputs stay in L1.
  static constexpr int kChunk = 256;
  /// seen[j]: what agent c0 + j observed at the previous step on `path` (the rules' reference m).
  void observe(const sim::DecisionContext& ctx, int c0, int len, int path, double* seen) const;
  void decide_adaptive_absolute(const sim::DecisionContext& ctx, int p0, int p1, int a0, int a1,
                                sim::PopulationState& own) const;
  [[nodiscard]] double replan(const sim::DecisionContext& ctx, int agent, double wealth) const;
  /// N assets: the first decision of the remaining problem, one amount per asset.
  [[nodiscard]] Eigen::VectorXd replan_assets(const sim::DecisionContext& ctx, int agent,
                                              double wealth) const;
  [[nodiscard]] theory::HerdProblem replan_problem(const sim::DecisionContext& ctx, int agent,
                                                   double wealth) const;
  [[nodiscard]] theory::RelativeHerdOptions replan_options(const sim::DecisionContext& ctx) const;
  /// The adaptive rules with N > 1 assets.
  void decide_adaptive_assets(const sim::DecisionContext& ctx, int p0, int p1, int a0, int a1,
                              sim::PopulationState& own) const;
  /// All agents' first decisions of the game over [t_k, T] from one path's wealths: agents x assets,
  /// currency units.
  [[nodiscard]] Eigen::MatrixXd replan_game(const sim::DecisionContext& ctx,
                                            const Eigen::Ref<const Eigen::VectorXd>& wealth) const;

  const sim::ScenarioSpec& spec_;
  const sim::PopulationSpec& ps_;
  const HerdParams& hp_;
  int index_;
  int leader_index_ = -1;
  int leader_count_ = 0;
  theory::Schedule schedule_;  // of the optimum the agents follow
  Eigen::VectorXd alpha_, theta_, leader_alpha_;
  WeightMatrix weights_;  // peers: theta_ij (in an agent split: this block's rows, every agent's columns)
  WeightMatrix mean_weights_;  // peers: theta_ij / theta_i (rows sum to 1; empty where theta_i = 0)
  Eigen::ArrayXd ln_vt_;       // ln(theta / (alpha sigma^2)); -inf for agents who do not herd
  // Per-step constants of the adaptive rule: ln of the remaining horizon's deposit growth,
  // ln G(t_k), Merton's amount for alpha = 1, and the one-step growth of a Merton amount.
  Eigen::VectorXd ln_growth_left_, ln_growth_, merton_unit_, projection_;
  // N > 1 assets (docs/theory.md §7.1): Sigma, v, its eigenbasis, and the adaptive rule's per-coordinate
  // constants: ln(theta / (alpha lambda_j)) (count x N), v~_j / lambda_j, v' Sigma^{-1} v / 2.
  int assets_ = 1;
  Eigen::MatrixXd covariance_;
  Eigen::VectorXd excess_;
  theory::AssetBasis basis_;
  Eigen::MatrixXd ln_vt_assets_;
  Eigen::VectorXd coordinate_unit_;
  double half_sharpe_ = 0.0;
  // An agent split (docs/cluster.md): the ranks, and with peers every agent's previous decisions
  // (agents_total x assets paths, gathered every step) and the exchange's buffers.
  sim::AgentExchange* exchange_ = nullptr;
  Eigen::MatrixXd peers_previous_;
  std::vector<double> exchange_send_, exchange_received_;
};

/// Most agents a relative-herding peers population with policy replan may have: every step solves the
/// mutual relative game (docs/theory.md §3.5, ~1.35 s at 100 agents, ~17 s at 1000) on every path
/// (docs/scenarios.md). Absolute herding's mutual game has no such limit (milliseconds per solve).
inline constexpr int kPeersReplanMaxAgentsRelative = 100;

}  // namespace herdsim::agents
