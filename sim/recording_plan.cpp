#include "sim/recording_plan.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <numeric>

#include "sim/error.hpp"

namespace herdsim::sim {

RecordingPlan::RecordingPlan(const RecordSpec& record, const RunState& state)
    : record_(record), steps_(state.steps), paths_total_(state.paths) {
  if (record_.every < 1) throw InputError(fmt::format("record.every must be >= 1, got {}", record_.every));
  if (record_.compression < 0 || record_.compression > 9) {
    throw InputError(fmt::format("record.compression must be in 0..9, got {}", record_.compression));
  }
  populations_.reserve(state.populations.size());
  if (!enabled()) {
    for (const auto& pop : state.populations) populations_.push_back({pop.name, pop.count, 0});
    return;
  }

  paths_ = record_.paths;
  if (paths_.empty()) {
    paths_.resize(static_cast<std::size_t>(paths_total_));
    std::iota(paths_.begin(), paths_.end(), 0);
  }
  // Sorted and distinct: a writer walks memory selections in increasing order.
  std::sort(paths_.begin(), paths_.end());
  paths_.erase(std::unique(paths_.begin(), paths_.end()), paths_.end());
  for (const int p : paths_) {
    if (p < 0 || p >= paths_total_) {
      throw InputError(
          fmt::format("record.paths: path {} is out of range (the run has {} paths)", p, paths_total_));
    }
  }

  for (const auto& pop : state.populations) {
    const int first = record_.max_agents < 0 ? pop.count : std::min(record_.max_agents, pop.count);
    populations_.push_back({pop.name, pop.count, record_.trajectories ? first : 0});
  }
}

int recorded_state_rows(int steps, int every) {
  return steps / every + 1 + (steps % every != 0 ? 1 : 0);
}

int recorded_decision_rows(int steps, int every) {
  return steps < 1 ? 0 : (steps - 1) / every + 1;
}

}  // namespace herdsim::sim
