#pragma once
// Noise traders, the no-herding baseline: each step every agent puts a proportion of its wealth in
// the stock, drawn independently (per path, step and agent) from the population's `proportion`
// distribution; a constant or list `proportion` gives each agent a fixed proportion instead.
// With N > 1 assets the proportion is of wealth in the risky assets together, spread equally: asset a
// gets q_a / N of wealth, q_a the fixed proportion or an independent draw per asset (lane a of the key).
// Keys: proportion. Parameters: wealth0 (+ proportion when fixed).
#include <memory>
#include <string_view>

#include "agents/kind.hpp"
#include "sim/population.hpp"

namespace herdsim::agents {

/// The parameters of a noise population.
struct NoiseParams {
  static constexpr std::string_view kind = "noise";
  sim::ParamSpec proportion;  ///< of wealth in the stock (any real: < 0 short, > 1 leveraged)
};

/// The noise kind (registered by the registry).
[[nodiscard]] std::unique_ptr<Kind> make_noise_kind();

class NoisePopulation final : public sim::Population {
 public:
  NoisePopulation(const sim::ScenarioSpec& spec, int index);
  void initialize(const sim::RunState& state, sim::PopulationState& own) override;
  void decide(const sim::DecisionContext& ctx, int p0, int p1, int a0, int a1,
              sim::PopulationState& own) const override;

 private:
  const sim::ScenarioSpec& spec_;
  const sim::PopulationSpec& ps_;
  const NoiseParams& np_;
  int index_;
  bool drawn_;  // proportion is a distribution, drawn every step

  /// decide() in a market with several assets (the rule in the file comment).
  void decide_assets(const sim::DecisionContext& ctx, int p0, int p1, int a0, int a1,
                     sim::PopulationState& own) const;
};

}  // namespace herdsim::agents
