#pragma once
// The one place that maps a population kind to its implementation. Adding a kind: a file pair under
// agents/, one line here, its keys in io/scenario_toml.cpp, a test, and docs (docs/adding-an-agent.md).
#include <memory>
#include <vector>

#include "sim/inference/backend.hpp"
#include "sim/population.hpp"
#include "sim/scenario_spec.hpp"
#include "sim/simulation.hpp"

namespace herdsim::agents {

/// One implementation per population of the spec, in order. LLM-backed populations (investagent) get
/// their backend from `backends`, called once per such population, in order; without a factory they
/// are a ScenarioError. Backend errors propagate (BackendError, IoError) before anything runs.
[[nodiscard]] std::vector<std::unique_ptr<sim::Population>> make_populations(
    const sim::ScenarioSpec& spec, const inference::BackendFactory& backends = {});

/// A ready-to-run simulation of the spec (backends: as for make_populations).
[[nodiscard]] std::unique_ptr<sim::Simulation> make_simulation(
    const sim::ScenarioSpec& spec, const inference::BackendFactory& backends = {});

}  // namespace herdsim::agents
