#pragma once
// The rational CARA investor: Merton's amount, which does not depend on wealth, so `plan` and
// `replan` coincide. Parameters: alpha, wealth0.
#include "sim/population.hpp"

#include "agents/parameters.hpp"

namespace herdsim::agents {

/// The per-agent parameters of a merton population, in grid order (a leader's followers use it too).
[[nodiscard]] std::vector<NamedParam> merton_params(const sim::PopulationSpec& ps);

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
