// herdsim: command-line front end. Each subcommand lives in its own file under tools/cli.
#include <CLI/CLI.hpp>
#include <iostream>

#include "tools/cli/compare_command.hpp"
#include "tools/cli/dataset_command.hpp"
#include "tools/cli/export_command.hpp"
#include "tools/cli/report_command.hpp"
#include "tools/cli/run_command.hpp"
#include "tools/cli/theory_command.hpp"
#include "tools/cli/validate_command.hpp"

#ifndef HERDSIM_VERSION
#define HERDSIM_VERSION "unknown"
#endif

int main(int argc, char** argv) {
  CLI::App app{"herdsim: behavioral-finance market simulator (herding, Merton and LLM investors)"};
  app.set_version_flag("--version", HERDSIM_VERSION);
  app.require_subcommand(1);
  herdsim::cli::add_run_command(app, argc, argv);
  herdsim::cli::add_validate_command(app);
  herdsim::cli::add_theory_command(app);
  herdsim::cli::add_compare_command(app);
  herdsim::cli::add_export_command(app);
  herdsim::cli::add_dataset_command(app);
  herdsim::cli::add_report_command(app, argv[0]);
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
  }
  return 0;
}
