#pragma once
// The exogenous market of docs/theory.md §1 and §7.1: N >= 1 stocks whose prices follow correlated
// geometric Brownian motions that no agent moves, and a deposit at rate r. One shock vector per (path,
// step) from the counter-based RNG: N independent normals z_b keyed by (seed, market stream, path, step,
// asset b), mixed by the correlation's Cholesky factor, eps = L z (one asset: eps = z_0, today's draw).
#include <vector>

#include "sim/market/market.hpp"
#include "sim/market/market_step.hpp"
#include "sim/market/random.hpp"

namespace herdsim::sim {

class ExogenousGbm final : public Market {
 public:
  /// The market of `spec.market`, stepped by `spec.run` (dt, wealth update) on `spec.run.paths` paths.
  /// Throws ScenarioError when spec.market is not valid (sim::market_problems).
  explicit ExogenousGbm(const ScenarioSpec& spec);

  [[nodiscard]] int assets() const override { return static_cast<int>(coefficients_.size()); }
  [[nodiscard]] bool exogenous() const override { return true; }
  void initialize(MarketState& state) override;
  /// z_b = N(0, 1) keyed by (seed, market stream, global path, k, asset b); eps = L z; S_a <- S_a (1 +
  /// return_a(eps_a)). Ignores `populations`.
  void move(int k, std::span<const PopulationState> populations, MarketState& state) override;
  [[nodiscard]] const Settlement& settlement() const override { return settlement_; }

 private:
  CounterRng rng_;
  std::vector<StepCoefficients> coefficients_;  ///< one per asset
  Eigen::MatrixXd factor_;                      ///< L, lower triangular, L L' = the correlation
  int paths_ = 0;
  std::uint64_t first_path_ = 0;  ///< global index of path 0 (RunSpec::first_path): the RNG's path key
  std::vector<double> price0_;    ///< S_0 per asset, currency units per share
  Settlement settlement_;
};

}  // namespace herdsim::sim
