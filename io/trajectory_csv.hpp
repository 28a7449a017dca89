#pragma once
// Long-format ("tidy") CSV export of one population of a run file (`herdsim export`, docs/python.md).
// One line per (group, step, path, agent), streamed from the run file one trajectory row at a time,
// so an export needs memory for one row, not for the run:
//
//   group,step,t,path,agent,wealth,amount,theory_amount,<param>...
//
// `amount` and `theory_amount` are empty on the final wealth row (step n has no decision), and
// `theory_amount` is empty for a population without a theoretical optimum. Floats are shortest
// round-trip (parsing the text gives the stored float64 bit for bit), integral ones with ".0" so that
// a float column always reads as float; NaN is `nan`. Rows: group, then step, then path, then agent.
// A population recorded without trajectories (record.trajectories = false) exports its summary
// table instead: `group,step,t,quantity,<stat>...`.
#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

#include "io/run_file.hpp"

namespace herdsim::io {

/// Which rows and value columns an export holds.
enum class CsvQuantity {
  wealth,  ///< wealth rows (steps 0, e, ..., n): `wealth`
  amount,  ///< decision rows (steps 0, e, ... < n): `amount`, `theory_amount`
  all,     ///< wealth rows with every column; `amount` and `theory_amount` empty on step n
};

/// What to export, as the user asked for it; plan_trajectory_csv checks it against the file.
struct TrajectoryCsvRequest {
  std::string population;
  std::string group;  ///< "/sweep_001" or "sweep_001"; empty: every group of the file
  CsvQuantity quantity = CsvQuantity::all;
  std::vector<int> paths;  ///< path indices of the run (not positions on the path axis); empty: all recorded
  int agent_begin = 0;     ///< first agent
  int agent_end = -1;      ///< one past the last agent; -1: through the last recorded agent
};

/// A request resolved against one file: everything the writer needs, checked up front so that a bad
/// request fails before any output exists.
struct TrajectoryCsvPlan {
  struct Group {
    RunGroupInfo info;
    PopulationInfo population;
    std::vector<int> path_columns;  ///< positions on the path axis to export, in axis (= path) order
    int agent_begin = 0;
    int agent_end = 0;  ///< one past the last agent
  };
  std::string population;
  CsvQuantity quantity = CsvQuantity::all;
  bool summaries = false;  ///< true: the population has no trajectories, its summary table is exported
  std::vector<Group> groups;
  std::vector<std::string> params;  ///< parameter columns (union over the groups, sorted)
  std::vector<std::string> stats;   ///< summary columns (summaries only)
  std::vector<std::string> header;  ///< the CSV columns
  /// Several assets (schema 2): one amount_<name>, theory_amount_<name> pair per asset instead of amount,
  /// theory_amount; empty with one asset.
  std::vector<std::string> assets;
};

/// Resolves a request. Throws InputError naming the problem: an unknown population (listing the
/// available ones), group (listing the groups), path (listing the recorded ones), or an agent range
/// outside the recorded agents; and for --paths/--agents with a summaries-only population.
[[nodiscard]] TrajectoryCsvPlan plan_trajectory_csv(const RunFile& file, const TrajectoryCsvRequest& request);

/// About the bytes an export of plan holds at once (per group: a row of wealth and of amounts for the
/// exported agents and paths, the population's plan, per-agent text), the largest group's.
[[nodiscard]] double export_memory_bytes(const TrajectoryCsvPlan& plan);

/// Rows and bytes written by an export.
struct CsvExportStats {
  std::uint64_t rows = 0;   ///< data lines (the header not counted)
  std::uint64_t bytes = 0;  ///< including the header
};

/// Writes the header and every row of plan to out. Throws IoError when reading or writing fails.
CsvExportStats write_trajectory_csv(const RunFile& file, const TrajectoryCsvPlan& plan, std::ostream& out);

/// Writes to stdout for path "" or "-"; otherwise to PATH.partial, renamed to PATH once complete. On
/// an error the partial file is removed, and an existing PATH is only replaced by a complete export.
CsvExportStats export_trajectory_csv(const RunFile& file, const TrajectoryCsvPlan& plan,
                                     const std::string& path);

}  // namespace herdsim::io
