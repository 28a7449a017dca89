#include "agents/registry.hpp"

#include <fmt/format.h>
#include <algorithm>
#include <mutex>
#include <string>

#include "agents/chartist_agent.hpp"
#include "agents/fundamentalist_agent.hpp"
#include "agents/herd_agent.hpp"
#include "agents/investagent_agent.hpp"
#include "agents/merton_agent.hpp"
#include "agents/noise_agent.hpp"
#include "sim/error.hpp"

namespace herdsim::agents {

namespace {

struct Registry {
  Registry() {
    // The built-in kinds, one line each.
    kinds.push_back(make_merton_kind());
    kinds.push_back(make_herd_kind());
    kinds.push_back(make_noise_kind());
    kinds.push_back(make_investagent_kind());
    kinds.push_back(make_fundamentalist_kind());
    kinds.push_back(make_chartist_kind());
  }
  std::mutex mutex;
  std::vector<std::unique_ptr<Kind>> kinds;
};

Registry& registry() {
  static Registry r;
  return r;
}

/// Collects the problems of one population's check as lines naming the population and the key.
class PopulationProblems final : public KeyReporter {
 public:
  PopulationProblems(const std::string& population, std::vector<std::string>& lines)
      : population_(population), lines_(lines) {}
  void report(std::string_view key, std::string message, std::string_view /*fallback*/) override {
    lines_.push_back(key.empty() ? fmt::format("population '{}': {}", population_, message)
                                 : fmt::format("population '{}': {}: {}", population_, key, message));
  }

 private:
  const std::string& population_;
  std::vector<std::string>& lines_;
};

}  // namespace

std::vector<const Kind*> registered_kinds() {
  Registry& r = registry();
  const std::lock_guard lock(r.mutex);
  std::vector<const Kind*> out;
  for (const auto& kind : r.kinds) out.push_back(kind.get());
  return out;
}

const Kind* find_kind(std::string_view name) {
  Registry& r = registry();
  const std::lock_guard lock(r.mutex);
  for (const auto& kind : r.kinds) {
    if (kind->name() == name) return kind.get();
  }
  return nullptr;
}

void register_kind(std::unique_ptr<Kind> kind) {
  if (kind == nullptr || kind->name().empty()) throw Error("register_kind: a kind needs a name");
  Registry& r = registry();
  const std::lock_guard lock(r.mutex);
  for (const auto& known : r.kinds) {
    if (known->name() == kind->name())
      throw Error(fmt::format("register_kind: kind '{}' is already registered", kind->name()));
  }
  r.kinds.push_back(std::move(kind));
}

void unregister_kind(std::string_view name) {
  Registry& r = registry();
  const std::lock_guard lock(r.mutex);
  std::erase_if(r.kinds, [&](const auto& kind) { return kind->name() == name; });
}

const Kind& kind_of(const sim::PopulationSpec& ps) {
  if (const Kind* kind = find_kind(ps.kind)) return *kind;
  std::string names;
  for (const Kind* k : registered_kinds())
    names += fmt::format("{}\"{}\"", names.empty() ? "" : ", ", k->name());
  throw ScenarioError(
      fmt::format("population '{}': unknown kind \"{}\" (registered: {})", ps.name, ps.kind, names));
}

void check_populations(const sim::ScenarioSpec& spec) {
  std::vector<std::string> lines;
  for (std::size_t i = 0; i < spec.populations.size(); ++i) {
    const sim::PopulationSpec& ps = spec.populations[i];
    PopulationProblems out(ps.name, lines);
    kind_of(ps).check(spec, static_cast<int>(i), out);
    check_investors(spec, static_cast<int>(i), out);
  }
  if (lines.empty()) return;
  std::string message;
  for (const auto& line : lines) message += (message.empty() ? "" : "\n") + line;
  throw ScenarioError(message);
}

std::vector<std::unique_ptr<sim::Population>> make_populations(const sim::ScenarioSpec& spec,
                                                               const inference::BackendFactory& backends) {
  check_populations(spec);
  std::vector<std::unique_ptr<sim::Population>> out;
  for (std::size_t i = 0; i < spec.populations.size(); ++i)
    out.push_back(kind_of(spec.populations[i]).make(spec, static_cast<int>(i), backends));
  return out;
}

std::unique_ptr<sim::Simulation> make_simulation(const sim::ScenarioSpec& spec,
                                                 const inference::BackendFactory& backends) {
  auto simulation = std::make_unique<sim::Simulation>(
      spec, [&backends](const sim::ScenarioSpec& own) { return make_populations(own, backends); });
  // What each kind records is what it declares (a programmer error otherwise).
  const sim::RunState& state = simulation->state_without_amounts();
  for (std::size_t i = 0; i < state.populations.size(); ++i) {
    std::vector<std::string> recorded;
    for (const auto& [name, values] : state.populations[i].params) recorded.push_back(name);
    const sim::PopulationSpec& ps = spec.populations[i];
    if (recorded != kind_of(ps).recorded_params(ps))
      throw Error(
          fmt::format("population '{}': kind {} recorded parameters that differ from its recorded_params()",
                      ps.name, ps.kind));
  }
  return simulation;
}

}  // namespace herdsim::agents
