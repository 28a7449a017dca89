#pragma once
// A solved theory problem as plain data, and its three renderings: an aligned table for people,
// CSV (header + one row per time point) and JSON (one object; every column is an array).
#include <ostream>
#include <string>
#include <utility>
#include <vector>

namespace herdsim::io {

/// What `herdsim theory` prints. Columns hold one value per time point (per agent and time point
/// for the mutual game, with an `agent` column).
struct TheoryReport {
  std::vector<std::pair<std::string, std::string>> settings;         ///< problem, time model, bc...
  std::vector<std::pair<std::string, double>> scalars;               ///< eta, ln_eta, objective...
  std::vector<std::pair<std::string, std::vector<double>>> vectors;  ///< per-agent values (mutual)
  std::vector<std::string> columns;                                  ///< first column is the time point
  std::vector<std::vector<double>> rows;                             ///< rows[i][j] = column j
};

/// Aligned, human-readable table with the settings and scalars above it.
void write_table(std::ostream& out, const TheoryReport& report);
/// CSV: a header row, then one row per time point; numbers with 17 significant digits (round-trip).
void write_csv(std::ostream& out, const TheoryReport& report);
/// JSON object: settings and scalars as members, vectors and columns as arrays.
void write_json(std::ostream& out, const TheoryReport& report);

}  // namespace herdsim::io
