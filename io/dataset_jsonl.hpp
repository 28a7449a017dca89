#pragma once
// The InvestAlign dataset on disk (docs/investagents.md): chat-format JSONL for fine-tuning tools
// (train.jsonl, test.jsonl: one {"messages": [system, user, assistant]} object per line), the per-sample
// attributes and targets aligned with them (samples.jsonl), and the dataset card (dataset_card.json).
// Every file is written under a temporary name and renamed at the end, the card last, so a directory
// with a dataset_card.json always holds a complete dataset.
#include <cstdint>
#include <string>

#include "io/output_file.hpp"

#include "sim/investalign/dataset.hpp"

namespace herdsim::io {

/// What produced the dataset, stored in the card.
struct DatasetProvenance {
  std::string herdsim_version;  ///< e.g. "0.1.0"
};

/// Counts of what write_dataset wrote.
struct DatasetWriteSummary {
  std::int64_t train_lines = 0;  ///< lines of train.jsonl
  std::int64_t test_lines = 0;   ///< lines of test.jsonl
};

/// Version of the card layout (`card_version`).
inline constexpr int dataset_card_version = 1;

/// One chat-format JSONL line (without the newline): {"messages": [system, user, assistant]}.
[[nodiscard]] std::string chat_line(const investalign::Sample& sample);

/// Writes the dataset into `out` (claimed by the caller before the dataset is built, so that a bad or busy
/// folder is reported first): train.jsonl, test.jsonl, samples.jsonl and dataset_card.json, staged and
/// moved in together, the card last (io::OutputDirectory). Existing dataset files are replaced; other
/// files in the folder are left alone. Throws IoError naming the file.
DatasetWriteSummary write_dataset(const investalign::Dataset& dataset, OutputDirectory& out,
                                  const DatasetProvenance& provenance);

}  // namespace herdsim::io
