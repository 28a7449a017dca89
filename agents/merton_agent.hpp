#pragma once
// The rational CARA investor: Merton's amount, which does not depend on wealth, so `plan` and
// `replan` coincide. With several assets, the vector form Sigma^{-1} v / (alpha G(t)) (docs/theory.md §7.1).
// Keys: alpha, lottery, policy, optimum. Parameters: alpha, wealth0.
#include <memory>
#include <string_view>
#include <vector>

#include "agents/agent_support.hpp"
#include "agents/kind.hpp"
#include "agents/parameters.hpp"
#include "sim/population.hpp"

namespace herdsim::agents {

/// The parameters of a merton population.
struct MertonParams {
  static constexpr std::string_view kind = "merton";
  sim::ParamSpec alpha;  ///< CARA risk aversion, per currency unit
  /// Maps alpha given as lottery probabilities (Scale::lottery_prob) to alpha: the `lottery` key.
  theory::LotteryConvention lottery = theory::lottery_win10_sure3;
  Policy policy = Policy::plan;  ///< plan or replan (the same decisions)
  Optimum optimum = Optimum::discrete;
};

/// The merton kind (registered by the registry).
[[nodiscard]] std::unique_ptr<Kind> make_merton_kind();

/// The per-agent parameters of a merton population, in grid order (a leader's followers use it too).
[[nodiscard]] std::vector<NamedParam> merton_params(const sim::PopulationSpec& ps);

/// The alpha of each follower's leader agent: follower i (its global index first_follower + i in an agent
/// split) follows agent i mod count of merton population `leader` (recomputed from its spec, a pure function
/// of it, rather than read from its state, so that nothing depends on the order populations are initialised
/// in). Throws Error when the leader is itself a block of agents (a leader is replicated in an agent split).
[[nodiscard]] Eigen::VectorXd leader_alpha_of(const sim::ScenarioSpec& spec, int leader, int followers,
                                              int first_follower = 0);

class MertonPopulation final : public sim::Population {
 public:
  MertonPopulation(const sim::ScenarioSpec& spec, int index);
  void initialize(const sim::RunState& state, sim::PopulationState& own) override;
  void decide(const sim::DecisionContext& ctx, int p0, int p1, int a0, int a1,
              sim::PopulationState& own) const override;
  [[nodiscard]] bool path_independent() const override { return true; }

 private:
  const sim::ScenarioSpec& spec_;
  int index_;
};

}  // namespace herdsim::agents
