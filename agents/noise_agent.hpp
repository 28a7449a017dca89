#pragma once
// Noise traders, the no-herding baseline: each step every agent puts a proportion of its wealth in
// the stock, drawn independently (per path, step and agent) from the population's `proportion`
// distribution; a constant or list `proportion` gives each agent a fixed proportion instead.
// Parameters: wealth0 (+ proportion when fixed).
#include "sim/population.hpp"

namespace herdsim::agents {

class NoisePopulation final : public sim::Population {
 public:
  NoisePopulation(const sim::ScenarioSpec& spec, int index);
  void initialize(const sim::RunState& state, sim::PopulationState& own) override;
  void decide(const sim::DecisionContext& ctx, int p0, int p1, int a0, int a1,
              sim::PopulationState& own) const override;

 private:
  const sim::ScenarioSpec& spec_;
  const sim::PopulationSpec& ps_;
  int index_;
  bool drawn_;  // proportion is a distribution, drawn every step
};

}  // namespace herdsim::agents
