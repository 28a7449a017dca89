#pragma once
// How much memory this process may use, so that sizes are checked before they are allocated: a run, an
// export or a dataset whose estimate exceeds it is refused with both figures instead of dying midway.
#include <cstdint>
#include <string>

namespace herdsim::sim {

/// Bytes this process can still allocate without swapping or being killed: the kernel's MemAvailable,
/// capped by the cgroup's memory limit minus its usage (containers, batch schedulers). When nothing can
/// be read: 2^63 (no limit known).
[[nodiscard]] std::uint64_t available_memory_bytes();

/// "1.5 GiB": bytes in binary units with one decimal.
[[nodiscard]] std::string format_bytes(double bytes);

/// Throws InputError "<what> needs about X of memory, more than the Y available (<how to raise>)" when
/// estimate_bytes > limit_bytes. limit_bytes = 0: available_memory_bytes().
void check_memory(double estimate_bytes, const std::string& what, const std::string& how_to_raise,
                  std::uint64_t limit_bytes = 0);

}  // namespace herdsim::sim
