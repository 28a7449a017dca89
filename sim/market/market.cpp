#include "sim/market/market.hpp"

#include "sim/error.hpp"
#include "sim/market/exogenous_gbm.hpp"

namespace herdsim::sim {

std::unique_ptr<Market> make_market(const ScenarioSpec& spec) {
  switch (spec.market.model) {
    case MarketModel::exogenous_gbm:
      return std::make_unique<ExogenousGbm>(spec);
  }
  throw Error("make_market: unknown market model");  // an enum value outside the list
}

}  // namespace herdsim::sim
