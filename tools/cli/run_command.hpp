#pragma once
// `herdsim run FILE`: run a scenario (every sweep point) and write its trajectories to HDF5.
#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "sim/scenario_spec.hpp"

namespace herdsim::cli {

/// What one `herdsim run` does (its flags).
struct RunFlags {
  std::string scenario;
  std::string output;
  int threads = 0;
  double memory_limit_gib = 0.0;
  std::vector<std::string> sets;
  bool quiet = false;
  /// Put before the progress bar's "run i/N" (herdsim evaluate: the column and problem).
  std::string label;
  /// Per-run lines on stderr and the summary on stdout (false: the summary on stderr).
  bool run_lines = true;
  /// A folder: model answers go through the decision cache there (io/decision_cache.hpp); empty: none.
  std::string decision_cache;
  /// Under an MPI launcher with several ranks (docs/cluster.md): what is split across them, "sweep" (the
  /// sweep points), "paths" (the paths of every run, in fixed blocks), "agents" (the agents of the large
  /// populations, in fixed blocks) or "auto" (the sweep points when there are at least as many as ranks,
  /// else the paths, or the agents when a rank's block of paths does not fit in memory).
  std::string split = "auto";
  /// Run on this process alone even under an MPI launcher (herdsim evaluate hands whole runs to the ranks).
  bool one_process = false;
};

/// A sweep point as run files record it (`sweep_point`: "key=value;..."); empty without a sweep.
[[nodiscard]] std::string sweep_label(const sim::ScenarioSpec& spec);

/// Runs a scenario as `herdsim run` does, with its stop signals, messages and exit statuses: 0, 2 for bad
/// input (nothing run), 1 for a failed computation, 128 + signal when stopped (the output left as .partial).
[[nodiscard]] int run_scenario(const RunFlags& flags, const std::string& command_line);

/// Registers the `run` subcommand; argv is kept for provenance (the command line in the output).
void add_run_command(CLI::App& app, int argc, char** argv);

}  // namespace herdsim::cli
