#pragma once
// The eigenbasis that decouples the problems of N correlated assets (docs/theory.md §7.1):
// Sigma = Q diag(lambda) Q', P~ = Q' P, v~ = Q' v; each column of Q is one Coordinate.
#include <Eigen/Core>
#include <utility>
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

/// A follower's optimum in N assets: one one-asset Solution per coordinate of the basis, all at the one eta
/// of the agent (AbsoluteHerdSolution, RelativeHerdSolution).
template <class Solution>
class AssetsSolution {
 public:
  AssetsSolution(AssetBasis basis, std::vector<Solution> coordinates)
      : basis_(std::move(basis)), coordinates_(std::move(coordinates)) {}

  [[nodiscard]] double ln_eta() const { return coordinates_.front().ln_eta(); }
  [[nodiscard]] double ln_eta0() const { return coordinates_.front().ln_eta0(); }
  /// Root-function evaluations of the eta search.
  [[nodiscard]] int evaluations() const { return coordinates_.front().evaluations(); }
  [[nodiscard]] const AssetBasis& basis() const { return basis_; }
  /// Coordinate j's one-asset optimum (amounts P~_j in the eigenbasis).
  [[nodiscard]] const Solution& coordinate(int j) const { return coordinates_[static_cast<std::size_t>(j)]; }

  /// Optimal AMOUNTS in the assets at time t (currency units), one per asset: Q P~(t).
  [[nodiscard]] Eigen::VectorXd amounts(double t) const {
    Eigen::VectorXd rotated(basis_.size());
    for (int j = 0; j < basis_.size(); ++j) rotated[j] = coordinate(j).amount(t);
    return basis_.to_assets(rotated);
  }
  /// E[U(X_T)] = -eta / alpha at the optimum.
  [[nodiscard]] double expected_utility() const { return coordinates_.front().expected_utility(); }
  /// The herding penalty: the coordinates' sum (Q is orthogonal, so the norms of the gaps are kept).
  [[nodiscard]] double deviation_penalty() const {
    double sum = 0.0;
    for (const Solution& c : coordinates_) sum += c.deviation_penalty();
    return sum;
  }
  /// J = expected utility - deviation penalty.
  [[nodiscard]] double objective() const { return expected_utility() - deviation_penalty(); }

 private:
  AssetBasis basis_;
  std::vector<Solution> coordinates_;
};

/// The eigenbasis of `covariance` (N x N, per year, symmetric positive definite) with v~ = Q' `excess`
/// (per year). One asset gives Q = [1] and the coordinate {v, sqrt(Sigma_00)} (sqrt(sigma^2) == sigma in
/// binary floating point), so that N = 1 reproduces the one-asset solvers bit for bit. Throws InputError
/// when the sizes differ, an entry is not finite or Sigma is not positive definite.
[[nodiscard]] AssetBasis asset_basis(const Eigen::MatrixXd& covariance, const Eigen::VectorXd& excess);

/// The basis of a one-asset market: Q = [1] and the coordinate {mu - r, sigma} (no checks).
[[nodiscard]] inline AssetBasis one_asset_basis(const Market& market) {
  return {Eigen::MatrixXd::Identity(1, 1), {Coordinate::of(market)}};
}

}  // namespace herdsim::theory
