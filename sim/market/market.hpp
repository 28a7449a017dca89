#pragma once
// The market seam: one interface owns the market phase of the step loop (moving prices) and the per-step
// coefficients that settlement reads, so that the runtime never knows which market it drives. Two
// implementations: the exogenous GBM of docs/theory.md §1, with one or several correlated assets (§7.1;
// ExogenousGbm), and prices moved by the agents' net flow on top of that GBM as their fundamental (price
// impact, §7.2; PriceImpact, chosen when [market.impact] is active).
//
// The asset axis is the outer one everywhere: asset a's values form one block laid out as a single
// asset's, so one asset is exactly the single-asset layout. MarketState and Settlement::excess are
// paths x assets (column a = asset a on every path); PopulationState::amount is count x (assets x paths)
// (columns [a paths, (a + 1) paths) = asset a, count x paths like wealth).
#include <Eigen/Core>
#include <memory>
#include <span>

#include "sim/agent_exchange.hpp"
#include "sim/run_state.hpp"
#include "sim/scenario_spec.hpp"

namespace herdsim::sim {

/// What settlement needs from the market phase of one step: X <- X G + sum_a P_a e_a.
struct Settlement {
  double deposit_growth = 1.0;  ///< G: what one currency unit in the deposit grows to over the step
  /// e: paths x assets, what one currency unit in asset a earns over the deposit on path p in the step.
  Eigen::MatrixXd excess;
  /// Post-impact execution only (sim/market/price_impact.hpp), else empty: paths x assets, what one
  /// currency unit of the amount decided at the previous step (previous_amount) gains from the step's
  /// impact on the holding it left, grown to the step's end.
  Eigen::MatrixXd holding_gain;
};

/// Settles agents [begin, end) of `pop` on path p: X <- X G + P_0 e_0 + P_1 e_1 + ..., left to right, then
/// + Q_0 h_0 + Q_1 h_1 + ... (Q = previous_amount, h = holding_gain) under post-impact execution. One
/// asset is two products and a sum (settle_wealth), the arithmetic the fused kernel repeats bit for bit;
/// inlined into the settle phase's parallel loop.
inline void settle_agents(const Settlement& s, int p, int begin, int end, PopulationState& pop) {
  const Eigen::Index paths = s.excess.rows();
  const double growth = s.deposit_growth;
  const int len = end - begin;
  auto x = pop.wealth.col(p).segment(begin, len).array();
  if (s.holding_gain.cols() == 1 && s.excess.cols() == 1) {
    // One asset under post-impact execution: one pass, the same sums as the loops below.
    x = x * growth + pop.amount.col(p).segment(begin, len).array() * s.excess(p, 0) +
        pop.previous_amount.col(p).segment(begin, len).array() * s.holding_gain(p, 0);
    return;
  }
  x = x * growth + pop.amount.col(p).segment(begin, len).array() * s.excess(p, 0);
  for (Eigen::Index a = 1; a < s.excess.cols(); ++a)
    x += pop.amount.col(a * paths + p).segment(begin, len).array() * s.excess(p, a);
  for (Eigen::Index a = 0; a < s.holding_gain.cols(); ++a)
    x += pop.previous_amount.col(a * paths + p).segment(begin, len).array() * s.holding_gain(p, a);
}

/// A market: its state on every path (RunState::market, which only the market writes) and the market phase.
class Market {
 public:
  Market() = default;
  Market(const Market&) = delete;
  Market& operator=(const Market&) = delete;
  virtual ~Market() = default;

  /// Risky assets (the deposit is not one): the width of every asset axis of the run.
  [[nodiscard]] virtual int assets() const = 0;

  /// True when prices never depend on the agents' decisions, so that the whole market path may be moved
  /// before any decision (the fused kernel does), and the deposit growth G is the same every step (the
  /// fused kernel holds one G). An endogenous market (price impact) returns false.
  [[nodiscard]] virtual bool exogenous() const = 0;

  /// Sizes `state` (paths x assets) and sets the initial prices; return and shock 0. Called once, first.
  virtual void initialize(MarketState& state) = 0;

  /// The market phase of step k: moves every path's prices from S_k to S_{k+1}, writes return and shock,
  /// and computes settlement() for the step. Called once per step, k = 0, 1, ..., after the decide phase.
  ///
  /// `populations` is every population after deciding (amount = P_k, previous_amount = P_{k-1},
  /// wealth = X_k), read-only. It is the seam of an endogenous market: the agents' net dollar flow per
  /// asset and path is reduced from it here, in a fixed order over populations and agents
  /// so that the result does not depend on the thread count. An exogenous market ignores it (the fused
  /// kernel moves such a market before anyone has decided).
  virtual void move(int k, std::span<const PopulationState> populations, MarketState& state) = 0;

  /// The coefficients of the step last moved (undefined before the first move()).
  [[nodiscard]] virtual const Settlement& settlement() const = 0;

  /// An agent split (docs/cluster.md): the other ranks' blocks of the split populations
  /// (PopulationSpec::agents_total), which move() takes into account through `exchange` (not owned). A
  /// market no decision moves needs nothing from them: the default ignores it.
  virtual void set_agent_exchange(AgentExchange* /*exchange*/) {}
};

/// The market that `spec.market.model` names, for `spec.run.paths` paths.
[[nodiscard]] std::unique_ptr<Market> make_market(const ScenarioSpec& spec);

}  // namespace herdsim::sim
