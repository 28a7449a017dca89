#pragma once
// `herdsim export RUN.h5 --population NAME [--format csv] [-o FILE] [--group G] [--quantity Q]
// [--paths 0,1,...] [--agents A:B]`: one population's trajectories as a long-format CSV
// (io/trajectory_csv.hpp; docs/python.md).
#include <CLI/CLI.hpp>

namespace herdsim::cli {

/// Registers the `export` subcommand on app: writes the CSV to FILE (through FILE.partial) or stdout
/// and exits 0, or prints one line `herdsim export: error: ...` to stderr and exits 2.
void add_export_command(CLI::App& app);

}  // namespace herdsim::cli
