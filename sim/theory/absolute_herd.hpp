#pragma once
// Absolute herding with one leader (the paper's P3): closed form
//   P*(t) = w(t) P_alpha(t) + (1 - w(t)) Pbar(t),  w = eta alpha sigma^2 g / (eta alpha sigma^2 g + theta),
// g = G(t)^{2-rho}, with eta the unique root of ln eta = ln eta0 + I(eta) found on ln eta.
#include <Eigen/Core>
#include <vector>

#include "sim/theory/asset_basis.hpp"
#include "sim/theory/herd_problem.hpp"

namespace herdsim::theory {

/// Which eta equation to solve. `repo_precedence_bug` reproduces the released InvestAlign code, whose
/// operator precedence multiplies the integrand by sigma^2 (eta g + vt)^2 / 2 instead of dividing by
/// 2 sigma^2 (eta g + vt)^2, so that eta ~ eta0 (compatibility only; never the default).
enum class EtaFormula { correct, repo_precedence_bug };

/// The optimum of one follower. Cheap to copy; evaluates the closed form at any t in [0, T]
/// (for discrete time at decision times t = k dt).
class AbsoluteHerdSolution {
 public:
  AbsoluteHerdSolution(const HerdProblem& problem, double ln_eta, double ln_eta0, int evaluations);
  /// One coordinate of an N-asset optimum (docs/theory.md §7.1): the market's sigma and v replaced by the
  /// coordinate's; ln_eta and ln_eta0 are the whole problem's.
  AbsoluteHerdSolution(const HerdProblem& problem, const Coordinate& coordinate, double ln_eta,
                       double ln_eta0, int evaluations);

  [[nodiscard]] const HerdProblem& problem() const { return problem_; }
  [[nodiscard]] double ln_eta() const { return ln_eta_; }
  [[nodiscard]] double eta() const { return std::exp(ln_eta_); }
  /// ln H at the follower's own Merton path (the lower end of the eta bracket).
  [[nodiscard]] double ln_eta0() const { return ln_eta0_; }
  /// Objective evaluations the root search used.
  [[nodiscard]] int evaluations() const { return evaluations_; }

  /// Optimal AMOUNT in the stock at time t, currency units.
  [[nodiscard]] double amount(double t) const;
  /// Investment opinion w(t): weight on the own Merton path (1 = rational, 0 = full imitation).
  [[nodiscard]] double opinion(double t) const;
  /// Herding strength kappa(t) = theta / (eta alpha sigma^2 g(t)) = (1 - w) / w.
  [[nodiscard]] double kappa(double t) const;
  /// The follower's own Merton amount at t.
  [[nodiscard]] double own_merton(double t) const;
  /// The leader's Merton amount at t (the path being followed).
  [[nodiscard]] double leader_merton(double t) const;

  /// E[U(X_T)] = -eta / alpha at the optimum.
  [[nodiscard]] double expected_utility() const { return -eta() / problem_.alpha; }
  /// (theta/2) * Int e^{rho r (T-t)} (P* - Pbar)^2 dt (a sum over steps in discrete time).
  [[nodiscard]] double deviation_penalty() const;
  /// J = expected utility - deviation penalty.
  [[nodiscard]] double objective() const { return expected_utility() - deviation_penalty(); }

 private:
  HerdProblem problem_;
  Coordinate coordinate_;
  Schedule schedule_;
  double ln_eta_;
  double ln_eta0_;
  double ln_vt_;  // ln(theta / (alpha sigma^2)); -inf when theta = 0
  int evaluations_;
};

/// Solves the follower's problem; throws InputError for invalid parameters and SolverError if the
/// bracketed root search on ln eta does not converge.
[[nodiscard]] AbsoluteHerdSolution solve_absolute_herd(const HerdProblem& problem,
                                                       EtaFormula formula = EtaFormula::correct);

/// The optimum of one follower in N correlated assets (docs/theory.md §7.1):
///   P*(t) = (eta alpha G^2 Sigma + theta w I)^{-1} (eta G v + theta w Pbar(t)),  w = G^rho,
/// Pbar the leader's Merton vector, one eta for all assets; evaluated in the eigenbasis of Sigma as N
/// one-asset closed forms (coordinate j: AbsoluteHerdSolution with sigma^2 -> lambda_j, v -> v~_j). Its
/// deviation_penalty is (theta/2) Int e^{rho r (T-t)} |P* - Pbar|^2 dt.
using AbsoluteHerdAssetsSolution = AssetsSolution<AbsoluteHerdSolution>;

/// Solves the follower's problem in the assets of `covariance` Sigma (N x N, per year) and `excess`
/// v = mu - r (per year); problem.market supplies r only (its mu and sigma are not read, its sigma must
/// still be valid). The eta root is the one of §3.2 with I(eta) summed over the coordinates. N = 1 gives
/// solve_absolute_herd's bits. Throws as solve_absolute_herd, and InputError for a bad Sigma.
[[nodiscard]] AbsoluteHerdAssetsSolution solve_absolute_herd(const HerdProblem& problem,
                                                             const Eigen::MatrixXd& covariance,
                                                             const Eigen::VectorXd& excess,
                                                             EtaFormula formula = EtaFormula::correct);

}  // namespace herdsim::theory
