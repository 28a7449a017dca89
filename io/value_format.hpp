#pragma once
/// How io/'s reports (compare, evaluate) write numbers: in JSON a non-finite value is null (JSON has no
/// NaN or infinity), in Markdown tables 4 significant digits and a dash for a value that does not exist.

#include <fmt/format.h>

#include <Eigen/Core>
#include <cmath>
#include <nlohmann/json.hpp>
#include <string>

namespace herdsim::io {

/// x, or null where x is NaN or infinite.
inline nlohmann::json json_number(double x) {
  return std::isfinite(x) ? nlohmann::json(x) : nlohmann::json(nullptr);
}

/// A matrix as an array of its rows, each entry through json_number.
inline nlohmann::json json_rows(const Eigen::MatrixXd& m) {
  nlohmann::json out = nlohmann::json::array();
  for (Eigen::Index r = 0; r < m.rows(); ++r) {
    nlohmann::json row = nlohmann::json::array();
    for (Eigen::Index c = 0; c < m.cols(); ++c) row.push_back(json_number(m(r, c)));
    out.push_back(row);
  }
  return out;
}

/// A Markdown table cell: 4 significant digits, "—" where x is NaN or infinite.
inline std::string markdown_number(double x) {
  return std::isfinite(x) ? fmt::format("{:.4g}", x) : std::string("—");
}

}  // namespace herdsim::io
