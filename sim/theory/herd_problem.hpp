#pragma once
// The unilateral herding problem: a follower maximises E[U(X_T)] - (theta/2) D(P, Pbar), where Pbar is
// the leader's own Merton path and D measures the level gap (absolute) or the rate gap (relative).
#include "sim/theory/schedule.hpp"

namespace herdsim::theory {

/// Parameters of one follower and its leader (units: alpha per currency unit, years, currency units).
struct HerdProblem {
  Market market{};
  double alpha = 0.2;                            ///< follower's CARA risk aversion, > 0
  double alpha_leader = defaults::alpha_leader;  ///< leader's CARA risk aversion, > 0
  double theta = 0.0;        ///< herding coefficient, >= 0 (currency^-1 per year^-1 scale of the penalty)
  double rho = 0.0;          ///< exponent of the absolute penalty's time weight e^{rho r (T-t)}
  double x0 = defaults::x0;  ///< initial wealth, currency units (any finite value)
  double horizon = defaults::horizon;  ///< T, years, > 0
  TimeModel time = TimeModel::continuous();

  [[nodiscard]] Schedule schedule() const { return {market, horizon, time}; }
};

/// Throws InputError naming the first field outside its domain (alpha, alpha_leader, sigma,
/// horizon > 0; theta >= 0; all finite).
void validate(const HerdProblem& problem);

}  // namespace herdsim::theory
