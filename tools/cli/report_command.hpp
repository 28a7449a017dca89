#pragma once
// `herdsim report RUN.h5 -o DIR [--python PATH]`: run the analysis (`herdsim compare`) and draw
// the figures and index.html with the Python report script (tools/report/herdsim_report.py).
#include <CLI/CLI.hpp>

namespace herdsim::cli {

/// Registers the `report` subcommand on app. argv0 is this executable as invoked: the fallback
/// used to run `herdsim compare` where /proc/self/exe cannot be read. Exits 0 on success, 2 for
/// bad input, 3 when Python or a Python package is missing, else the failing step's exit code.
void add_report_command(CLI::App& app, const char* argv0);

}  // namespace herdsim::cli
