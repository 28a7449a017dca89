#pragma once
// Fundamentalists (docs/theory.md §7.4): each agent holds, in each asset a, the proportion
// kappa ln(F_a / S_a) of its wealth, clamped to [-max_proportion, max_proportion]: it buys what trades
// below its fundamental F (the exogenous GBM of an endogenous market) and sells short what trades
// above. The log form of Franke and Westerhoff's fundamentalist demand, scaled by wealth so that the
// amount is in currency units. In the exogenous market the fundamental is the price: the gap is 0 and
// the agent holds nothing (a price-taker with nothing to correct). It reads only the market's price and
// fundamental at the decision (no state between decisions) and draws no random numbers.
// Keys: kappa, max_proportion. Parameters: wealth0, kappa.
#include <memory>
#include <string_view>

#include "agents/kind.hpp"
#include "sim/population.hpp"

namespace herdsim::agents {

/// The parameters of a fundamentalist population.
struct FundamentalistParams {
  static constexpr std::string_view kind = "fundamentalist";
  sim::ParamSpec kappa;         ///< proportion of wealth per unit of log mispricing ln(F/S), >= 0
  double max_proportion = 1.0;  ///< cap on |amount| / wealth in each asset, > 0
};

/// The fundamentalist kind (registered by the registry).
[[nodiscard]] std::unique_ptr<Kind> make_fundamentalist_kind();

/// The proportion of wealth a fundamentalist with sensitivity kappa asks for in an asset priced `price`
/// with fundamental `fundamental` (before the cap): kappa ln(F / S).
[[nodiscard]] double fundamentalist_proportion(double kappa, double fundamental, double price);

class FundamentalistPopulation final : public sim::Population {
 public:
  FundamentalistPopulation(const sim::ScenarioSpec& spec, int index);
  void initialize(const sim::RunState& state, sim::PopulationState& own) override;
  void decide(const sim::DecisionContext& ctx, int p0, int p1, int a0, int a1,
              sim::PopulationState& own) const override;

 private:
  const sim::ScenarioSpec& spec_;
  const FundamentalistParams& fp_;
  int index_;
};

}  // namespace herdsim::agents
