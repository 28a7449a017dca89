#pragma once
// Small helpers and vocabulary shared by the agent kinds.
#include <algorithm>
#include <array>
#include <cmath>
#include <string>
#include <string_view>

#include "sim/enum_names.hpp"
#include "sim/population.hpp"
#include "sim/scenario_spec.hpp"
#include "sim/theory/schedule.hpp"

namespace herdsim::agents {

/// How plan-following kinds decide (merton, herd): the open-loop optimum of t = 0, the optimum re-solved
/// each step from the realised wealth, or a myopic response to what others did (herd only).
enum class Policy { plan, replan, adaptive };
constexpr std::array<NamedValue<Policy>, 3> enum_names(Policy /*unused*/) {
  return {{{Policy::plan, "plan"}, {Policy::replan, "replan"}, {Policy::adaptive, "adaptive"}}};
}
/// Which optimum a plan follows: the exact optimum of the simulated discrete steps, or the
/// continuous-time closed form sampled at the decision times (the released InvestAlign code).
enum class Optimum { discrete, continuous };
constexpr std::array<NamedValue<Optimum>, 2> enum_names(Optimum /*unused*/) {
  return {{{Optimum::discrete, "discrete"}, {Optimum::continuous, "continuous"}}};
}

/// The theory market of a scenario.
[[nodiscard]] inline theory::Market theory_market(const sim::ScenarioSpec& spec) {
  return {spec.market.mu, spec.market.r, spec.market.sigma};
}
/// The one-asset market of asset a of a scenario: its drift and volatility, the deposit rate (asset 0:
/// theory_market(spec)).
[[nodiscard]] inline theory::Market theory_market(const sim::ScenarioSpec& spec, int asset) {
  const sim::AssetSpec a = spec.market.asset(asset);
  return {a.mu, spec.market.r, a.sigma};
}

/// The time model whose optimum a plan follows: the simulated steps, or continuous time.
[[nodiscard]] inline theory::TimeModel theory_time(const sim::ScenarioSpec& spec, Optimum optimum) {
  return optimum == Optimum::discrete ? theory::TimeModel::discrete(spec.run.steps_per_year)
                                      : theory::TimeModel::continuous();
}

/// The parameter vector called `name` (throws if the kind did not define it: a programmer error).
[[nodiscard]] const Eigen::VectorXd& param(const sim::PopulationState& pop, const std::string& name);

/// Writes the plan of step k (theory_amount column k; asset a: column a steps + k) into the slots
/// [p0, p1) x [a0, a1) of every asset.
void play_plan(const sim::DecisionContext& ctx, int p0, int p1, int a0, int a1, sim::PopulationState& own);

/// The amount of a price-driven rule (fundamentalist, chartist) that asks for `proportion` of its wealth:
/// proportion clamped to [-cap, cap] times max(wealth, 0) (an agent without wealth holds nothing); a NaN
/// proportion (a price that is not positive) holds nothing.
[[nodiscard]] inline double capped_amount(double proportion, double cap, double wealth) {
  if (std::isnan(proportion)) return 0.0;
  return std::clamp(proportion, -cap, cap) * std::max(wealth, 0.0);
}

/// Sets every path's initial wealth to the per-agent `wealth0` parameter.
void set_initial_wealth(sim::PopulationState& own);

/// Adds a zero kind-state matrix called name (rows x cols) to own.kind_state (from initialize; a later
/// add moves the earlier matrices, so look them up after the last add).
void add_kind_state(sim::PopulationState& own, std::string name, Eigen::Index rows, Eigen::Index cols);

/// The kind-state matrix called name (throws if the kind did not add it: a programmer error).
[[nodiscard]] Eigen::MatrixXd& kind_state(sim::PopulationState& own, std::string_view name);
[[nodiscard]] const Eigen::MatrixXd& kind_state(const sim::PopulationState& own, std::string_view name);

}  // namespace herdsim::agents
