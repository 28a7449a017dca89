#pragma once
// `herdsim dataset -o DIR`: generate the InvestAlign fine-tuning dataset (chat JSONL + card).
#include <CLI/CLI.hpp>

namespace herdsim::cli {

/// Registers the `dataset` subcommand (docs/investagents.md).
void add_dataset_command(CLI::App& app);

}  // namespace herdsim::cli
