#include "tools/cli/export_command.hpp"

#include <fmt/format.h>
#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <iostream>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "io/run_file.hpp"
#include "io/trajectory_csv.hpp"
#include "sim/error.hpp"
#include "sim/memory.hpp"

namespace herdsim::cli {

namespace {

struct ExportFlags {
  std::string run_file;
  std::string population;
  std::string format = "csv";
  std::string output;
  std::string group;
  std::string quantity = "all";
  std::string paths;
  std::string agents;
  double memory_limit_gib = 0.0;
};

/// A whole non-negative integer, or InputError naming the flag.
int parse_index(std::string_view text, const char* flag, std::string_view whole) {
  int value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || value < 0)
    throw InputError(fmt::format("{} {}: '{}' is not a non-negative integer", flag, whole, text));
  return value;
}

/// "0,1,5" -> {0, 1, 5}.
std::vector<int> parse_paths(const std::string& text) {
  std::vector<int> paths;
  std::string_view rest = text;
  while (true) {
    const auto comma = rest.find(',');
    paths.push_back(parse_index(rest.substr(0, comma), "--paths", text));
    if (comma == std::string_view::npos) break;
    rest = rest.substr(comma + 1);
  }
  return paths;
}

/// "A:B" (agents A..B-1), "A:" (from A), ":B" (up to B) or "A" (agent A alone) into the request.
void parse_agents(const std::string& text, io::TrajectoryCsvRequest& request) {
  const auto colon = text.find(':');
  if (colon == std::string::npos) {
    request.agent_begin = parse_index(text, "--agents", text);
    request.agent_end = request.agent_begin + 1;
    return;
  }
  const std::string_view begin = std::string_view(text).substr(0, colon);
  const std::string_view end = std::string_view(text).substr(colon + 1);
  request.agent_begin = begin.empty() ? 0 : parse_index(begin, "--agents", text);
  request.agent_end = end.empty() ? -1 : parse_index(end, "--agents", text);
  if (request.agent_end >= 0 && request.agent_end <= request.agent_begin)
    throw InputError(fmt::format("--agents {}: empty range (write A:B with A < B, B excluded)", text));
}

io::CsvQuantity parse_quantity(const std::string& text) {
  if (text == "wealth") return io::CsvQuantity::wealth;
  if (text == "amount") return io::CsvQuantity::amount;
  if (text == "all") return io::CsvQuantity::all;
  throw InputError(fmt::format("--quantity {}: expected wealth, amount or all", text));
}

int run_export(const ExportFlags& f) {
  try {
    if (f.format != "csv") throw InputError(fmt::format("--format {}: only csv is supported", f.format));
    io::TrajectoryCsvRequest request;
    request.population = f.population;
    request.group = f.group;
    request.quantity = parse_quantity(f.quantity);
    if (!f.paths.empty()) request.paths = parse_paths(f.paths);
    if (!f.agents.empty()) parse_agents(f.agents, request);

    const io::RunFile run(f.run_file);
    const io::TrajectoryCsvPlan plan = io::plan_trajectory_csv(run, request);
    sim::check_memory(io::export_memory_bytes(plan), "this export", "--memory-limit GIB raises the limit",
                      sim::memory_limit_bytes(f.memory_limit_gib));
    if (plan.summaries) {
      std::string columns;
      for (const auto& c : plan.header) {
        if (!columns.empty()) columns += ',';
        columns += c;
      }
      std::cerr << fmt::format(
          "herdsim export: population '{}' was recorded without trajectories (record.trajectories = false); "
          "exporting its summary table instead ({})\n",
          f.population, columns);
    }
    const auto start = std::chrono::steady_clock::now();
    const io::CsvExportStats stats = io::export_trajectory_csv(run, plan, f.output);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const bool to_stdout = f.output.empty() || f.output == "-";
    std::cerr << fmt::format(
        "herdsim export: {} rows, {:.1f} MB to {} in {:.2f} s ({:.3g} rows/s, {:.0f} MB/s)\n", stats.rows,
        static_cast<double>(stats.bytes) / 1e6, to_stdout ? "stdout" : f.output, seconds,
        static_cast<double>(stats.rows) / std::max(seconds, 1e-9),
        static_cast<double>(stats.bytes) / 1e6 / std::max(seconds, 1e-9));
    return 0;
  } catch (const Error& e) {
    std::cout.flush();
    std::cerr << "herdsim export: error: " << e.what() << '\n';
    return 2;
  }
}

}  // namespace

void add_export_command(CLI::App& app) {
  auto flags = std::make_shared<ExportFlags>();
  CLI::App* cmd = app.add_subcommand(
      "export", "write one population's trajectories as a long-format CSV (docs/python.md)");
  cmd->add_option("RUN", flags->run_file, "run file written by `herdsim run` (HDF5)")->required();
  cmd->add_option("--population", flags->population, "population to export")->required();
  cmd->add_option("--format", flags->format, "output format: csv (the only one for now)")
      ->capture_default_str();
  cmd->add_option("-o,--output", flags->output,
                  "output file (written as FILE.partial, then renamed); - or none: stdout");
  cmd->add_option("--group", flags->group,
                  "one run group of a sweep, e.g. /sweep_001 (default: every group)");
  cmd->add_option("--quantity", flags->quantity,
                  "wealth (wealth rows), amount (decision rows: amount, theory_amount) or all")
      ->capture_default_str();
  cmd->add_option("--paths", flags->paths, "only these recorded paths, e.g. 0,1,5 (default: all recorded)");
  cmd->add_option("--agents", flags->agents,
                  "agent range A:B (B excluded), A:, :B or A (default: all recorded)");
  cmd->add_option(
         "--memory-limit", flags->memory_limit_gib,
         "refuse an export whose memory estimate exceeds this many GiB (0: the memory available now)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->callback([flags]() {
    const int code = run_export(*flags);
    if (code != 0) throw CLI::RuntimeError(code);
  });
}

}  // namespace herdsim::cli
