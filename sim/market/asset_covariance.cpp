#include "sim/market/asset_covariance.hpp"

#include <fmt/format.h>
#include <Eigen/Cholesky>
#include <Eigen/Eigenvalues>
#include <algorithm>
#include <cmath>
#include <set>

#include "sim/error.hpp"
#include "sim/market/price_impact.hpp"
#include "sim/theory/market.hpp"

namespace herdsim::sim {

namespace {

/// Symmetry and unit diagonal are checked to this absolute tolerance (values written with a few digits).
constexpr double kCorrelationTolerance = 1e-12;

void check_correlation(const MarketSpec& m, std::vector<MarketProblem>& out) {
  const auto n = static_cast<std::size_t>(m.asset_count());
  if (m.assets.empty()) {
    if (!m.correlation.empty() && !(m.correlation.size() == 1 && m.correlation[0] == 1.0))
      out.push_back({"correlation", "a market with one asset has no correlation matrix other than [[1]]"});
    return;
  }
  if (m.correlation.size() != n * n) {
    out.push_back(
        {"correlation", fmt::format("must be {} x {} (one row and column per asset), got {} entries", n, n,
                                    m.correlation.size())});
    return;
  }
  const std::size_t before = out.size();
  auto at = [&](std::size_t i, std::size_t j) { return m.correlation[i * n + j]; };
  for (std::size_t i = 0; i < n; ++i) {
    for (std::size_t j = 0; j < n; ++j) {
      const std::string key = fmt::format("correlation[{}][{}]", i, j);
      const double c = at(i, j);
      if (!(c >= -1.0 && c <= 1.0)) {
        out.push_back({key, fmt::format("must lie in [-1, 1], got {}", c)});
      } else if (i == j && std::abs(c - 1.0) > kCorrelationTolerance) {
        out.push_back({key, fmt::format("the diagonal of a correlation matrix must be 1, got {}", c)});
      } else if (j > i && std::abs(c - at(j, i)) > kCorrelationTolerance) {
        out.push_back({key, fmt::format("the correlation matrix must be symmetric: {} here, {} at "
                                        "correlation[{}][{}]",
                                        c, at(j, i), j, i)});
      }
    }
  }
  if (out.size() != before) return;
  const Eigen::MatrixXd r = correlation_matrix(m);
  if (Eigen::LLT<Eigen::MatrixXd>(r).info() != Eigen::Success) {
    const double smallest =
        Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd>(r, Eigen::EigenvaluesOnly).eigenvalues().minCoeff();
    out.push_back({"correlation",
                   fmt::format("must be positive definite (its Cholesky factorisation fails): its smallest "
                               "eigenvalue is {:.6g}; no set of assets has these pairwise correlations",
                               smallest)});
  }
}

}  // namespace

std::vector<MarketProblem> market_problems(const MarketSpec& m, double horizon) {
  std::vector<MarketProblem> out;
  const int n = m.asset_count();
  std::set<std::string> names;
  for (int a = 0; a < n; ++a) {
    const AssetSpec asset = m.asset(a);
    // One asset keeps today's keys ("sigma"); several name the entry ("sigma[1]").
    auto key = [&](const std::string& k) { return m.assets.empty() ? k : fmt::format("{}[{}]", k, a); };
    for (const auto& problem : theory::market_problems({asset.mu, m.r, asset.sigma}, horizon))
      out.push_back({problem.key == "r" ? "r" : key(problem.key), problem.message});
    if (!(asset.price0 > 0.0) || !std::isfinite(asset.price0))
      out.push_back({key("price0"), fmt::format("must be > 0, got {}", asset.price0)});
    if (asset.name.empty() || asset.name.find_first_of(",\n") != std::string::npos)
      out.push_back(
          {key("names"), fmt::format("an asset name must be non-empty without commas or line breaks "
                                     "(the output lists names separated by commas), got \"{}\"",
                                     asset.name)});
    else if (!names.insert(asset.name).second)
      out.push_back({key("names"), fmt::format("asset name \"{}\" is used twice", asset.name)});
  }
  if (!m.assets.empty()) {
    const AssetSpec& first = m.assets.front();
    if (m.assets.size() < 2)
      out.push_back({"mu", "a list of assets needs at least two; one asset is mu = x"});
    if (first.mu != m.mu || first.sigma != m.sigma || first.price0 != m.price0)
      out.push_back({"assets", "assets[0] must repeat mu, sigma and price0 (a spec built in code)"});
  }
  // theory::market_problems reports r once per asset.
  std::vector<MarketProblem> unique;
  for (auto& p : out) {
    const bool seen = std::any_of(unique.begin(), unique.end(), [&](const MarketProblem& q) {
      return q.key == p.key && q.message == p.message;
    });
    if (!seen) unique.push_back(std::move(p));
  }
  check_correlation(m, unique);
  for (auto& p : impact_problems(m)) unique.push_back(std::move(p));
  return unique;
}

Eigen::MatrixXd correlation_matrix(const MarketSpec& m) {
  const Eigen::Index n = m.asset_count();
  if (m.assets.empty()) return Eigen::MatrixXd::Identity(1, 1);
  Eigen::MatrixXd r(n, n);
  for (Eigen::Index i = 0; i < n; ++i)
    for (Eigen::Index j = 0; j < n; ++j) r(i, j) = m.correlation[static_cast<std::size_t>(i * n + j)];
  return r;
}

Eigen::MatrixXd correlation_factor(const MarketSpec& m) {
  const Eigen::LLT<Eigen::MatrixXd> llt(correlation_matrix(m));
  if (llt.info() != Eigen::Success)
    throw ScenarioError("market.correlation must be positive definite (its Cholesky factorisation fails)");
  return llt.matrixL();
}

Eigen::MatrixXd asset_covariance(const MarketSpec& m) {
  const Eigen::Index n = m.asset_count();
  Eigen::VectorXd sigma(n);
  for (Eigen::Index a = 0; a < n; ++a) sigma[a] = m.asset(static_cast<int>(a)).sigma;
  return sigma.asDiagonal() * correlation_matrix(m) * sigma.asDiagonal();
}

Eigen::VectorXd asset_excess_returns(const MarketSpec& m) {
  const Eigen::Index n = m.asset_count();
  Eigen::VectorXd v(n);
  for (Eigen::Index a = 0; a < n; ++a) v[a] = m.asset(static_cast<int>(a)).mu - m.r;
  return v;
}

std::vector<double> one_factor_correlation(const std::vector<double>& loadings) {
  const std::size_t n = loadings.size();
  std::vector<double> out(n * n);
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t j = 0; j < n; ++j) out[i * n + j] = i == j ? 1.0 : loadings[i] * loadings[j];
  return out;
}

}  // namespace herdsim::sim
