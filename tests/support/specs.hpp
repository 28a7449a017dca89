#pragma once
// Scenario specs built in code for engine tests (the TOML layer has its own tests).
#include "agents/herd_agent.hpp"
#include "agents/merton_agent.hpp"
#include "sim/scenario_spec.hpp"

namespace herdsim::test {

inline sim::ParamSpec constant(double v) {
  sim::ParamSpec p;
  p.value = v;
  return p;
}

inline sim::ParamSpec list(std::vector<double> values,
                           sim::ParamSpec::Scale scale = sim::ParamSpec::Scale::direct) {
  sim::ParamSpec p;
  p.form = sim::ParamSpec::Form::list;
  p.values = std::move(values);
  p.scale = scale;
  return p;
}

inline sim::PopulationSpec merton(const std::string& name, int count, double alpha) {
  agents::MertonParams p;
  p.alpha = constant(alpha);
  return agents::population_spec(name, count, p, constant(10.0));
}

inline sim::PopulationSpec herd(const std::string& name, int count, agents::Policy policy) {
  agents::HerdParams p;
  p.policy = policy;
  p.leader = "advisor";
  p.alpha = list({0.4, 0.6, 0.9}, sim::ParamSpec::Scale::lottery_prob);
  p.theta = list({0, 3, 10}, sim::ParamSpec::Scale::score);
  return agents::population_spec(name, count, p, constant(10.0));
}

/// The herd parameters of a population (to change a test spec's settings).
inline agents::HerdParams& herd_params(sim::PopulationSpec& ps) {
  return agents::params_of<agents::HerdParams>(ps);
}
inline const agents::HerdParams& herd_params(const sim::PopulationSpec& ps) {
  return agents::params_of<agents::HerdParams>(ps);
}

/// The paper's setting: an advisor and followers; 10 annual steps.
inline sim::ScenarioSpec paper_spec(int paths, agents::Policy policy) {
  sim::ScenarioSpec s;
  s.run.paths = paths;
  s.run.seed = 7;
  s.populations.push_back(merton("advisor", 1, 0.2));
  s.populations.push_back(herd("followers", 18, policy));
  return s;
}

}  // namespace herdsim::test
