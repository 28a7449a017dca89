#pragma once
// How much memory this process may use, so that sizes are checked before they are allocated: a run, an
// export or a dataset whose estimate exceeds it is refused with both figures instead of dying midway.
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>

#include "sim/scenario_spec.hpp"

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

/// A --memory-limit in GiB as check_memory's limit_bytes: 0 stays 0 (the memory available), anything else
/// at least 1 byte.
[[nodiscard]] std::uint64_t memory_limit_bytes(double gib);

/// a * b for counts (paths, agents, steps, rows, threads): InputError "<what> = a * b = ... exceeds <max>"
/// instead of overflowing, and for a negative factor. The one checked multiply for sizes.
[[nodiscard]] std::int64_t checked_multiply(std::int64_t a, std::int64_t b, std::string_view what,
                                            std::int64_t max = std::numeric_limits<std::int64_t>::max());

/// The number of decision steps of horizon years at steps_per_year decisions a year: InputError unless
/// horizon * steps_per_year is a whole number in [1, 2^31 - 1].
[[nodiscard]] int whole_steps(double horizon, std::int64_t steps_per_year);

/// About the bytes a run of spec holds: per population and path its wealth and amount columns (1 + 2N
/// doubles per agent with N assets), per agent its plan (a double per step and asset) and parameters, per
/// path the market (4 per asset). Counts are
/// multiplied with checked_multiply (InputError when they overflow).
[[nodiscard]] double run_memory_bytes(const ScenarioSpec& spec);

/// A worker thread count: 0 (all cores) or 1..kMaxThreads; InputError naming `flag` otherwise.
inline constexpr int kMaxThreads = 4096;
void check_threads(std::int64_t threads, std::string_view flag);

}  // namespace herdsim::sim
