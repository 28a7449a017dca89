#include "sim/theory/asset_basis.hpp"

#include <fmt/format.h>
#include <Eigen/Eigenvalues>
#include <cmath>

#include "sim/error.hpp"

namespace herdsim::theory {

AssetBasis asset_basis(const Eigen::MatrixXd& covariance, const Eigen::VectorXd& excess) {
  const Eigen::Index n = excess.size();
  if (n < 1 || covariance.rows() != n || covariance.cols() != n) {
    throw InputError(
        fmt::format("asset basis: the covariance must be {0} x {0} (one row per excess return), "
                    "got {1} x {2}",
                    n, covariance.rows(), covariance.cols()));
  }
  if (!covariance.allFinite() || !excess.allFinite())
    throw InputError("asset basis: the covariance and the excess returns must be finite");
  if (!covariance.isApprox(covariance.transpose(), 1e-12))
    throw InputError("asset basis: the covariance must be symmetric");
  AssetBasis out;
  if (n == 1) {
    out.q = Eigen::MatrixXd::Identity(1, 1);
    if (!(covariance(0, 0) > 0.0))
      throw InputError(fmt::format("asset basis: the variance must be > 0, got {}", covariance(0, 0)));
    out.coordinates.push_back({excess[0], std::sqrt(covariance(0, 0))});
    return out;
  }
  const Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(covariance);
  if (eig.info() != Eigen::Success || !(eig.eigenvalues().minCoeff() > 0.0)) {
    throw InputError(
        fmt::format("asset basis: the covariance must be positive definite, its smallest "
                    "eigenvalue is {:.6g}",
                    eig.eigenvalues().minCoeff()));
  }
  out.q = eig.eigenvectors();
  const Eigen::VectorXd rotated = out.q.transpose() * excess;
  for (Eigen::Index j = 0; j < n; ++j)
    out.coordinates.push_back({rotated[j], std::sqrt(eig.eigenvalues()[j])});
  return out;
}

}  // namespace herdsim::theory
