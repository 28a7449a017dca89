#pragma once
// `herdsim run FILE`: run a scenario (every sweep point) and write its trajectories to HDF5.
#include <CLI/CLI.hpp>

namespace herdsim::cli {

/// Registers the `run` subcommand; argv is kept for provenance (the command line in the output).
void add_run_command(CLI::App& app, int argc, char** argv);

}  // namespace herdsim::cli
