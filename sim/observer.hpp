#pragma once
// Observers hang off the step loop: what they do with the state is theirs, how the step loop runs is not
// their business. A recording observer follows a RecordingPlan (sim/recording_plan.hpp), which decides what
// is recorded. Callbacks run on the calling thread, between steps, in a fixed order.
#include "sim/run_state.hpp"

namespace herdsim::sim {

class RecordingPlan;

class Observer {
 public:
  Observer() = default;
  Observer(const Observer&) = delete;
  Observer& operator=(const Observer&) = delete;
  virtual ~Observer() = default;
  /// Before the first step: wealth = X_0, price = S_0, amounts undefined.
  virtual void on_start(const RunState& state) = 0;
  /// After step k (0..steps-1) has settled: amount = P_k (when reads_amounts()), wealth = X_{k+1},
  /// price = S_{k+1}, simple_return and shock of step k.
  virtual void on_step(int k, const RunState& state) = 0;
  /// The run completed. Not called when the run fails or is interrupted.
  virtual void on_finish(const RunState& state) = 0;
  /// The plan a recording observer follows: on_step may then be called only after the steps it needs
  /// (records_after_step; the fused kernel runs between them). nullptr: the observer reads every step.
  [[nodiscard]] virtual const RecordingPlan* recording_plan() const { return nullptr; }
  /// False: on_step and on_finish read no amount or previous_amount; a fused run may then leave a plan's
  /// amounts empty (0 x 0) while it runs (Simulation::state() fills them in afterwards).
  [[nodiscard]] virtual bool reads_amounts() const { return true; }
};

}  // namespace herdsim::sim
