#pragma once
// Counts in messages: "1 agent", "2 agents", "1 year". One rule for every message that counts things.
#include <fmt/format.h>

#include <string>
#include <string_view>

namespace herdsim::sim {

/// "n noun" with the plural "-s" unless n is 1 (plural: an irregular plural, when given).
[[nodiscard]] inline std::string counted(long long n, std::string_view noun, std::string_view plural = {}) {
  if (n == 1) return fmt::format("1 {}", noun);
  return plural.empty() ? fmt::format("{} {}s", n, noun) : fmt::format("{} {}", n, plural);
}

}  // namespace herdsim::sim
