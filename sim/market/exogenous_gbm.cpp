#include "sim/market/exogenous_gbm.hpp"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

namespace herdsim::sim {

ExogenousGbm::ExogenousGbm(const ScenarioSpec& spec)
    : rng_(spec.run.seed),
      coefficients_(spec.market, spec.run.dt(), spec.run.wealth_update),
      paths_(spec.run.paths),
      price0_(spec.market.price0) {
  settlement_.deposit_growth = coefficients_.deposit_growth;
  settlement_.excess = Eigen::MatrixXd::Zero(paths_, 1);
}

void ExogenousGbm::initialize(MarketState& state) {
  state.price = Eigen::MatrixXd::Constant(paths_, 1, price0_);
  state.simple_return = Eigen::MatrixXd::Zero(paths_, 1);
  state.shock = Eigen::MatrixXd::Zero(paths_, 1);
}

void ExogenousGbm::move(int k, std::span<const PopulationState> /*populations*/, MarketState& state) {
  tbb::parallel_for(tbb::blocked_range<int>(0, paths_, 256), [&](const tbb::blocked_range<int>& r) {
    // Scalar and keyed by path: any partition gives the same bits.
    for (int p = r.begin(); p != r.end(); ++p) {
      const double eps =
          rng_.normal(Stream::market, static_cast<std::uint64_t>(p), static_cast<std::uint64_t>(k), 0);
      const double ret = coefficients_.stock_return(eps);
      state.shock(p, 0) = eps;
      state.simple_return(p, 0) = ret;
      state.price(p, 0) *= 1.0 + ret;
      settlement_.excess(p, 0) = coefficients_.excess_return(eps);
    }
  });
}

}  // namespace herdsim::sim
