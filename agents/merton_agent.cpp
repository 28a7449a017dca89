#include "agents/merton_agent.hpp"

#include "agents/agent_support.hpp"
#include "agents/parameters.hpp"
#include "sim/theory/merton.hpp"

namespace herdsim::agents {

std::vector<NamedParam> merton_params(const sim::PopulationSpec& ps) {
  return {{"alpha", &ps.alpha}, {"wealth0", &ps.wealth}};
}

MertonPopulation::MertonPopulation(const sim::ScenarioSpec& spec, int index) : spec_(spec), index_(index) {}

void MertonPopulation::initialize(const sim::RunState& /*state*/, sim::PopulationState& own) {
  const sim::PopulationSpec& ps = spec_.populations[static_cast<std::size_t>(index_)];
  const sim::CounterRng rng(spec_.run.seed);
  own.params = expand_params(merton_params(ps), ps.count, index_, rng, ps.lottery);
  set_initial_wealth(own);
  const theory::Schedule schedule(theory_market(spec_), spec_.run.horizon, theory_time(spec_, ps.optimum));
  const Eigen::VectorXd& alpha = param(own, "alpha");
  own.theory_amount = theory::merton_amounts(schedule, alpha, spec_.run.steps(), spec_.run.dt());
}

void MertonPopulation::decide(const sim::DecisionContext& ctx, int p0, int p1, int a0, int a1,
                              sim::PopulationState& own) const {
  play_plan(ctx, p0, p1, a0, a1, own);
}

}  // namespace herdsim::agents
