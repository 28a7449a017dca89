#pragma once
// `herdsim evaluate`'s report (docs/investagents.md, "The transfer study"): the InvestAlign evaluation of
// several answer sources (models, adapters, replays, reference answerers) on P3, P1 and P2, one run file
// per source and problem. Each run file is scored by `compare` (io::compare_run: the investagent
// population's decision error per run group) and its transcripts (valid answers); the report puts the
// sources side by side as columns, in Markdown and JSON.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "sim/analysis/error_table.hpp"

namespace herdsim::io {

/// One problem answered by one source, over the run groups (seeds) of its run file.
struct ProblemScore {
  std::string problem;      ///< "P3", "P1", "P2" (what compare scored the population against)
  std::string run_file;     ///< as given to score_run_file
  int runs = 0;             ///< run groups (seeds)
  int agents = 0;           ///< agents of the population per run
  double mse_amount = 0.0;  ///< mean over runs of the decision MSE, currency units (million dollars) squared
  double mse_pp = 0.0;      ///< the same in percentage points of realised wealth, squared
  std::int64_t requests = 0;                  ///< answers requested (every stage)
  std::int64_t valid = 0;                     ///< of those, valid (parsed, not replaced by the fallback)
  std::optional<analysis::ErrorTable> table;  ///< lottery probability x score, cell-wise mean over runs
};

/// One column of the report: an answer source.
struct EvaluationColumn {
  std::string label;                   ///< its folder under the report folder and its column heading
  std::string source;                  ///< "model", "reference" or "replay"
  std::string description;             ///< the model and its adapters, the answerer, or the replay file
  std::vector<ProblemScore> problems;  ///< in the report's problem order
};

struct Evaluation {
  std::string herdsim_version;
  std::string created;                ///< UTC timestamp
  std::string population;             ///< the scored investagent population
  std::vector<std::string> problems;  ///< "P3", "P1", "P2" in the order run
  std::vector<EvaluationColumn> columns;
};

/// Scores population `population` of the run file at `path`: compare_run's decision error of every run group
/// (means of the MSEs and cell-wise means of the tables; every group must hold the population with a
/// decision error) and the transcripts' valid answers. Throws IoError for an unreadable file, InputError
/// for a file without the population or its scores.
[[nodiscard]] ProblemScore score_run_file(const std::string& path, const std::string& population,
                                          const std::string& herdsim_version);

/// JSON, schema "herdsim-evaluation" version 1 (docs/investagents.md); NaN as null.
[[nodiscard]] std::string evaluation_json(const Evaluation& evaluation);
/// Markdown: a summary table (problems x measures by column), then each problem's lottery x score tables.
[[nodiscard]] std::string evaluation_markdown(const Evaluation& evaluation);

}  // namespace herdsim::io
