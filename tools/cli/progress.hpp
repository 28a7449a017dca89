#pragma once
// Progress of a long run: a bar with ETA redrawn in place on a terminal, plain periodic lines
// otherwise (logs, CI). Called from the simulation's progress callback on the main thread.
#include <chrono>
#include <cstdio>
#include <string>

namespace herdsim::cli {

class Progress {
 public:
  /// label: what is running (e.g. "run 2/6"); quiet: print nothing.
  /// unit: what done and total count ("step" for a run's steps).
  Progress(std::string label, bool quiet, std::string unit = "step");
  /// done of total units finished.
  void update(int done, int total);
  /// Starts over under a new label (set-up phases: one after another on one line).
  void restart(std::string label);
  /// Ends the bar's line.
  void finish();

 private:
  using Clock = std::chrono::steady_clock;
  std::string label_;
  std::string unit_;
  bool quiet_;
  bool tty_;
  Clock::time_point start_;
  Clock::time_point last_print_;
  int last_percent_ = -1;
  bool drawn_ = false;
};

}  // namespace herdsim::cli
