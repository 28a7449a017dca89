#pragma once
// `herdsim merge MASTER.h5 -o ONE.h5`: one self-contained copy of a distributed run's master file
// (docs/cluster.md).
#include <CLI/CLI.hpp>

namespace herdsim::cli {

/// Registers the `merge` subcommand: copies every run group of MASTER (following its links into the part
/// files) and its root attributes into ONE (written as ONE.partial, renamed when complete). Exit 0; 2 for
/// bad input (a missing master, a bad output path); 1 when reading or writing fails (a missing or
/// incomplete part).
void add_merge_command(CLI::App& app);

}  // namespace herdsim::cli
