#pragma once
// Scenario files (TOML, docs/scenarios.md) -> validated ScenarioSpecs, one per sweep point.
// Every problem of a file is collected and reported at once, each with its key path and line:column.
#include <string>
#include <string_view>
#include <vector>

#include "sim/error.hpp"
#include "sim/scenario_spec.hpp"

namespace herdsim::io {

/// One problem: key path like "population[1].alpha" or "run.paths", 1-based line and column (0 if
/// unknown), message.
struct ScenarioProblem {
  std::string key_path;
  int line = 0;
  int column = 0;
  std::string message;
  /// Where the offending value came from when not the file itself, e.g. "--set #2" (empty: the file).
  std::string origin;
};

/// Formats one problem as "FILE:LINE:COL: KEYPATH: MESSAGE" ("FILE: --set #i: KEYPATH: MESSAGE" for an
/// override, "FILE: KEYPATH: MESSAGE" where the line is unknown).
[[nodiscard]] std::string format_scenario_problem(const std::string& source, const ScenarioProblem& problem);

/// Thrown with every problem at once; what() lists them one per line (format_scenario_problem).
class ScenarioFileError : public herdsim::ScenarioError {
 public:
  ScenarioFileError(std::string source, std::vector<ScenarioProblem> problems);
  /// The file name the problems refer to.
  [[nodiscard]] const std::string& source() const { return source_; }
  /// The problems, sorted by line (problems from --set last).
  [[nodiscard]] const std::vector<ScenarioProblem>& problems() const { return problems_; }

 private:
  std::string source_;
  std::vector<ScenarioProblem> problems_;
};

/// Parse + apply overrides (--set key.path=value) + expand [sweep] + validate. One spec per sweep
/// point (one if no sweep). Throws IoError if the file cannot be read, ScenarioFileError otherwise.
[[nodiscard]] std::vector<sim::ScenarioSpec> load_scenario(const std::string& path,
                                                           const std::vector<std::string>& overrides = {});

/// As load_scenario, from text; source_name names the text in messages.
[[nodiscard]] std::vector<sim::ScenarioSpec> parse_scenario(std::string_view text,
                                                            const std::string& source_name,
                                                            const std::vector<std::string>& overrides = {});

}  // namespace herdsim::io
