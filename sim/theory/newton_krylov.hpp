#pragma once
// The games' Newton–Krylov solver (mutual_game, relative_mutual): the equilibrium conditions
// F(ln eta) = 0 are N equations whose Jacobian is only available as a product, so each Newton step
// solves J s = -F by restarted GMRES and is damped by backtracking.
#include <fmt/format.h>

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>

#include "sim/error.hpp"

namespace herdsim::theory {

/// Restarted GMRES (modified Gram-Schmidt, Givens rotations) for A x = b with A given as the
/// matrix-free product apply(x). Starts from x = 0; stops when ||b - A x|| <= rtol ||b|| or after
/// max_iter products; restart is the Krylov basis size.
template <class Op>
Eigen::VectorXd gmres(const Op& apply, const Eigen::VectorXd& b, double rtol, int restart, int max_iter) {
  const Eigen::Index n = b.size();
  Eigen::VectorXd x = Eigen::VectorXd::Zero(n);
  const double target = rtol * b.norm();
  if (target == 0.0) return x;
  Eigen::MatrixXd basis(n, restart + 1);
  Eigen::MatrixXd hess(restart + 1, restart);
  Eigen::VectorXd cs(restart), sn(restart), g(restart + 1);
  int products = 0;
  while (products < max_iter) {
    const Eigen::VectorXd r = b - apply(x);
    const double beta = r.norm();
    if (beta <= target) break;
    basis.col(0) = r / beta;
    g.setZero();
    g(0) = beta;
    hess.setZero();
    int k = 0;
    while (k < restart && products < max_iter) {
      Eigen::VectorXd v = apply(basis.col(k));
      ++products;
      for (int j = 0; j <= k; ++j) {
        hess(j, k) = basis.col(j).dot(v);
        v -= hess(j, k) * basis.col(j);
      }
      const double next = v.norm();
      hess(k + 1, k) = next;
      if (next > 0.0) basis.col(k + 1) = v / next;
      for (int j = 0; j < k; ++j) {  // earlier rotations
        const double top = cs(j) * hess(j, k) + sn(j) * hess(j + 1, k);
        hess(j + 1, k) = -sn(j) * hess(j, k) + cs(j) * hess(j + 1, k);
        hess(j, k) = top;
      }
      const double d = std::hypot(hess(k, k), hess(k + 1, k));
      cs(k) = hess(k, k) / d;
      sn(k) = hess(k + 1, k) / d;
      hess(k, k) = d;
      hess(k + 1, k) = 0.0;
      g(k + 1) = -sn(k) * g(k);
      g(k) = cs(k) * g(k);
      ++k;
      if (std::abs(g(k)) <= target || next == 0.0) break;
    }
    const Eigen::VectorXd y = hess.topLeftCorner(k, k).triangularView<Eigen::Upper>().solve(g.head(k));
    x += basis.leftCols(k) * y;
    if (std::abs(g(k)) <= target) break;
  }
  return x;
}

/// max |f_i| (0 for an empty f): the residual the solvers report.
[[nodiscard]] inline double max_abs(const Eigen::VectorXd& f) {
  return f.size() == 0 ? 0.0 : f.cwiseAbs().maxCoeff();
}

/// What a Newton–Krylov solve may spend and has spent.
struct NewtonKrylovBudget {
  int sweeps = 0;          ///< iterations spent before Newton (best-response sweeps)
  int newton_steps = 0;    ///< Newton steps taken; updated
  int max_iterations = 0;  ///< sweeps + Newton steps allowed
  double tolerance = 0.0;  ///< the residual tolerance (for the messages)
  int restart = 40;        ///< GMRES basis size
};

/// Inexact Newton–GMRES with backtracking on ||F||_2, from L and f = F(L) until converged(f).
/// evaluate(x) returns F at a trial point and keeps there what jacobian_times(v) (J v) needs;
/// accepted() is called once a trial point becomes the new L. Entries i with frozen(i) do not move.
/// Throws SolverError, its message starting with `what`, when the budget runs out, the line search
/// fails, or the steps stall on the rounding floor above the tolerance.
template <class Evaluate, class JacobianTimes, class Converged, class Frozen, class Accepted>
void solve_newton_krylov(const char* what, Eigen::VectorXd& L, Eigen::VectorXd& f, NewtonKrylovBudget& budget,
                         Evaluate&& evaluate, JacobianTimes&& jacobian_times, Converged&& converged,
                         Frozen&& frozen, Accepted&& accepted) {
  int stalled = 0;
  while (!converged(f)) {
    if (budget.sweeps + budget.newton_steps >= budget.max_iterations) {
      throw SolverError(fmt::format("{}: no convergence after {} sweeps and {} Newton steps; residual {:.3e}",
                                    what, budget.sweeps, budget.newton_steps, max_abs(f)));
    }
    // Inexact Newton: the linear tolerance tightens with ||F|| (superlinear convergence).
    const double norm = f.norm();
    const double forcing = std::clamp(norm, 1e-10, 1e-3);
    Eigen::VectorXd step = gmres(jacobian_times, -f, forcing, budget.restart, 400);
    for (Eigen::Index i = 0; i < step.size(); ++i) {
      if (frozen(static_cast<int>(i))) step(i) = 0.0;
    }
    // Backtracking on ||F||_2 guards against overshooting when an agent is pulled far from Merton.
    double lambda = 1.0;
    Eigen::VectorXd trial_f;
    bool accepted_step = false;
    for (int tries = 0; tries < 12; ++tries, lambda *= 0.5) {
      trial_f = evaluate(L + lambda * step);
      if (trial_f.norm() <= (1.0 - 1e-4 * lambda) * norm) {
        accepted_step = true;
        break;
      }
    }
    ++budget.newton_steps;
    if (!accepted_step) {
      throw SolverError(fmt::format("{}: Newton line search failed after {} steps; residual {:.3e}", what,
                                    budget.newton_steps, max_abs(f)));
    }
    // Close to the root Newton converges quadratically; steps that no longer halve the residual mean
    // it sits on the rounding floor of an ill-conditioned game, which the tolerance cannot go below.
    const double before = max_abs(f);
    L += lambda * step;
    f = std::move(trial_f);
    accepted();
    stalled = (before < 1e-6 && max_abs(f) > 0.5 * before) ? stalled + 1 : 0;
    if (stalled >= 3 && !converged(f)) {
      throw SolverError(fmt::format("{}: Newton stalled after {} steps at residual {:.3e} (tolerance {:.1e})",
                                    what, budget.newton_steps, max_abs(f), budget.tolerance));
    }
  }
}

}  // namespace herdsim::theory
