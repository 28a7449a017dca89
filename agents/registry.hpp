#pragma once
// The kinds a scenario may name, and specs made runnable. The built-in kinds are registered here, one line
// each (registry.cpp); a kind defined elsewhere registers itself with register_kind (agents/kind.hpp).
// Adding a kind: docs/adding-an-agent.md.
#include <memory>
#include <vector>

#include "agents/kind.hpp"
#include "sim/inference/backend.hpp"
#include "sim/population.hpp"
#include "sim/scenario_spec.hpp"
#include "sim/simulation.hpp"

namespace herdsim::agents {

/// Runs every population's kind check (Kind::check) on a spec, whatever built it; throws ScenarioError
/// listing every problem ("population 'f': leader: there is no population named \"x\"").
void check_populations(const sim::ScenarioSpec& spec);

/// One implementation per population of a checked spec (check_populations), in order. LLM-backed
/// populations (investagent) get their backend from `backends`, called once per such population, in order;
/// without a factory they are a ScenarioError. Backend errors propagate (BackendError, IoError) before
/// anything runs.
[[nodiscard]] std::vector<std::unique_ptr<sim::Population>> make_populations(
    const sim::ScenarioSpec& spec, const inference::BackendFactory& backends = {});

/// A ready-to-run simulation of the spec (checked; backends: as for make_populations).
[[nodiscard]] std::unique_ptr<sim::Simulation> make_simulation(
    const sim::ScenarioSpec& spec, const inference::BackendFactory& backends = {});

}  // namespace herdsim::agents
