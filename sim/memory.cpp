#include "sim/memory.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>

#include "sim/error.hpp"

namespace herdsim::sim {

namespace {

constexpr std::uint64_t kUnknown = std::uint64_t{1} << 63;

/// The first number in a file ("max" and unreadable files: nothing).
bool read_number(const char* path, std::uint64_t& value) {
  std::ifstream in(path);
  std::string text;
  if (!(in >> text) || text == "max") return false;
  try {
    std::size_t used = 0;
    value = std::stoull(text, &used);
    return used == text.size();
  } catch (const std::exception&) {
    return false;
  }
}

/// MemAvailable of /proc/meminfo, bytes.
std::uint64_t mem_available() {
  std::ifstream in("/proc/meminfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("MemAvailable:", 0) != 0) continue;
    std::istringstream fields(line.substr(13));
    std::uint64_t kib = 0;
    if (fields >> kib) return kib * 1024;
  }
  return kUnknown;
}

/// Room left under the cgroup's limit (v2, then v1), bytes.
std::uint64_t cgroup_room() {
  std::uint64_t limit = 0;
  std::uint64_t usage = 0;
  if (read_number("/sys/fs/cgroup/memory.max", limit) && read_number("/sys/fs/cgroup/memory.current", usage))
    return limit > usage ? limit - usage : 0;
  if (read_number("/sys/fs/cgroup/memory/memory.limit_in_bytes", limit) && limit < kUnknown &&
      read_number("/sys/fs/cgroup/memory/memory.usage_in_bytes", usage))
    return limit > usage ? limit - usage : 0;
  return kUnknown;
}

}  // namespace

std::uint64_t available_memory_bytes() {
  return std::min(mem_available(), cgroup_room());
}

std::string format_bytes(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  int u = 0;
  while (bytes >= 1024.0 && u < 6) {
    bytes /= 1024.0;
    ++u;
  }
  return fmt::format("{:.1f} {}", bytes, units[u]);
}

void check_memory(double estimate_bytes, const std::string& what, const std::string& how_to_raise,
                  std::uint64_t limit_bytes) {
  const std::uint64_t limit = limit_bytes != 0 ? limit_bytes : available_memory_bytes();
  if (estimate_bytes <= static_cast<double>(limit)) return;
  throw InputError(fmt::format("{} needs about {} of memory, more than the {} {}{}", what,
                               format_bytes(estimate_bytes), format_bytes(static_cast<double>(limit)),
                               limit_bytes != 0 ? "allowed" : "available",
                               how_to_raise.empty() ? "" : fmt::format(" ({})", how_to_raise)));
}

std::uint64_t memory_limit_bytes(double gib) {
  if (!(gib > 0.0)) return 0;
  const double bytes = gib * 1024.0 * 1024.0 * 1024.0;
  if (bytes >= 9.2e18) return kUnknown;
  return std::max<std::uint64_t>(1, static_cast<std::uint64_t>(bytes));
}

std::int64_t checked_multiply(std::int64_t a, std::int64_t b, std::string_view what, std::int64_t max) {
  if (a < 0 || b < 0) throw InputError(fmt::format("{} = {} * {}: a count cannot be negative", what, a, b));
  if (a != 0 && b > max / a) {
    throw InputError(fmt::format("{} = {} * {} = {:.4g} exceeds the limit {}", what, a, b,
                                 static_cast<double>(a) * static_cast<double>(b), max));
  }
  return a * b;
}

int whole_steps(double horizon, std::int64_t steps_per_year) {
  if (!(horizon > 0.0) || !std::isfinite(horizon))
    throw InputError(fmt::format("horizon must be > 0 years, got {}", horizon));
  if (steps_per_year < 1)
    throw InputError(fmt::format("steps_per_year must be >= 1, got {}", steps_per_year));
  const double n = horizon * static_cast<double>(steps_per_year);
  if (std::abs(n - std::round(n)) > 1e-9 * std::max(1.0, n) || std::round(n) < 1.0) {
    throw InputError(fmt::format("horizon * steps_per_year must be a whole number of steps, got {} * {} = {}",
                                 horizon, steps_per_year, n));
  }
  constexpr double max = std::numeric_limits<int>::max();
  if (std::round(n) > max) {
    throw InputError(fmt::format("horizon * steps_per_year = {} * {} = {:.4g} steps exceeds the limit {}",
                                 horizon, steps_per_year, n, max));
  }
  return static_cast<int>(std::lround(n));
}

double run_memory_bytes(const ScenarioSpec& spec) {
  const std::int64_t steps = whole_steps(spec.run.horizon, spec.run.steps_per_year);
  const std::int64_t paths = spec.run.paths;
  const std::int64_t assets = spec.market.asset_count();
  double bytes = 8.0 * static_cast<double>(checked_multiply(paths, checked_multiply(assets, 4, "assets * 4"),
                                                            "run.paths * market columns"));
  for (const PopulationSpec& ps : spec.populations) {
    const std::string who = fmt::format("population '{}'", ps.name);
    const std::int64_t slots = checked_multiply(ps.count, paths, who + ": count * run.paths");
    const std::int64_t plan = checked_multiply(checked_multiply(ps.count, steps, who + ": count * steps"),
                                               assets, who + ": plan * assets");
    // wealth, an amount and a previous amount per asset; a plan per asset; a few per-agent parameters.
    bytes += 8.0 * ((2.0 * static_cast<double>(assets) + 1.0) * static_cast<double>(slots) +
                    static_cast<double>(plan) + 8.0 * ps.count);
  }
  return bytes;
}

void check_threads(std::int64_t threads, std::string_view flag) {
  if (threads < 0 || threads > kMaxThreads) {
    throw InputError(
        fmt::format("{} {}: must be 0 (all cores) or a thread count in [1, {}]", flag, threads, kMaxThreads));
  }
}

}  // namespace herdsim::sim
