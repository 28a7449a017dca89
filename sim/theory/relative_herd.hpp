#pragma once
// Relative herding with one leader (the paper's P1): the follower maximises
//   J = -H[P]/alpha - (theta/2) Int_0^T (P' - Pbar')^2 dt,
// whose Euler-Lagrange equation in the deviation u = P - Pbar is the linear BVP
//   u'' = q(t) u + s(t),  q = eta alpha sigma^2 e^{2r(T-t)} / theta,
//                         s = (eta v e^{r(T-t)} / theta) (alpha / alpha_L - 1),
// with eta = H[P*] found self-consistently by a bracketed root search on ln eta (continuous time only).
#include <Eigen/Core>
#include <array>
#include <cmath>
#include <span>
#include <utility>
#include <vector>

#include "sim/enum_names.hpp"
#include "sim/theory/asset_basis.hpp"
#include "sim/theory/herd_problem.hpp"

namespace herdsim::theory {

/// End conditions of the BVP: `pinned` fixes P(0) = P_alpha(0) and P(T) = P_alpha(T) (the released code's
/// convention, golden bc "merton"); `natural` leaves the ends free, i.e. P'(0) = Pbar'(0), P'(T) = Pbar'(T).
enum class BoundaryCondition { pinned, natural };
constexpr std::array<NamedValue<BoundaryCondition>, 2> enum_names(BoundaryCondition /*unused*/) {
  return {{{BoundaryCondition::pinned, "pinned"}, {BoundaryCondition::natural, "natural"}}};
}

/// Numerical settings of the relative-herding solver (defaults are what the golden data used).
struct RelativeHerdOptions {
  BoundaryCondition bc = BoundaryCondition::pinned;  ///< end conditions
  double max_h_sqrt_q = 0.02;  ///< grid step h (years) times sqrt(q_max) (1/years), dimensionless upper bound
  int min_steps = 20000;       ///< least number of grid steps on [0, T]
  /// Restart of a plan (policy replan): the start is free, P'(0) = Pbar'(0), whatever `bc` says; the end at T
  /// keeps `bc`. A pinned start would fix the first decision to the own Merton amount at every restart.
  bool free_start = false;
};

class RelativeHerdSolution;
/// The optimum of one follower in N assets: one RelativeHerdSolution per coordinate of the eigenbasis; its
/// deviation_penalty is (theta/2) Int |P*' - Pbar'|^2 dt.
using RelativeHerdAssetsSolution = AssetsSolution<RelativeHerdSolution>;

/// Solves the follower's problem; throws InputError for invalid parameters or discrete time and SolverError
/// if the root search on ln eta does not converge.
[[nodiscard]] RelativeHerdSolution solve_relative_herd(const HerdProblem& problem,
                                                       RelativeHerdOptions options = {});

/// Solves the follower's problem in the assets of `covariance` Sigma (N x N, per year) and `excess`
/// v = mu - r (per year), the leader's path its Merton vector (docs/theory.md §7.1): N one-asset BVPs in the
/// eigenbasis of Sigma (sigma^2 -> lambda_j, v -> v~_j, any sign), one eta. problem.market supplies r only
/// (its sigma must still be valid). N = 1 gives the one-asset solver's bits. Throws as the one-asset
/// solver, and InputError for a bad Sigma.
[[nodiscard]] RelativeHerdAssetsSolution solve_relative_herd(const HerdProblem& problem,
                                                             const Eigen::MatrixXd& covariance,
                                                             const Eigen::VectorXd& excess,
                                                             RelativeHerdOptions options = {});

/// The optimum of one follower on a uniform grid over [0, T] (exact node values, cubic Hermite in between).
/// When theta = 0 or alpha = alpha_L the optimum is the own Merton path, evaluated in closed form (no grid).
class RelativeHerdSolution {
 public:
  [[nodiscard]] const HerdProblem& problem() const { return problem_; }
  [[nodiscard]] const RelativeHerdOptions& options() const { return options_; }
  /// ln eta, eta = H[P*] (dimensionless).
  [[nodiscard]] double ln_eta() const { return ln_eta_; }
  [[nodiscard]] double eta() const { return std::exp(ln_eta_); }
  /// ln H at the follower's own Merton path (the lower end of the eta bracket).
  [[nodiscard]] double ln_eta0() const { return ln_eta0_; }
  /// ln H[P*] by Simpson on the grid (equals ln_eta once the root search has converged).
  [[nodiscard]] double ln_h_at_opt() const { return ln_h_; }
  /// Bessel argument scale zeta = sigma e^{rT}/r sqrt(eta alpha/theta), dimensionless (inf for theta = 0).
  [[nodiscard]] double zeta() const { return zeta_; }
  /// Stiffness S = sqrt(q_max) T (q_max = q(0) for r >= 0) at the solution's eta, dimensionless (inf for
  /// theta = 0); natural ends are shot when S < 8.
  [[nodiscard]] double stiffness() const { return stiffness_; }
  /// Number of grid steps N (0 for the closed-form cases).
  [[nodiscard]] int steps() const { return amount_.size() == 0 ? 0 : static_cast<int>(amount_.size() - 1); }
  /// BVP solves (root-function evaluations) the root search used.
  [[nodiscard]] int evaluations() const { return evaluations_; }
  /// "numerov", "shooting", or "merton" for the closed-form cases.
  [[nodiscard]] const char* method() const { return method_; }

