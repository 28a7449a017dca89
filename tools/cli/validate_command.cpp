#include "tools/cli/validate_command.hpp"

#include <fmt/format.h>
#include <algorithm>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "agents/registry.hpp"
#include "io/scenario_toml.hpp"
#include "sim/error.hpp"
#include "sim/plural.hpp"

namespace herdsim::cli {

namespace {

struct ValidateFlags {
  std::string file;
  std::vector<std::string> overrides;
};

/// The warnings of spec's set-up (Simulation::warnings): only a market with price impact has any, and
/// only it is set up here (its populations' plans are what the stability condition reads). A spec whose
/// set-up needs more (an inference backend) is left to `run`.
std::vector<std::string> setup_warnings(const sim::ScenarioSpec& spec) {
  if (!spec.market.impact.active()) return {};
  try {
    return agents::make_simulation(spec)->warnings();
  } catch (const Error&) {
    return {};
  }
}

long long count_agents(const sim::ScenarioSpec& spec) {
  long long n = 0;
  for (const auto& pop : spec.populations) n += pop.count;
  return n;
}

int run_validate(const ValidateFlags& f) {
  try {
    const auto specs = io::load_scenario(f.file, f.overrides);
    // A sweep may change counts: quote the range over its points.
    long long lo = count_agents(specs.front());
    long long hi = lo;
    for (const auto& s : specs) {
      lo = std::min(lo, count_agents(s));
      hi = std::max(hi, count_agents(s));
    }
    for (const auto& s : specs)
      for (const auto& warning : setup_warnings(s)) std::cerr << f.file << ": warning: " << warning << '\n';
    const std::string agents = lo == hi ? sim::counted(lo, "agent") : fmt::format("{} to {} agents", lo, hi);
    std::cout << fmt::format("{}: valid ({} run{}, {})\n", f.file, specs.size(), specs.size() == 1 ? "" : "s",
                             agents);
    return 0;
  } catch (const io::ScenarioFileError& e) {
    for (const auto& p : e.problems()) std::cerr << io::format_scenario_problem(e.source(), p) << '\n';
    return 2;
  } catch (const Error& e) {
    std::cerr << "herdsim validate: error: " << e.what() << '\n';
    return 2;
  }
}

}  // namespace

void add_validate_command(CLI::App& app) {
  auto flags = std::make_shared<ValidateFlags>();
  CLI::App* cmd =
      app.add_subcommand("validate", "check a scenario file and report every problem; runs nothing");
  cmd->add_option("FILE", flags->file, "scenario file (TOML, docs/scenarios.md)")->required();
  cmd->add_option("--set", flags->overrides, "override a key: --set key.path=value (repeatable)")
      ->allow_extra_args(false)
      ->take_all();
  cmd->callback([flags]() {
    const int code = run_validate(*flags);
    if (code != 0) throw CLI::RuntimeError(code);
  });
}

}  // namespace herdsim::cli
