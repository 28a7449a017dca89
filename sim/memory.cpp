#include "sim/memory.hpp"

#include <fmt/format.h>

#include <algorithm>
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

}  // namespace herdsim::sim
