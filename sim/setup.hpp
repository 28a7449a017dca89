#pragma once
// Long set-up work (a population's plan solves, a network game) reports here while a simulation is
// built: progress for the front end's display and the front end's cancel flag (Ctrl-C), so that set-up
// answers within a second like the step loop. Without a monitor installed a tick costs one atomic load.
#include <atomic>
#include <functional>
#include <string_view>

namespace herdsim::sim {

struct SetupMonitor {
  const std::atomic<bool>* cancel = nullptr;  ///< set: set-up stops with sim::Interrupted at its next tick
  /// What is being set up, units done, units total; calls are serialised (any thread may tick).
  std::function<void(std::string_view, int, int)> progress;
};

/// Installs a monitor while alive (one at a time; the previous one is restored after).
class ScopedSetupMonitor {
 public:
  explicit ScopedSetupMonitor(SetupMonitor monitor);
  ~ScopedSetupMonitor();
  ScopedSetupMonitor(const ScopedSetupMonitor&) = delete;
  ScopedSetupMonitor& operator=(const ScopedSetupMonitor&) = delete;

 private:
  SetupMonitor monitor_;
  SetupMonitor* previous_;
};

/// Called by set-up loops between units of work, from any thread: throws Interrupted once the installed
/// monitor's cancel flag is set; reports done of total units of `what`.
void setup_tick(std::string_view what, int done, int total);

}  // namespace herdsim::sim