  /// Optimal AMOUNT in the stock at time t in [0, T] (years), currency units.
  [[nodiscard]] double amount(double t) const;
  /// dP*/dt at time t in [0, T], currency units per year.
  [[nodiscard]] double slope(double t) const;
  /// The follower's own Merton amount at t, currency units.
  [[nodiscard]] double own_merton(double t) const;
  /// The leader's Merton amount at t (the path whose rate is imitated), currency units.
  [[nodiscard]] double leader_merton(double t) const;

  /// E[U(X_T)] = -eta / alpha at the optimum.
  [[nodiscard]] double expected_utility() const { return -eta() / problem_.alpha; }
  /// (theta/2) * Int_0^T (P*' - Pbar')^2 dt (Simpson on the grid).
  [[nodiscard]] double deviation_penalty() const { return penalty_; }
  /// J = expected utility - deviation penalty.
  [[nodiscard]] double objective() const { return expected_utility() - deviation_penalty(); }

  /// Grid nodes t_k = k T / N, years, computed on demand (empty for the closed-form cases).
  [[nodiscard]] Eigen::VectorXd grid_time() const;
  /// P*(t_k), currency units.
  [[nodiscard]] const Eigen::VectorXd& grid_amount() const { return amount_; }
  /// dP*/dt at t_k, currency units per year.
  [[nodiscard]] const Eigen::VectorXd& grid_slope() const { return slope_; }

 private:
  friend RelativeHerdSolution solve_relative_herd(const HerdProblem& problem, RelativeHerdOptions options);
  friend RelativeHerdAssetsSolution solve_relative_herd(const HerdProblem& problem,
                                                        const Eigen::MatrixXd& covariance,
                                                        const Eigen::VectorXd& excess,
                                                        RelativeHerdOptions options);
  RelativeHerdSolution(const HerdProblem& problem, const Coordinate& coordinate, RelativeHerdOptions options);
  /// The optimum in each coordinate (one eta); one coordinate is the one-asset problem.
  static std::vector<RelativeHerdSolution> solve_coordinates(const HerdProblem& problem,
                                                             std::span<const Coordinate> coordinates,
                                                             RelativeHerdOptions options);
  /// Grid interval containing t and the fraction of it, t clamped to [0, T].
  [[nodiscard]] std::pair<Eigen::Index, double> locate(double t) const;

  HerdProblem problem_;
  Coordinate coordinate_;  // the market's {v, sigma}, or one eigen-coordinate of N assets
  RelativeHerdOptions options_;
  Schedule schedule_;
  double ln_eta_ = 0.0;
  double ln_eta0_ = 0.0;
  double ln_h_ = 0.0;
  double zeta_ = 0.0;
  double stiffness_ = 0.0;
  double penalty_ = 0.0;
  int evaluations_ = 0;
  const char* method_ = "merton";
  Eigen::VectorXd amount_, slope_;
};

}  // namespace herdsim::theory
