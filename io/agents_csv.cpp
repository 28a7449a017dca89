#include "io/agents_csv.hpp"

#include <fmt/format.h>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <vector>

#include "sim/error.hpp"

namespace herdsim::io {

namespace {

std::vector<std::string> split_csv(const std::string& line) {
  std::vector<std::string> cells;
  std::stringstream ss(line);
  std::string cell;
  while (std::getline(ss, cell, ',')) {
    const auto first = cell.find_first_not_of(" \t\r");
    const auto last = cell.find_last_not_of(" \t\r");
    cells.push_back(first == std::string::npos ? "" : cell.substr(first, last - first + 1));
  }
  if (!line.empty() && line.back() == ',') cells.emplace_back();
  return cells;
}

bool parse_number(const std::string& text, double& out) {
  if (text.empty()) return false;
  char* end = nullptr;
  errno = 0;
  out = std::strtod(text.c_str(), &end);
  return errno == 0 && end == text.c_str() + text.size() && std::isfinite(out);
}

/// Every problem of the file at once, one per line.
[[noreturn]] void throw_problems(const std::string& path, const std::vector<std::string>& problems) {
  std::string msg = fmt::format("{}: invalid agents file:", path);
  for (const auto& p : problems) {
    msg += "\n  ";
    msg += p;
  }
  throw InputError(msg);
}

}  // namespace

theory::MutualGame read_agents_csv(const std::string& path, theory::LotteryConvention lottery) {
  std::ifstream file(path, std::ios::binary);
  if (!file) throw IoError(fmt::format("cannot open agents file '{}'", path));
  std::ostringstream text;
  text << file.rdbuf();
  if (file.bad()) throw IoError(fmt::format("cannot read agents file '{}'", path));
  return parse_agents_csv(text.str(), path, lottery);
}

theory::MutualGame parse_agents_csv(std::string_view csv, const std::string& path,
                                    theory::LotteryConvention lottery) {
  std::istringstream in{std::string(csv)};
  std::vector<std::string> problems;
  std::vector<std::string> header;
  std::vector<std::pair<int, std::vector<std::string>>> rows;  // line number, cells
  std::string line;
  for (int line_no = 1; std::getline(in, line); ++line_no) {
    if (line.find_first_not_of(" \t\r") == std::string::npos || line[line.find_first_not_of(" \t")] == '#') {
      continue;
    }
    if (header.empty()) {
      header = split_csv(line);
    } else {
      rows.emplace_back(line_no, split_csv(line));
    }
  }
  if (header.empty()) throw InputError(fmt::format("{}: empty agents file (expected a header row)", path));

  const auto n = static_cast<int>(rows.size());
  const bool by_prob = header[0] == "lottery_prob";
  if (header[0] != "alpha" && !by_prob) {
    problems.push_back(fmt::format("header column 1 must be 'alpha' or 'lottery_prob', got '{}'", header[0]));
  }
  if (header.size() < 2 || header[1] != "x0") {
    problems.push_back(
        fmt::format("header column 2 must be 'x0', got '{}'", header.size() < 2 ? "" : header[1]));
  }
  const bool by_score = header.size() > 2 && header[2].rfind("score_", 0) == 0;
  const std::string prefix = by_score ? "score_" : "theta_";
  if (static_cast<int>(header.size()) != n + 2) {
    problems.push_back(
        fmt::format("header has {} theta columns but the file has {} agents; expected {}0..{}{}",
                    header.size() < 2 ? 0 : header.size() - 2, n, prefix, prefix, n - 1));
  } else {
    for (int j = 0; j < n; ++j) {
      const std::string expect = prefix + std::to_string(j);
      if (header[static_cast<std::size_t>(j) + 2] != expect) {
        problems.push_back(fmt::format("header column {} must be '{}', got '{}'", j + 3, expect,
                                       header[static_cast<std::size_t>(j) + 2]));
      }
    }
  }
  if (!problems.empty() || n == 0) {
    if (n == 0) problems.emplace_back("no agent rows");
    throw_problems(path, problems);
  }

  theory::MutualGame game;
  game.alpha.resize(n);
  game.x0.resize(n);
  std::vector<Eigen::Triplet<double>> triplets;
  for (int i = 0; i < n; ++i) {
    const auto& [line_no, cells] = rows[static_cast<std::size_t>(i)];
    if (cells.size() != header.size()) {
      problems.push_back(
          fmt::format("line {}: expected {} values, got {}", line_no, header.size(), cells.size()));
      continue;
    }
    double a = 0.0;
    if (!parse_number(cells[0], a)) {
      problems.push_back(fmt::format("line {}: {} is not a number: '{}'", line_no, header[0], cells[0]));
    } else if (by_prob) {
      if (!(a > lottery.sure / lottery.win && a < 1.0)) {
        problems.push_back(
            fmt::format("line {}: lottery_prob must lie in ({}, 1) for a positive alpha, got {}", line_no,
                        lottery.sure / lottery.win, a));
      } else {
        a = theory::alpha_from_lottery_prob(a, lottery);
      }
    } else if (!(a > 0.0)) {
      problems.push_back(fmt::format("line {}: alpha must be > 0, got {}", line_no, a));
    }
    game.alpha[i] = a;
    double x0 = 0.0;
    if (!parse_number(cells[1], x0) || !(x0 > 0.0)) {
      problems.push_back(fmt::format("line {}: x0 must be a number > 0, got '{}'", line_no, cells[1]));
    }
    game.x0[i] = x0;
    for (int j = 0; j < n; ++j) {
      const std::string& text = cells[static_cast<std::size_t>(j) + 2];
      double th = 0.0;
      if (!parse_number(text, th) || th < 0.0) {
        problems.push_back(
            fmt::format("line {}: {}{} must be a number >= 0, got '{}'", line_no, prefix, j, text));
        continue;
      }
      if (by_score) th = theory::theta_from_score(th);
      if (i == j && th != 0.0) {
        problems.push_back(fmt::format("line {}: {}{} is agent {}'s weight on itself and must be 0, got {}",
                                       line_no, prefix, j, i, text));
        continue;
      }
      if (th != 0.0) triplets.emplace_back(i, j, th);
    }
  }
  if (!problems.empty()) {
    throw_problems(path, problems);
  }
  game.theta.resize(n, n);
  game.theta.setFromTriplets(triplets.begin(), triplets.end());
  return game;
}

}  // namespace herdsim::io
