#pragma once
// `herdsim evaluate -o DIR [SOURCE]...`: the InvestAlign transfer study in one command (P3, P1, P2 for every
// answer source and the reference answerers; one report). docs/investagents.md, "The transfer study".
#include <CLI/CLI.hpp>

namespace herdsim::cli {

/// Registers the `evaluate` subcommand; argv is kept for provenance (the command line in the run files).
void add_evaluate_command(CLI::App& app, int argc, char** argv);

}  // namespace herdsim::cli
