#pragma once
// `herdsim theory`: solve one of the theory library's problems and print the optimal path.
#include <CLI/CLI.hpp>

namespace herdsim::cli {

/// Registers the `theory` subcommand on app; the callback prints the result to stdout.
void add_theory_command(CLI::App& app);

}  // namespace herdsim::cli
