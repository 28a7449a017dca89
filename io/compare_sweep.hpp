#pragma once
// `herdsim compare` across sweep points or run files (docs/analysis.md, "Across sweep points and
// files"): one table per measure, a row per sweep point (or per run file and run group), the swept or
// differing scenario values as columns, and each population's value with its confidence interval.
// Built from analyses compare_run has made: no file access here except parsing the stored scenario text.
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "io/compare.hpp"
#include "sim/analysis/investor_types.hpp"

namespace herdsim::io {

/// A scenario value of one point: a number, or text (strings, booleans, arrays), or absent.
struct AcrossValue {
  enum class Type { absent, number, text } type = Type::absent;
  double number = 0.0;
  std::string text;
  [[nodiscard]] bool operator==(const AcrossValue&) const = default;
};

/// One row of the tables: a sweep point of one file, or one run group of one of several files.
struct AcrossPoint {
  std::string label;  ///< "sweep_003", or the file name (plus ":group" for a file with several groups)
  std::string file;
  std::string group;
  std::string sweep_point;          ///< the group's "key=value;..." (sweep points only)
  std::vector<AcrossValue> values;  ///< one per Across::params
};

/// One measure across the points: cells[point][population], nullopt where the population lacks it.
struct AcrossTable {
  std::string measure;  ///< e.g. "decision_mse_pp" (the names of the by-type tables, plus herding statistics)
  std::string label;    ///< e.g. "decision MSE, proportion of wealth"
  std::string units;    ///< e.g. "pp^2" (empty: a pure number)
  std::string interval;  ///< how the interval was computed
  std::vector<std::vector<std::optional<analysis::MeanInterval>>> cells;
};

struct Across {
  std::string over;                      ///< "sweep points" or "files"
  std::vector<std::string> params;       ///< the columns: swept key paths, or scenario values that differ
  std::vector<AcrossPoint> points;       ///< the rows
  std::vector<std::string> populations;  ///< in order of first appearance
  std::vector<AcrossTable> tables;       ///< only measures some population has at some point
  double confidence = 0.95;
};

/// The sweep points of one analysis (its run groups, the swept key paths as columns); nullopt when the
/// file holds fewer than two run groups.
[[nodiscard]] std::optional<Across> across_sweep(const Comparison& comparison);
/// Every run group of several analyses; the columns are the scenario values (after each group's sweep
/// values) that differ between the points, the swept keys first. ScenarioError if a stored scenario does
/// not parse as TOML.
[[nodiscard]] Across across_files(const std::vector<Comparison>& comparisons);

/// The JSON object under "across" (docs/analysis.md); NaN as null.
[[nodiscard]] nlohmann::json across_json(const Across& across);
/// One Markdown table per measure.
[[nodiscard]] std::string across_markdown(const Across& across);

}  // namespace herdsim::io
