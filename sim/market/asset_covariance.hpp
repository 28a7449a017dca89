#pragma once
// The assets of a market with several (docs/theory.md §7.1): the checks of their description (the market's
// own schema, run by the scenario loader and again by make_market for specs built in code) and the matrices
// the market and the agents derive from it: the correlation's Cholesky factor L (L L' = R, the shocks'
// mixing), the covariance Sigma = diag(sigma) R diag(sigma) and the excess returns v = mu - r.
#include <Eigen/Core>
#include <string>
#include <vector>

#include "sim/scenario_spec.hpp"

namespace herdsim::sim {

/// A problem of a market description: the key under [market] ("sigma[1]", "correlation[0][2]") and why.
struct MarketProblem {
  std::string key;
  std::string message;
};

/// Every problem of m over horizon years: each asset's parameters within the model's limits
/// (theory::market_problems), distinct non-empty names, assets[0] equal to (mu, sigma, price0), and the
/// correlation: N x N, entries in [-1, 1], unit diagonal, symmetric, positive definite (when not, the
/// smallest eigenvalue). Empty when m is valid.
[[nodiscard]] std::vector<MarketProblem> market_problems(const MarketSpec& m, double horizon);

/// The correlation matrix R (N x N; 1 x 1 with one asset).
[[nodiscard]] Eigen::MatrixXd correlation_matrix(const MarketSpec& m);

/// The lower Cholesky factor L of R (L L' = R, L(0, 0) = 1). Throws ScenarioError when R is not positive
/// definite (market_problems says why).
[[nodiscard]] Eigen::MatrixXd correlation_factor(const MarketSpec& m);

/// Sigma = diag(sigma) R diag(sigma), per year.
[[nodiscard]] Eigen::MatrixXd asset_covariance(const MarketSpec& m);

/// v = mu - r, per year, one entry per asset.
[[nodiscard]] Eigen::VectorXd asset_excess_returns(const MarketSpec& m);

/// The correlation of a one-factor model with loadings b: R_ij = b_i b_j off the diagonal, 1 on it,
/// row-major (positive definite when every |b_i| < 1).
[[nodiscard]] std::vector<double> one_factor_correlation(const std::vector<double>& loadings);

}  // namespace herdsim::sim
