#pragma once
// One step of the market and of an investor's wealth (the settle phase). Pure functions, inlined in
// the hot loops.
#include <cmath>

#include "sim/scenario_spec.hpp"

namespace herdsim::sim {

/// Per-step constants of the market, computed once per run.
struct StepCoefficients {
  double deposit_growth = 1.0;  ///< 1 + r dt (arithmetic) or e^{r dt} (lognormal)
  double drift = 0.0;           ///< arithmetic: v dt; lognormal: (mu - sigma^2/2) dt
  double diffusion = 0.0;       ///< sigma sqrt(dt)
  double price_drift = 0.0;     ///< arithmetic: mu dt
  WealthUpdate update = WealthUpdate::arithmetic;

  /// An asset with drift mu and volatility sigma next to a deposit at rate r (all per year).
  StepCoefficients(double mu, double r, double sigma, double dt, WealthUpdate u)
      : deposit_growth(u == WealthUpdate::arithmetic ? 1.0 + r * dt : std::exp(r * dt)),
        drift(u == WealthUpdate::arithmetic ? (mu - r) * dt : (mu - 0.5 * sigma * sigma) * dt),
        diffusion(sigma * std::sqrt(dt)),
        price_drift(mu * dt),
        update(u) {}
  /// Asset 0 of m (the only one with one asset).
  StepCoefficients(const MarketSpec& m, double dt, WealthUpdate u)
      : StepCoefficients(m.mu, m.r, m.sigma, dt, u) {}

  /// Simple return of the stock over the step for shock eps.
  [[nodiscard]] double stock_return(double eps) const {
    return update == WealthUpdate::arithmetic ? price_drift + diffusion * eps
                                              : std::expm1(drift + diffusion * eps);
  }
  /// Excess return per unit invested: what one currency unit in the stock earns over the deposit.
  /// Arithmetic: v dt + sigma sqrt(dt) eps (the paper's update); lognormal: (S'/S) - e^{r dt}.
  [[nodiscard]] double excess_return(double eps) const {
    return update == WealthUpdate::arithmetic ? drift + diffusion * eps
                                              : 1.0 + stock_return(eps) - deposit_growth;
  }
};

/// X_{k+1} = X_k G + P_k e, with G the deposit growth and e the excess return of the step.
[[nodiscard]] inline double settle_wealth(double wealth, double amount, double deposit_growth,
                                          double excess) {
  return wealth * deposit_growth + amount * excess;
}

}  // namespace herdsim::sim
