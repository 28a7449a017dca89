#pragma once
// The eigenbasis that decouples the problems of N correlated assets (docs/theory.md §7.1):
// Sigma = Q diag(lambda) Q', P~ = Q' P, v~ = Q' v; each column of Q is one Coordinate.
#include <Eigen/Core>
#include <vector>

#include "sim/theory/market.hpp"

namespace herdsim::theory {

/// Q and the coordinates (lambda_j, v~_j) of a covariance and excess-return vector.
struct AssetBasis {
  Eigen::MatrixXd q;                    ///< N x N orthogonal; column j the eigenvector of coordinate j
  std::vector<Coordinate> coordinates;  ///< {v~_j, sqrt(lambda_j)}

  [[nodiscard]] int size() const { return static_cast<int>(coordinates.size()); }
  /// P = Q P~: amounts per asset from amounts per coordinate, currency units.
  [[nodiscard]] Eigen::VectorXd to_assets(const Eigen::VectorXd& rotated) const { return q * rotated; }
  /// P~ = Q' P.
  [[nodiscard]] Eigen::VectorXd to_coordinates(const Eigen::VectorXd& assets) const {
    return q.transpose() * assets;
  }
};

/// The eigenbasis of `covariance` (N x N, per year, symmetric positive definite) with v~ = Q' `excess`
/// (per year). One asset gives Q = [1] and the coordinate {v, sqrt(Sigma_00)} (sqrt(sigma^2) == sigma in
/// binary floating point), so that N = 1 reproduces the one-asset solvers bit for bit. Throws InputError
/// when the sizes differ, an entry is not finite or Sigma is not positive definite.
[[nodiscard]] AssetBasis asset_basis(const Eigen::MatrixXd& covariance, const Eigen::VectorXd& excess);

}  // namespace herdsim::theory
