#pragma once
// `herdsim validate FILE [--set k=v]...`: parse and check a scenario file, run nothing.
#include <CLI/CLI.hpp>

namespace herdsim::cli {

/// Registers the `validate` subcommand on app: prints "FILE: valid (N run(s), M agents)" and exits 0,
/// or prints every problem, one per line, to stderr and exits 2.
void add_validate_command(CLI::App& app);

}  // namespace herdsim::cli
