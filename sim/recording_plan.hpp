#pragma once
// What a run records, decided once from the validated [record] section and the run's shape: which steps,
// which paths, which agents of each population, whether summaries. The runtime asks the plan which steps
// an observer needs; writers (io/hdf5_output.cpp, a per-rank or other-format writer) only write what the
// plan names, in the shapes it gives. Step numbering follows Observer: state rows s = 0..steps (X_s, S_s),
// decision rows k = 0..steps-1 (P_k and the market move of step k).
#include <algorithm>
#include <string>
#include <vector>

#include "sim/run_state.hpp"
#include "sim/scenario_spec.hpp"

namespace herdsim::sim {

/// Rows of the state datasets of a complete run of `steps` steps recorded every `every`-th step
/// (s = 0, every, 2 every, ... and steps), and of its decision datasets (k = 0, every, ... < steps).
[[nodiscard]] int recorded_state_rows(int steps, int every);
[[nodiscard]] int recorded_decision_rows(int steps, int every);

/// One population as recorded.
struct RecordedPopulation {
  std::string name;
  int count = 0;   ///< agents in the population
  int agents = 0;  ///< trajectories, params and theory cover agents 0..agents-1; 0: no trajectories
  [[nodiscard]] bool trajectories() const { return agents > 0; }
};

class RecordingPlan {
 public:
  /// The plan of `record` for a run shaped like `state` (steps, paths, populations). Throws InputError
  /// for every < 1, compression outside 0..9, or a recorded path outside the run (checked when enabled).
  RecordingPlan(const RecordSpec& record, const RunState& state);

  /// False: nothing is recorded (no observer needed; record.enabled = false).
  [[nodiscard]] bool enabled() const { return record_.enabled; }
  [[nodiscard]] int steps() const { return steps_; }
  [[nodiscard]] int every() const { return record_.every; }
  /// Paths in the run; recorded paths are paths(), sorted and distinct (all of them when none are named).
  [[nodiscard]] int paths_total() const { return paths_total_; }
  [[nodiscard]] const std::vector<int>& paths() const { return paths_; }
  [[nodiscard]] bool all_paths() const { return static_cast<int>(paths_.size()) == paths_total_; }
  /// In the run's population order.
  [[nodiscard]] const std::vector<RecordedPopulation>& populations() const { return populations_; }

  /// Per-step statistics over the recorded paths and all agents (not only the first `agents`): mean,
  /// std, min, max, then quantiles() in order.
  [[nodiscard]] bool summaries() const { return enabled() && record_.summaries; }
  [[nodiscard]] const std::vector<double>& quantiles() const { return record_.quantiles; }
  [[nodiscard]] int stats_per_row() const { return 4 + static_cast<int>(record_.quantiles.size()); }
  /// Whether anything recorded reads amounts (summaries, or some population's trajectories).
  [[nodiscard]] bool records_amounts() const {
    return summaries() || std::any_of(populations_.begin(), populations_.end(),
                                      [](const RecordedPopulation& p) { return p.trajectories(); });
  }
  /// gzip level 0..9 for trajectory datasets.
  [[nodiscard]] int compression() const { return record_.compression; }

  /// State row s (0..steps): every every-th, and the last one always.
  [[nodiscard]] bool records_state(int s) const {
    return enabled() && s >= 0 && s <= steps_ && (s % record_.every == 0 || s == steps_);
  }
  /// Decision row k (0..steps-1): every every-th.
  [[nodiscard]] bool records_decision(int k) const {
    return enabled() && k >= 0 && k < steps_ && k % record_.every == 0;
  }
  /// Whether the observer must see the state after step k (Observer::on_step(k)) to record.
  [[nodiscard]] bool records_after_step(int k) const { return records_decision(k) || records_state(k + 1); }
  /// X_s must be kept at state s for the proportion summary P_s / X_s of the decision recorded at s.
  [[nodiscard]] bool keeps_decision_wealth(int s) const { return summaries() && records_decision(s); }

  /// Rows of the state and decision datasets once the run completes.
  [[nodiscard]] int state_rows() const { return enabled() ? recorded_state_rows(steps_, record_.every) : 0; }
  [[nodiscard]] int decision_rows() const {
    return enabled() ? recorded_decision_rows(steps_, record_.every) : 0;
  }

 private:
  RecordSpec record_;
  int steps_ = 0;
  int paths_total_ = 0;
  std::vector<int> paths_;
  std::vector<RecordedPopulation> populations_;
};

}  // namespace herdsim::sim
