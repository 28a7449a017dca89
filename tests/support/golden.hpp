#pragma once
// Reads the golden CSV files in tests/golden (see its README for columns
// and tolerances). Numbers parse with strtod, so `nan` and `inf` work.
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace herdsim::test {

/// One CSV row: column name -> text.
struct GoldenRow {
  std::map<std::string, std::string> cells;
  [[nodiscard]] double num(const std::string& column) const {
    const auto it = cells.find(column);
    if (it == cells.end()) throw std::runtime_error("golden: no column " + column);
    return std::strtod(it->second.c_str(), nullptr);
  }
  [[nodiscard]] const std::string& str(const std::string& column) const { return cells.at(column); }
};

/// All rows of tests/golden/<name>.
inline std::vector<GoldenRow> read_golden(const std::string& name) {
  std::ifstream in(std::string(HERDSIM_GOLDEN_DIR) + "/" + name);
  if (!in) throw std::runtime_error("golden: cannot open " + name);
  auto split = [](const std::string& line) {
    std::vector<std::string> out;
    std::stringstream ss(line);
    std::string cell;
    while (std::getline(ss, cell, ',')) out.push_back(cell);
    return out;
  };
  std::string line;
  std::getline(in, line);
  const auto header = split(line);
  std::vector<GoldenRow> rows;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    const auto cells = split(line);
    GoldenRow row;
    for (std::size_t i = 0; i < header.size() && i < cells.size(); ++i) row.cells[header[i]] = cells[i];
    rows.push_back(std::move(row));
  }
  return rows;
}

/// |a - b| <= tol * |b| (relative), treating two NaNs or equal infinities as equal.
inline bool close_rel(double a, double b, double tol) {
  if (std::isnan(a) && std::isnan(b)) return true;
  if (std::isinf(a) || std::isinf(b)) return a == b;
  return std::abs(a - b) <= tol * std::abs(b);
}

}  // namespace herdsim::test
