#pragma once
// `herdsim compare RUN.h5 [--format markdown|json] [-o FILE]`: every population against theory
// (docs/analysis.md). The JSON results are also left next to the run file (RUN.analysis.json).
#include <CLI/CLI.hpp>

namespace herdsim::cli {

/// Registers the `compare` subcommand: exit 0 on success, 2 for bad input or an unreadable file.
void add_compare_command(CLI::App& app);

}  // namespace herdsim::cli
