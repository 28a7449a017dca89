#include "io/theory_report.hpp"

#include <fmt/format.h>
#include <cmath>
#include <nlohmann/json.hpp>

namespace herdsim::io {

namespace {
// JSON has no NaN or infinity; write them as null so that every parser accepts the output.
nlohmann::ordered_json number(double x) {
  return std::isfinite(x) ? nlohmann::ordered_json(x) : nlohmann::ordered_json(nullptr);
}
}  // namespace

void write_table(std::ostream& out, const TheoryReport& report) {
  for (const auto& [key, value] : report.settings) out << fmt::format("{:<14} {}\n", key, value);
  for (const auto& [key, value] : report.scalars) out << fmt::format("{:<14} {:.10g}\n", key, value);
  for (const auto& [key, values] : report.vectors) {
    out << fmt::format("{:<14}", key);
    for (double v : values) out << fmt::format(" {:.8g}", v);
    out << '\n';
  }
  out << '\n';
  for (const auto& c : report.columns) out << fmt::format("{:>14}", c);
  out << '\n';
  for (const auto& row : report.rows) {
    for (double v : row) out << fmt::format("{:>14.8g}", v);
    out << '\n';
  }
}

void write_csv(std::ostream& out, const TheoryReport& report) {
  for (std::size_t j = 0; j < report.columns.size(); ++j) out << (j ? "," : "") << report.columns[j];
  out << '\n';
  for (const auto& row : report.rows) {
    for (std::size_t j = 0; j < row.size(); ++j) out << (j ? "," : "") << fmt::format("{:.17g}", row[j]);
    out << '\n';
  }
}

void write_json(std::ostream& out, const TheoryReport& report) {
  nlohmann::ordered_json doc;
  for (const auto& [key, value] : report.settings) doc[key] = value;
  for (const auto& [key, value] : report.scalars) doc[key] = number(value);
  for (const auto& [key, values] : report.vectors) {
    auto& arr = doc[key] = nlohmann::ordered_json::array();
    for (double v : values) arr.push_back(number(v));
  }
  for (std::size_t j = 0; j < report.columns.size(); ++j) {
    auto& arr = doc[report.columns[j]] = nlohmann::ordered_json::array();
    for (const auto& row : report.rows) arr.push_back(number(row[j]));
  }
  out << doc.dump(2) << '\n';
}

}  // namespace herdsim::io
