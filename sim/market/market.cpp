#include "sim/market/market.hpp"

#include "sim/error.hpp"
#include "sim/market/exogenous_gbm.hpp"
#include "sim/market/price_impact.hpp"

namespace herdsim::sim {

std::unique_ptr<Market> make_market(const ScenarioSpec& spec) {
  switch (spec.market.model) {
    case MarketModel::exogenous_gbm:
      // Impact absent or all zero: the exogenous market itself, bit for bit.
      if (spec.market.impact.active()) return std::make_unique<PriceImpact>(spec);
      return std::make_unique<ExogenousGbm>(spec);
  }
  throw Error("make_market: unknown market model");  // an enum value outside the list
}

}  // namespace herdsim::sim
