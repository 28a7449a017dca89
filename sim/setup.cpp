#include "sim/setup.hpp"

#include <fmt/format.h>

#include <mutex>

#include "sim/simulation.hpp"

namespace herdsim::sim {

namespace {
std::atomic<SetupMonitor*> g_monitor{nullptr};
std::mutex g_progress_mutex;
}  // namespace

ScopedSetupMonitor::ScopedSetupMonitor(SetupMonitor monitor)
    : monitor_(std::move(monitor)), previous_(g_monitor.exchange(&monitor_)) {}

ScopedSetupMonitor::~ScopedSetupMonitor() {
  g_monitor.store(previous_);
}

void setup_tick(std::string_view what, int done, int total) {
  const SetupMonitor* monitor = g_monitor.load(std::memory_order_acquire);
  if (monitor == nullptr) return;
  if (monitor->cancel != nullptr && monitor->cancel->load())
    throw Interrupted(fmt::format("interrupted while setting up ({})", what));
  if (monitor->progress) {
    const std::scoped_lock lock(g_progress_mutex);
    monitor->progress(what, done, total);
  }
}

}  // namespace herdsim::sim
