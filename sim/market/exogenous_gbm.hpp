#pragma once
// The exogenous market of docs/theory.md §1: one stock whose price follows a geometric Brownian motion that
// no agent moves, one shock per (path, step) from the counter-based RNG, and a deposit at rate r.
#include "sim/market/market.hpp"
#include "sim/market/market_step.hpp"
#include "sim/market/random.hpp"

namespace herdsim::sim {

class ExogenousGbm final : public Market {
 public:
  /// The market of `spec.market`, stepped by `spec.run` (dt, wealth update) on `spec.run.paths` paths.
  explicit ExogenousGbm(const ScenarioSpec& spec);

  [[nodiscard]] int assets() const override { return 1; }
  [[nodiscard]] bool exogenous() const override { return true; }
  void initialize(MarketState& state) override;
  /// eps = N(0, 1) keyed by (seed, market stream, path, k, asset 0); S <- S (1 + return(eps)). Ignores
  /// `populations`.
  void move(int k, std::span<const PopulationState> populations, MarketState& state) override;
  [[nodiscard]] const Settlement& settlement() const override { return settlement_; }

 private:
  CounterRng rng_;
  StepCoefficients coefficients_;
  int paths_ = 0;
  double price0_ = 1.0;  ///< S_0, currency units per share
  Settlement settlement_;
};

}  // namespace herdsim::sim
