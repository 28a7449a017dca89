#include "sim/market/exogenous_gbm.hpp"

#include <fmt/format.h>
#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include "sim/error.hpp"
#include "sim/market/asset_covariance.hpp"

namespace herdsim::sim {

namespace {

/// The market's own checks, for specs that did not come through the scenario loader.
const MarketSpec& checked(const ScenarioSpec& spec) {
  const auto problems = market_problems(spec.market, spec.run.horizon);
  if (!problems.empty())
    throw ScenarioError(fmt::format("market.{}: {}", problems.front().key, problems.front().message));
  return spec.market;
}

}  // namespace

ExogenousGbm::ExogenousGbm(const ScenarioSpec& spec)
    : rng_(spec.run.seed),
      factor_(correlation_factor(checked(spec))),
      paths_(spec.run.paths),
      first_path_(static_cast<std::uint64_t>(spec.run.first_path)) {
  const MarketSpec& m = spec.market;
  for (int a = 0; a < m.asset_count(); ++a) {
    const AssetSpec asset = m.asset(a);
    coefficients_.emplace_back(asset.mu, m.r, asset.sigma, spec.run.dt(), spec.run.wealth_update);
    price0_.push_back(asset.price0);
  }
  settlement_.deposit_growth = coefficients_.front().deposit_growth;
  settlement_.excess = Eigen::MatrixXd::Zero(paths_, assets());
}

void ExogenousGbm::initialize(MarketState& state) {
  const int n = assets();
  state.price.resize(paths_, n);
  for (int a = 0; a < n; ++a) state.price.col(a).setConstant(price0_[static_cast<std::size_t>(a)]);
  state.simple_return = Eigen::MatrixXd::Zero(paths_, n);
  state.shock = Eigen::MatrixXd::Zero(paths_, n);
}

void ExogenousGbm::move(int k, std::span<const PopulationState> /*populations*/, MarketState& state) {
  const auto step = static_cast<std::uint64_t>(k);
  if (assets() == 1) {
    const StepCoefficients& c = coefficients_.front();
    tbb::parallel_for(tbb::blocked_range<int>(0, paths_, 256), [&](const tbb::blocked_range<int>& r) {
      // Scalar and keyed by path: any partition gives the same bits.
      for (int p = r.begin(); p != r.end(); ++p) {
        const double eps = rng_.normal(Stream::market, first_path_ + static_cast<std::uint64_t>(p), step, 0);
        const double ret = c.stock_return(eps);
        state.shock(p, 0) = eps;
        state.simple_return(p, 0) = ret;
        state.price(p, 0) *= 1.0 + ret;
        settlement_.excess(p, 0) = c.excess_return(eps);
      }
    });
    return;
  }
  const int n = assets();
  tbb::parallel_for(tbb::blocked_range<int>(0, paths_, 64), [&](const tbb::blocked_range<int>& r) {
    Eigen::VectorXd z(n);
    for (int p = r.begin(); p != r.end(); ++p) {
      for (int b = 0; b < n; ++b)
        z[b] = rng_.normal(Stream::market, first_path_ + static_cast<std::uint64_t>(p), step,
                           static_cast<std::uint64_t>(b));
      for (int a = 0; a < n; ++a) {
        // eps_a = sum_{b <= a} L_ab z_b, summed in index order (a fixed order: the same bits everywhere).
        double eps = 0.0;
        for (int b = 0; b <= a; ++b) eps += factor_(a, b) * z[b];
        const StepCoefficients& c = coefficients_[static_cast<std::size_t>(a)];
        const double ret = c.stock_return(eps);
        state.shock(p, a) = eps;
        state.simple_return(p, a) = ret;
        state.price(p, a) *= 1.0 + ret;
        settlement_.excess(p, a) = c.excess_return(eps);
      }
    }
  });
}

}  // namespace herdsim::sim
