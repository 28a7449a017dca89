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
  Progress(std::string label, bool quiet);
  /// done of total units finished.
  void update(int done, int total);
  /// Ends the bar's line.
  void finish();

 private:
  using Clock = std::chrono::steady_clock;
  std::string label_;
  bool quiet_;
  bool tty_;
  Clock::time_point start_;
  Clock::time_point last_print_;
  int last_percent_ = -1;
  bool drawn_ = false;
};

}  // namespace herdsim::cli
