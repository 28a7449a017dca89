#pragma once
// Chartists, trend followers (docs/theory.md §7.4): each agent holds, in each asset a, the proportion
// chi m_a / dt of its wealth, clamped to [-max_proportion, max_proportion], where m_a is the exponentially
// weighted moving average of the market's log returns per step,
//   m_a(k) = (1 - w) m_a(k-1) + w ln(S_a(k) / S_a(k-1)),   m_a(0) = 0,
// w = trend_weight in (0, 1] (w = 1: the last return alone, Franke and Westerhoff's chartist), so m / dt
// is the trend in log return per year. chi > 0 follows the trend, chi < 0 trades against it. It reads
// only the market's last return; in the exogenous market it is a price-taker chasing the GBM's returns.
// Keys: chi, trend_weight, max_proportion. Parameters: wealth0, chi.
// Kind state (sim::PopulationState::kind_state): `trend`, paths x assets (not agents in rows: every agent
// of the population sees the same average), m after the last return, log return per step; updated once
// per step in prepare_step, before the parallel decide reads it.
#include <memory>
#include <string_view>

#include "agents/kind.hpp"
#include "sim/population.hpp"

namespace herdsim::agents {

/// The parameters of a chartist population.
struct ChartistParams {
  static constexpr std::string_view kind = "chartist";
  sim::ParamSpec chi;           ///< proportion of wealth per unit of trend (log return per year), any sign
  double trend_weight = 1.0;    ///< w in (0, 1]: the weight of the latest return in the moving average
  double max_proportion = 1.0;  ///< cap on |amount| / wealth in each asset, > 0
};

/// The chartist kind (registered by the registry).
[[nodiscard]] std::unique_ptr<Kind> make_chartist_kind();

/// The moving average after one more step: (1 - w) m + w ln(1 + simple_return); a return at or below
/// -100 % (a price that is not positive) leaves m as it is.
[[nodiscard]] double chartist_trend(double trend, double weight, double simple_return);

class ChartistPopulation final : public sim::Population {
 public:
  ChartistPopulation(const sim::ScenarioSpec& spec, int index);
  void initialize(const sim::RunState& state, sim::PopulationState& own) override;
  void prepare_step(const sim::DecisionContext& ctx, sim::PopulationState& own) override;
  void decide(const sim::DecisionContext& ctx, int p0, int p1, int a0, int a1,
              sim::PopulationState& own) const override;

 private:
  const sim::ScenarioSpec& spec_;
  const ChartistParams& cp_;
  int index_;
};

}  // namespace herdsim::agents
