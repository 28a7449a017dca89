#include "tools/cli/merge_command.hpp"

#include <fmt/format.h>
#include <memory>
#include <string>

#include "io/master_file.hpp"
#include "sim/memory.hpp"

namespace herdsim::cli {

namespace {

struct MergeFlags {
  std::string master;
  std::string output;
};

}  // namespace

void add_merge_command(CLI::App& app) {
  auto flags = std::make_shared<MergeFlags>();
  CLI::App* cmd = app.add_subcommand(
      "merge", "Copy a distributed run's master file and the parts it links into one self-contained file");
  cmd->add_option("master", flags->master,
                  "master file written by `mpirun ... herdsim run` (docs/cluster.md)")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("-o,--output", flags->output, "the self-contained HDF5 file to write")->required();
  cmd->callback([flags]() {
    // Errors (InputError: exit 2; IoError: exit 1) are reported by main's one handler.
    const std::uint64_t bytes = io::merge_run_file(flags->master, flags->output);
    fmt::print("{}: wrote {} ({})\n", flags->master, flags->output,
               sim::format_bytes(static_cast<double>(bytes)));
  });
}

}  // namespace herdsim::cli
