#pragma once
// The theory library's one Krylov solver, for the games' N x N Newton systems, whose Jacobian is only
// available as a product.
#include <Eigen/Dense>
#include <cmath>

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

}  // namespace herdsim::theory
