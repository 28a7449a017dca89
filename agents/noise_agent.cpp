#include "agents/noise_agent.hpp"

#include "agents/agent_support.hpp"
#include "agents/parameters.hpp"

namespace herdsim::agents {

NoisePopulation::NoisePopulation(const sim::ScenarioSpec& spec, int index)
    : spec_(spec),
      ps_(spec.populations[static_cast<std::size_t>(index)]),
      index_(index),
      drawn_(ps_.proportion.form == sim::ParamSpec::Form::distribution) {}

void NoisePopulation::initialize(const sim::RunState& /*state*/, sim::PopulationState& own) {
  const sim::CounterRng rng(spec_.run.seed);
  std::vector<NamedParam> params{{"wealth0", &ps_.wealth}};
  if (!drawn_) params.push_back({"proportion", &ps_.proportion});  // grid order: wealth, proportion
  own.params = expand_params(params, ps_.count, index_, rng, ps_.lottery);
  set_initial_wealth(own);
}

void NoisePopulation::decide(const sim::DecisionContext& ctx, int p0, int p1, int a0, int a1,
                             sim::PopulationState& own) const {
  if (!drawn_) {
    const Eigen::VectorXd& proportion = param(own, "proportion");
    for (int p = p0; p < p1; ++p) {
      own.amount.col(p).segment(a0, a1 - a0) =
          proportion.segment(a0, a1 - a0).cwiseProduct(own.wealth.col(p).segment(a0, a1 - a0));
    }
    return;
  }
  // Key (path, step, population << 32 | agent): independent of who else is simulated.
  const auto base = static_cast<std::uint64_t>(index_) << 32;
  for (int p = p0; p < p1; ++p) {
    for (int i = a0; i < a1; ++i) {
      const double u =
          ctx.rng->uniform(sim::Stream::noise, static_cast<std::uint64_t>(p),
                           static_cast<std::uint64_t>(ctx.step), base + static_cast<std::uint64_t>(i));
      own.amount(i, p) = sample_distribution(ps_.proportion.distribution, u) * own.wealth(i, p);
    }
  }
}

}  // namespace herdsim::agents
