#pragma once
// The rational (no-herding) CARA investor: Merton's amount and the value of the H functional.
#include <Eigen/Core>
#include <functional>
#include <span>

#include "sim/theory/schedule.hpp"

namespace herdsim::theory {

/// Merton's optimal AMOUNT in the stock at time t: v / (alpha sigma^2 G(t)), currency units.
/// In continuous time G = e^{r(T-t)}; in discrete time this is the exact optimum of the step model.
[[nodiscard]] double merton_amount(const Schedule& schedule, double alpha, double t);
/// The same in one coordinate of N assets (docs/theory.md §7.1): v~_j / (alpha lambda_j G(t)), any sign.
[[nodiscard]] double merton_amount(const Schedule& schedule, const Coordinate& c, double alpha, double t);

/// Merton's amounts of agents with CARA risk aversions `alpha` at the decisions t_k = k dt_years,
/// k = 0..steps-1: alpha.size() x steps, currency units. The one table of own-Merton plans (the
/// merton agents' plan, the analysis' reference).
[[nodiscard]] Eigen::MatrixXd merton_amounts(const Schedule& schedule, const Eigen::VectorXd& alpha,
                                             int steps, double dt_years);

/// Merton's amounts in N correlated assets (docs/theory.md §7.1) of agents with CARA risk aversions
/// `alpha` at the decisions t_k = k dt_years, k = 0..steps-1: Sigma^{-1} v / (alpha G(t)), the vector form
/// of merton_amount (G(t) = e^{r(T-t)} in continuous time, the exact optimum of the arithmetic steps in
/// discrete time). `covariance` Sigma (N x N, per year, positive definite), `excess` v = mu - r (per
/// year). alpha.size() x (N steps), currency units: column a steps + k = asset a at decision k.
[[nodiscard]] Eigen::MatrixXd merton_amounts(const Schedule& schedule, const Eigen::MatrixXd& covariance,
                                             const Eigen::VectorXd& excess, const Eigen::VectorXd& alpha,
                                             int steps, double dt_years);

/// How an N-asset Merton investor holds asset `asset`, as a one-asset Merton investor in that asset's market
/// (mu_j, r, sigma_j; docs/theory.md §7.1): the factor c such that the one-asset Merton amount of risk
/// aversion alpha c there, v_j / (alpha c sigma_j^2 G(t)), is the N-asset amount (Sigma^{-1} v)_j / (alpha
/// G(t)) at every t, in either time model: c = v_j / (Sigma_jj (Sigma^{-1} v)_j), the same for every alpha.
/// Exactly 1 with one asset. Not finite or <= 0 where that holding is 0 or of the other sign than v_j (no
/// one-asset Merton investor holds it). `covariance` Sigma (N x N, per year, positive definite), `excess` v
/// (per year).
[[nodiscard]] double merton_alpha_factor(const Eigen::MatrixXd& covariance, const Eigen::VectorXd& excess,
                                         int asset);

/// ln eta0 = ln H at the agent's own Merton path: -alpha x0 G(0)(1+...) - v^2 T / (2 sigma^2).
[[nodiscard]] double ln_eta0(const Schedule& schedule, double alpha, double x0);
/// ln H at the own Merton path in N assets: -alpha x0 G(0)(1+...) - Sum_j v~_j^2 T / (2 lambda_j)
/// (= -alpha x0 G - v' Sigma^{-1} v T / 2); one coordinate is ln_eta0 above.
[[nodiscard]] double ln_eta0(const Schedule& schedule, std::span<const Coordinate> coordinates, double alpha,
                             double x0);

/// A deterministic investment path: AMOUNT in the stock at time t (years).
using AmountPath = std::function<double(double)>;

/// ln H[P], where E[U(X_T)] = -H/alpha for a deterministic path P; evaluated in the deviation form
/// ln eta0 + (alpha^2 sigma^2 / 2) * Int G^2 (P - P_alpha)^2 (no cancellation).
[[nodiscard]] double ln_h(const Schedule& schedule, double alpha, double x0, const AmountPath& path);

/// Mean and variance of wealth X(t) under a deterministic path (continuous time: any t in [0, T];
/// discrete time: t = k dt, wealth after k steps).
struct WealthMoments {
  double mean = 0.0;      ///< currency units
  double variance = 0.0;  ///< currency units squared
};
[[nodiscard]] WealthMoments wealth_moments(const Schedule& schedule, double x0, const AmountPath& path,
                                           double t);

}  // namespace herdsim::theory
