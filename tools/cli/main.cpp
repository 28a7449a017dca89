// herdsim: command-line front end. Each subcommand lives in its own file under tools/cli.
#include <CLI/CLI.hpp>
#include <exception>
#include <iostream>
#include <new>
#include <string>

#include "io/hdf5_output.hpp"
#include "sim/error.hpp"

#include "tools/cli/compare_command.hpp"
#include "tools/cli/dataset_command.hpp"
#include "tools/cli/evaluate_command.hpp"
#include "tools/cli/export_command.hpp"
#include "tools/cli/merge_command.hpp"
#include "tools/cli/report_command.hpp"
#include "tools/cli/run_command.hpp"
#include "tools/cli/theory_command.hpp"
#include "tools/cli/validate_command.hpp"

#ifndef HERDSIM_VERSION
#define HERDSIM_VERSION "unknown"
#endif

namespace {

/// The one last-resort handler of every subcommand: bad input (InputError, ScenarioError) exits 2, a
/// failed computation or anything else (a library's exception, out of memory) exits 1, each with one
/// line naming the subcommand. Called inside a catch block.
int report_escaped(const CLI::App& app) {
  const auto selected = app.get_subcommands();
  const std::string who = selected.empty() ? "herdsim" : "herdsim " + selected.front()->get_name();
  try {
    throw;
  } catch (const herdsim::InputError& e) {
    std::cerr << who << ": " << e.what() << "\n";
    return 2;
  } catch (const herdsim::ScenarioError& e) {
    std::cerr << who << ": " << e.what() << "\n";
    return 2;
  } catch (const herdsim::Error& e) {
    std::cerr << who << ": failed: " << e.what() << "\n";
  } catch (const std::bad_alloc&) {
    std::cerr << who << ": failed: out of memory (a size is larger than this machine can hold)\n";
  } catch (const std::exception& e) {
    std::cerr << who << ": failed: " << e.what() << "\n";
  } catch (...) {
    std::cerr << who << ": failed: an unknown error\n";
  }
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  herdsim::io::prepare_hdf5_library();
  CLI::App app{"herdsim: behavioral-finance market simulator (herding, Merton and LLM investors)"};
  app.set_version_flag("--version", HERDSIM_VERSION);
  app.require_subcommand(1);
  herdsim::cli::add_run_command(app, argc, argv);
  herdsim::cli::add_validate_command(app);
  herdsim::cli::add_theory_command(app);
  herdsim::cli::add_compare_command(app);
  herdsim::cli::add_export_command(app);
  herdsim::cli::add_merge_command(app);
  herdsim::cli::add_dataset_command(app);
  herdsim::cli::add_report_command(app, argv[0]);
  herdsim::cli::add_evaluate_command(app, argc, argv);
  try {
    app.parse(argc, argv);
  } catch (const CLI::RuntimeError& e) {
    return e.get_exit_code();  // the subcommand has already reported the problem
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    // One line naming the flag and the bad value (CLI11's message does both), then a hint.
    std::cerr << "herdsim: error: " << e.what() << "\nRun with --help for usage.\n";
    return 2;
  } catch (...) {
    // Nothing escapes as `terminate called`: whatever a subcommand did not report is reported here.
    return report_escaped(app);
  }
  return 0;
}
