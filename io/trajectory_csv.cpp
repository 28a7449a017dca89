#include "io/trajectory_csv.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <set>
#include <string_view>

#include "io/hdf5_schema.hpp"
#include "io/output_file.hpp"
#include "sim/error.hpp"
#include "sim/memory.hpp"

namespace herdsim::io {

namespace {

/// Output is built in memory and handed to the stream in blocks of about this size.
constexpr std::size_t kFlushBytes = std::size_t{1} << 20;

std::string join(const std::vector<std::string>& items, const char* separator = ", ") {
  std::string out;
  for (const auto& item : items) {
    if (!out.empty()) out += separator;
    out += item;
  }
  return out;
}

std::string join_ints(const std::vector<int>& items) {
  std::string out;
  for (const int item : items) out += fmt::format("{}{}", out.empty() ? "" : ", ", item);
  return out;
}

/// Appends x as the shortest text that reads back as the same float64 (fmt's "{}"), plus ".0" on an
/// integral value ("1.0", not "1") so that a float column reads as float (pandas, R) whatever its values.
template <class Out>  // std::string or fmt::memory_buffer
void append_number(Out& out, double x) {
  const std::size_t start = out.size();
  fmt::format_to(std::back_inserter(out), "{}", x);
  for (std::size_t i = start; i < out.size(); ++i) {
    const char c = out[i];
    if (c != '-' && (c < '0' || c > '9')) return;  // has '.', 'e', or is nan/inf
  }
  out.append(std::string_view(".0"));
}

bool has_wealth_rows(CsvQuantity q) {
  return q != CsvQuantity::amount;
}
bool has_decision_columns(CsvQuantity q) {
  return q != CsvQuantity::wealth;
}

/// The summary datasets an export of `quantity` holds.
std::vector<std::string> summary_quantities(CsvQuantity q) {
  switch (q) {
    case CsvQuantity::wealth:
      return {std::string(schema::kWealth)};
    case CsvQuantity::amount:
      return {std::string(schema::kAmount), std::string(schema::kProportion)};
    case CsvQuantity::all:
      break;
  }
  return {std::string(schema::kWealth), std::string(schema::kAmount), std::string(schema::kProportion)};
}

/// Buffers formatted text and hands it to the stream in large blocks.
class BlockWriter {
 public:
  explicit BlockWriter(std::ostream& out) : out_(out) {}
  fmt::memory_buffer& buffer() { return buffer_; }
  void maybe_flush() {
    if (buffer_.size() >= kFlushBytes) flush();
  }
  void flush() {
    if (buffer_.size() == 0) return;
    out_.write(buffer_.data(), static_cast<std::streamsize>(buffer_.size()));
    if (!out_) throw IoError(fmt::format("writing the CSV failed: {}", std::strerror(errno)));
    bytes_ += buffer_.size();
    buffer_.clear();
  }
  [[nodiscard]] std::uint64_t bytes() const { return bytes_; }

