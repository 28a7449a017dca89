#include "agents/registry.hpp"

#include "agents/herd_agent.hpp"
#include "agents/merton_agent.hpp"
#include "agents/noise_agent.hpp"

namespace herdsim::agents {

std::vector<std::unique_ptr<sim::Population>> make_populations(const sim::ScenarioSpec& spec) {
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
    }
  }
  return out;
}

std::unique_ptr<sim::Simulation> make_simulation(const sim::ScenarioSpec& spec) {
  return std::make_unique<sim::Simulation>(spec, make_populations);
}

}  // namespace herdsim::agents
