#include "sim/theory/schedule.hpp"

#include <fmt/format.h>

#include "sim/error.hpp"

namespace herdsim::theory {

Schedule::Schedule(const Market& market, double horizon, TimeModel time)
    : market_(market), horizon_(horizon), time_(time) {
  if (!(horizon > 0.0) || !std::isfinite(horizon)) {
    throw InputError(fmt::format("horizon must be > 0 years, got {}", horizon));
  }
  if (time.is_discrete()) {
    if (time.steps_per_year < 1) {
      throw InputError(fmt::format("steps_per_year must be >= 1, got {}", time.steps_per_year));
    }
    const double n = horizon * time.steps_per_year;
    if (std::abs(n - std::round(n)) > 1e-9 * n) {
      throw InputError(fmt::format("horizon * steps_per_year must be a whole number of steps, got {} * {}",
                                   horizon, time.steps_per_year));
    }
    steps_ = static_cast<int>(std::lround(n));
    dt_ = 1.0 / time.steps_per_year;
    ln_step_growth_ = std::log1p(market.r * dt_);
  }
}

}  // namespace herdsim::theory