 private:
  std::ostream& out_;
  fmt::memory_buffer buffer_;
  std::uint64_t bytes_ = 0;
};

void write_trajectory_group(const RunFile& file, const TrajectoryCsvPlan& plan,
                            const TrajectoryCsvPlan::Group& g, BlockWriter& writer, CsvExportStats& stats) {
  const RunGroupInfo& info = g.info;
  const std::string& group = info.group;
  const int a0 = g.agent_begin;
  const int agents = g.agent_end - g.agent_begin;
  const auto rows_d = static_cast<int>(info.decision_steps.size());
  const auto rows_s = static_cast<int>(info.wealth_steps.size());
  // Wealth row r and decision row r are the same step for r < D (docs/hdf5-schema.md); the last
  // wealth row, step n, has no decision.
  for (int r = 0; r < std::min(rows_d, rows_s); ++r) {
    if (info.wealth_steps[static_cast<std::size_t>(r)] != info.decision_steps[static_cast<std::size_t>(r)])
      throw IoError(fmt::format("{}: wealth row {} is step {} but decision row {} is step {}", group, r,
                                info.wealth_steps[static_cast<std::size_t>(r)], r,
                                info.decision_steps[static_cast<std::size_t>(r)]));
  }

  // Per-agent text that is the same on every row: ",param1,param2,...".
  std::vector<std::string> tails(static_cast<std::size_t>(agents));
  for (const auto& name : plan.params) {
    const bool present =
        std::find(g.population.params.begin(), g.population.params.end(), name) != g.population.params.end();
    const Eigen::VectorXd values = present ? file.param(group, plan.population, name) : Eigen::VectorXd();
    for (int a = 0; a < agents; ++a) {
      auto& tail = tails[static_cast<std::size_t>(a)];
      tail += ',';
      if (present) append_number(tail, values[a0 + a]);
    }
  }
  const bool decisions = has_decision_columns(plan.quantity);
  const bool wealth_rows = has_wealth_rows(plan.quantity);
  // One entry per asset (one with a single asset): theory M x n, amount agents x P, theory text per agent.
  const int assets = std::max<int>(1, static_cast<int>(plan.assets.size()));
  std::vector<Eigen::MatrixXd> theory(static_cast<std::size_t>(assets));
  if (decisions && g.population.has_theory)
    for (int k = 0; k < assets; ++k)
      theory[static_cast<std::size_t>(k)] = file.theory_amount(group, plan.population, k);

  Eigen::MatrixXd wealth;
  std::vector<Eigen::MatrixXd> amount(static_cast<std::size_t>(assets));
  std::vector<std::string> theory_text(static_cast<std::size_t>(agents) * static_cast<std::size_t>(assets));
  auto& buf = writer.buffer();
  const int rows = wealth_rows ? rows_s : rows_d;
  for (int r = 0; r < rows; ++r) {
    const auto ru = static_cast<std::size_t>(r);
    const int step = wealth_rows ? info.wealth_steps[ru] : info.decision_steps[ru];
    const bool has_decision = decisions && r < rows_d;
    if (wealth_rows)
      file.read_row(group, plan.population, std::string(schema::kWealth), r, wealth, a0, agents);
    if (has_decision) {
      for (int k = 0; k < assets; ++k) {
        const auto ku = static_cast<std::size_t>(k);
        file.read_row(group, plan.population, std::string(schema::kAmount), r, amount[ku], a0, agents, k);
        for (int a = 0; a < agents; ++a) {
          auto& text = theory_text[static_cast<std::size_t>(a) * static_cast<std::size_t>(assets) + ku];
          text.clear();
          if (theory[ku].size() > 0 && step < theory[ku].cols())
            append_number(text, theory[ku](a0 + a, step));
        }
      }
    }
    std::string prefix = fmt::format("{},{},", group, step);
    append_number(prefix, info.wealth_times[ru]);
    prefix += ',';
    for (const int column : g.path_columns) {
      const int path = info.paths[static_cast<std::size_t>(column)];
      for (int a = 0; a < agents; ++a) {
        buf.append(prefix);
        fmt::format_to(std::back_inserter(buf), "{},{}", path, a0 + a);
        if (wealth_rows) {
          buf.push_back(',');
          append_number(buf, wealth(a, column));
        }
        if (has_decision) {
          for (int k = 0; k < assets; ++k) {
            buf.push_back(',');
            append_number(buf, amount[static_cast<std::size_t>(k)](a, column));
          }
          for (int k = 0; k < assets; ++k) {
            buf.push_back(',');
            buf.append(theory_text[static_cast<std::size_t>(a) * static_cast<std::size_t>(assets) +
                                   static_cast<std::size_t>(k)]);
          }
        } else if (decisions) {
          for (int k = 0; k < assets; ++k) buf.append(std::string_view(",,"));
        }
        buf.append(tails[static_cast<std::size_t>(a)]);
        buf.push_back('\n');
        writer.maybe_flush();
      }
    }
    stats.rows += static_cast<std::uint64_t>(g.path_columns.size()) * static_cast<std::uint64_t>(agents);
  }
}

void write_summary_group(const RunFile& file, const TrajectoryCsvPlan& plan,
                         const TrajectoryCsvPlan::Group& g, BlockWriter& writer, CsvExportStats& stats) {
  const RunGroupInfo& info = g.info;
  auto& buf = writer.buffer();
  for (const auto& quantity : summary_quantities(plan.quantity)) {
    const Eigen::MatrixXd table = file.summary(info.group, plan.population, quantity);  // Q x rows
    const bool wealth = quantity == schema::kWealth;
    const std::vector<int>& steps = wealth ? info.wealth_steps : info.decision_steps;
    if (table.cols() != static_cast<Eigen::Index>(steps.size()) ||
        table.rows() != static_cast<Eigen::Index>(plan.stats.size()))
      throw IoError(fmt::format("{}: summary/{} of {} is {} x {}, expected {} rows of {} stats", info.group,
                                quantity, plan.population, table.cols(), table.rows(), steps.size(),
                                plan.stats.size()));
    for (std::size_t r = 0; r < steps.size(); ++r) {
      // Decision row r is the step of wealth row r, so its t is wealth_times[r].
      fmt::format_to(std::back_inserter(buf), "{},{},", info.group, steps[r]);
      append_number(buf, info.wealth_times[r]);
      buf.push_back(',');
      buf.append(quantity);
      for (Eigen::Index q = 0; q < table.rows(); ++q) {
        buf.push_back(',');
        append_number(buf, table(q, static_cast<Eigen::Index>(r)));
      }
      buf.push_back('\n');
      writer.maybe_flush();
      ++stats.rows;
    }
  }
}

}  // namespace

TrajectoryCsvPlan plan_trajectory_csv(const RunFile& file, const TrajectoryCsvRequest& request) {
  TrajectoryCsvPlan plan;
  plan.population = request.population;
  plan.quantity = request.quantity;
  const auto& all_groups = file.info().groups;
  if (all_groups.empty())
    throw InputError(fmt::format("{} holds no recorded run (record.enabled = false)", file.path()));

  std::vector<std::string> groups = all_groups;
  if (!request.group.empty()) {
    const std::string wanted = request.group.front() == '/' ? request.group : "/" + request.group;
    if (std::find(all_groups.begin(), all_groups.end(), wanted) == all_groups.end())
      throw InputError(fmt::format("--group {}: {} has no such group; its groups: {}", request.group,
                                   file.path(), join(all_groups)));
    groups = {wanted};
  }
  if (request.agent_begin < 0 || (request.agent_end >= 0 && request.agent_end <= request.agent_begin))
    throw InputError(
        fmt::format("--agents {}:{} is an empty or negative range", request.agent_begin, request.agent_end));

  std::set<std::string> params;
  for (const auto& name : groups) {
    TrajectoryCsvPlan::Group g;
    g.info = file.group(name);
    const std::vector<std::string> assets =
        g.info.assets > 1 ? g.info.asset_names : std::vector<std::string>{};
    if (name != groups.front() && assets != plan.assets)
      throw InputError(fmt::format(
          "the run groups of {} differ in their assets; export one group at a time (--group)", file.path()));
    plan.assets = assets;
    const PopulationInfo* pop = g.info.population(request.population);
    if (pop == nullptr) {
      std::vector<std::string> names;
      for (const auto& p : g.info.populations) names.push_back(p.name);
      throw InputError(fmt::format("no population '{}' in {}{}; available: {}", request.population,
                                   file.path(), name == "/" ? "" : " " + name,
                                   names.empty() ? "none" : join(names)));
    }
    g.population = *pop;
    const bool summaries = !pop->has_trajectories;
    if (name != groups.front() && summaries != plan.summaries)
      throw InputError(
          fmt::format("population '{}' has trajectories in some groups and not in others; "
                      "export one group at a time (--group)",
                      request.population));
    plan.summaries = summaries;

    if (summaries) {
      if (pop->summary_stats.empty())
        throw InputError(
            fmt::format("population '{}' has neither trajectories nor summaries in {}{}: nothing to "
                        "export",
                        request.population, file.path(), name == "/" ? "" : " " + name));
      if (!request.paths.empty() || request.agent_begin != 0 || request.agent_end >= 0)
        throw InputError(
            fmt::format("population '{}' was recorded without trajectories (record.trajectories = "
                        "false): only its summaries over all paths and agents can be exported, so "
                        "--paths and --agents do not apply",
                        request.population));
      if (plan.stats.empty()) plan.stats = pop->summary_stats;
      if (pop->summary_stats != plan.stats)
        throw InputError(
            fmt::format("the summary statistics of '{}' differ between groups; export one group at a "
                        "time (--group)",
                        request.population));
      plan.groups.push_back(std::move(g));
      continue;
    }

    const int m = pop->recorded_agents;
    g.agent_begin = request.agent_begin;
    g.agent_end = request.agent_end < 0 ? m : request.agent_end;
    if (g.agent_end > m || g.agent_begin >= m)
      throw InputError(fmt::format("--agents {}:{} is outside the {} recorded agents (0:{}) of '{}'{}",
                                   request.agent_begin, g.agent_end, m, m, request.population,
                                   name == "/" ? "" : " in " + name));
    const auto& axis = g.info.paths;
    if (request.paths.empty()) {
      for (std::size_t j = 0; j < axis.size(); ++j) g.path_columns.push_back(static_cast<int>(j));
    } else {
      for (const int p : request.paths) {
        if (std::find(axis.begin(), axis.end(), p) == axis.end())
          throw InputError(fmt::format("--paths: path {} was not recorded{}; recorded paths: {}", p,
                                       name == "/" ? "" : " in " + name, join_ints(axis)));
      }
      for (std::size_t j = 0; j < axis.size(); ++j) {
        if (std::find(request.paths.begin(), request.paths.end(), axis[j]) != request.paths.end())
          g.path_columns.push_back(static_cast<int>(j));
      }
    }
    params.insert(pop->params.begin(), pop->params.end());
    plan.groups.push_back(std::move(g));
  }

  if (plan.summaries) {
    plan.header = {"group", "step", "t", "quantity"};
    plan.header.insert(plan.header.end(), plan.stats.begin(), plan.stats.end());
    return plan;
  }
  plan.params.assign(params.begin(), params.end());
  plan.header = {"group", "step", "t", "path", "agent"};
  if (has_wealth_rows(plan.quantity)) plan.header.emplace_back("wealth");
  if (has_decision_columns(plan.quantity)) {
    if (plan.assets.empty()) {
      plan.header.emplace_back("amount");
      plan.header.emplace_back("theory_amount");
    }
    for (const auto& a : plan.assets) plan.header.push_back("amount_" + a);
    for (const auto& a : plan.assets) plan.header.push_back("theory_amount_" + a);
  }
  for (const auto& p : plan.params) {
    // A parameter never shadows a fixed column.
    const bool clash = std::find(plan.header.begin(), plan.header.end(), p) != plan.header.end();
    plan.header.push_back(clash ? "param_" + p : p);
  }
  return plan;
}

CsvExportStats write_trajectory_csv(const RunFile& file, const TrajectoryCsvPlan& plan, std::ostream& out) {
  CsvExportStats stats;
  BlockWriter writer(out);
  auto& buf = writer.buffer();
  const std::string header = join(plan.header, ",");
  buf.append(header);
  buf.push_back('\n');
  for (const auto& g : plan.groups) {
    if (plan.summaries) {
      write_summary_group(file, plan, g, writer, stats);
    } else {
      write_trajectory_group(file, plan, g, writer, stats);
    }
  }
  writer.flush();
  out.flush();
  if (!out) throw IoError(fmt::format("writing the CSV failed: {}", std::strerror(errno)));
  stats.bytes = writer.bytes();
  return stats;
}

double export_memory_bytes(const TrajectoryCsvPlan& plan) {
  double largest = 0.0;
  for (const auto& g : plan.groups) {
    const std::int64_t agents = g.agent_end - g.agent_begin;
    const std::int64_t slots =
        sim::checked_multiply(agents, static_cast<std::int64_t>(g.path_columns.size()), "agents * paths");
    const std::int64_t plan_values =
        g.population.has_theory
            ? sim::checked_multiply(g.population.recorded_agents,
                                    g.info.steps * std::max<int>(1, static_cast<int>(plan.assets.size())),
                                    "recorded agents * steps * assets")
            : 0;
    const double text = 32.0 * static_cast<double>(agents) * static_cast<double>(plan.params.size() + 1);
    largest = std::max(largest, 16.0 * static_cast<double>(slots) *
                                        std::max<double>(1.0, static_cast<double>(plan.assets.size())) +
                                    8.0 * static_cast<double>(plan_values) + text);
  }
  return largest;
}

CsvExportStats export_trajectory_csv(const RunFile& file, const TrajectoryCsvPlan& plan,
                                     const std::string& path) {
  if (path.empty() || path == "-") return write_trajectory_csv(file, plan, std::cout);
  // Claimed (checked, locked) before a row is read; removed again if the export fails.
  OutputFile output(path, OutputFile::OnFailure::remove, "-o", {file.path()});
  std::vector<char> stream_buffer(kFlushBytes);
  std::ofstream out;
  out.rdbuf()->pubsetbuf(stream_buffer.data(), static_cast<std::streamsize>(stream_buffer.size()));
  out.open(output.partial_path(), std::ios::binary);
  if (!out) throw IoError(fmt::format("cannot open {}: {}", output.partial_path(), std::strerror(errno)));
  const CsvExportStats stats = write_trajectory_csv(file, plan, out);
  out.close();
  if (out.fail())
    throw IoError(fmt::format("closing {} failed: {}", output.partial_path(), std::strerror(errno)));
  output.commit();  // the commit point: a file named PATH is always complete
  return stats;
}

}  // namespace herdsim::io
