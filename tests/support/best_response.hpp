#pragma once
// A brute-force best response in a discretised game of N correlated assets (docs/theory.md §7.1), written in
// the assets themselves (no eigenbasis, no eta root), for Nash checks of the mutual games: agent i's
// objective at fixed paths of the others is maximised by Newton's method on the whole (nodes x N) path.
#include <Eigen/Cholesky>
#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

namespace herdsim::test {

/// One agent's discretised problem on nodes t_k = k dt (k = 0..nodes-1), AMOUNTS x_k in R^N:
///   J(x) = -H(x) / alpha - (1/2) Sum_j theta_j (x - P_j)' (D kron I_N) (x - P_j),
///   ln H(x) = -alpha x0 G_T - alpha Sum_k dt G_k v.x_k + (alpha^2 / 2) Sum_k dt G_k^2 x_k' Sigma x_k,
/// D (nodes x nodes) the penalty's quadratic form: diag(dt G_k^rho) for absolute herding, the stiffness
/// Sum_e (Delta_e x)^2 / dt for relative herding.
struct DiscreteBestResponse {
  Eigen::MatrixXd sigma;                                   ///< N x N covariance, per year
  Eigen::VectorXd v;                                       ///< excess returns, per year
  Eigen::VectorXd growth;                                  ///< G_k at the nodes
  double terminal_growth = 1;                              ///< G_T, the deposit growth over the whole horizon
  double dt = 0.0;                                         ///< years per node
  double alpha = 0.0;                                      ///< CARA risk aversion, per currency unit
  double x0 = 0.0;                                         ///< initial wealth, currency units
  Eigen::MatrixXd penalty;                                 ///< D, nodes x nodes
  std::vector<std::pair<double, Eigen::MatrixXd>> others;  ///< (theta_j, P_j as nodes x N)
  std::vector<bool> free;  ///< per node: optimised (false: kept at the start's value)

  /// The maximiser from `start` (nodes x N): Newton steps on the free nodes until they stop moving.
  [[nodiscard]] Eigen::MatrixXd solve(Eigen::MatrixXd x) const {
    const Eigen::Index nodes = growth.size();
    const Eigen::Index n = v.size();
    std::vector<Eigen::Index> index;  // free unknowns, layout k n + a
    for (Eigen::Index k = 0; k < nodes; ++k) {
      for (Eigen::Index a = 0; a < n; ++a) {
        if (free[static_cast<std::size_t>(k)]) index.push_back(k * n + a);
      }
    }
    const auto size = static_cast<Eigen::Index>(index.size());
    double theta_sum = 0.0;
    Eigen::MatrixXd weighted = Eigen::MatrixXd::Zero(nodes, n);  // Sum_j theta_j P_j
    for (const auto& [theta, path] : others) {
      theta_sum += theta;
      weighted += theta * path;
    }
    for (int iter = 0; iter < 100; ++iter) {
      double ln_h = -alpha * x0 * terminal_growth;
      Eigen::VectorXd d_ln_h(nodes * n);
      for (Eigen::Index k = 0; k < nodes; ++k) {
        const Eigen::VectorXd xk = x.row(k).transpose();
        const double g = growth[k];
        ln_h += -alpha * dt * g * v.dot(xk) + 0.5 * alpha * alpha * dt * g * g * xk.dot(sigma * xk);
        d_ln_h.segment(k * n, n) = -alpha * dt * g * v + alpha * alpha * dt * g * g * (sigma * xk);
      }
      const double h = std::exp(ln_h);
      const Eigen::MatrixXd pull = penalty * (theta_sum * x - weighted);  // dPenalty/dx, nodes x N
      Eigen::VectorXd gradient(size);
      Eigen::MatrixXd hessian(size, size);  // of -J, positive definite
      for (Eigen::Index r = 0; r < size; ++r) {
        const Eigen::Index kr = index[static_cast<std::size_t>(r)] / n,
                           ar = index[static_cast<std::size_t>(r)] % n;
        gradient[r] = (h / alpha) * d_ln_h[index[static_cast<std::size_t>(r)]] + pull(kr, ar);
        for (Eigen::Index c = 0; c < size; ++c) {
          const Eigen::Index kc = index[static_cast<std::size_t>(c)] / n,
                             ac = index[static_cast<std::size_t>(c)] % n;
          double value = (h / alpha) * d_ln_h[index[static_cast<std::size_t>(r)]] *
                         d_ln_h[index[static_cast<std::size_t>(c)]];
          if (kr == kc) value += h * alpha * dt * growth[kr] * growth[kr] * sigma(ar, ac);
          if (ar == ac) value += theta_sum * penalty(kr, kc);
          hessian(r, c) = value;
        }
      }
      const Eigen::VectorXd step = hessian.ldlt().solve(-gradient);
      double moved = 0.0, scale = 0.0;
      for (Eigen::Index r = 0; r < size; ++r) {
        const Eigen::Index at = index[static_cast<std::size_t>(r)];
        x(at / n, at % n) += step[r];
        moved = std::max(moved, std::abs(step[r]));
        scale = std::max(scale, std::abs(x(at / n, at % n)));
      }
      if (moved <= 1e-15 * scale) break;
    }
    return x;
  }
};

}  // namespace herdsim::test
