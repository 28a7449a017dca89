#include "agents/registry.hpp"

#include <fmt/format.h>

#include "agents/herd_agent.hpp"
#include "agents/investagent_agent.hpp"
#include "agents/merton_agent.hpp"
#include "agents/noise_agent.hpp"
#include "sim/error.hpp"

namespace herdsim::agents {

namespace {

/// The population's backend; errors name the population (the factory's message names the file).
std::unique_ptr<inference::Backend> make_backend(const sim::PopulationSpec& ps,
                                                 const inference::BackendFactory& backends) {
  try {
    return backends(ps.inference);
  } catch (const BackendError& e) {
    throw BackendError(fmt::format("population '{}': {}", ps.name, e.what()));
  } catch (const IoError& e) {
    throw IoError(fmt::format("population '{}': inference.replay: {}", ps.name, e.what()));
  }
}

}  // namespace

std::vector<std::unique_ptr<sim::Population>> make_populations(const sim::ScenarioSpec& spec,
                                                               const inference::BackendFactory& backends) {
  std::vector<std::unique_ptr<sim::Population>> out;
  for (std::size_t i = 0; i < spec.populations.size(); ++i) {
    const int index = static_cast<int>(i);
    switch (spec.populations[i].kind) {
      case sim::AgentKind::merton:
        out.push_back(std::make_unique<MertonPopulation>(spec, index));
        break;
      case sim::AgentKind::herd:
        out.push_back(std::make_unique<HerdPopulation>(spec, index));
        break;
      case sim::AgentKind::noise:
        out.push_back(std::make_unique<NoisePopulation>(spec, index));
        break;
      case sim::AgentKind::investagent:
        if (!backends) {
          throw ScenarioError(
              fmt::format("population '{}': kind investagent needs an inference backend, and "
                          "none can be created here",
                          spec.populations[i].name));
        }
        out.push_back(std::make_unique<InvestAgentPopulation>(spec, index,
                                                              make_backend(spec.populations[i], backends)));
        break;
    }
  }
  return out;
}

std::unique_ptr<sim::Simulation> make_simulation(const sim::ScenarioSpec& spec,
                                                 const inference::BackendFactory& backends) {
  return std::make_unique<sim::Simulation>(
      spec, [&backends](const sim::ScenarioSpec& own) { return make_populations(own, backends); });
}

}  // namespace herdsim::agents
