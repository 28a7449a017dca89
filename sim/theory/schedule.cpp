#include "sim/theory/schedule.hpp"

#include <fmt/format.h>

#include "sim/error.hpp"
#include "sim/memory.hpp"

namespace herdsim::theory {

Schedule::Schedule(const Market& market, double horizon, TimeModel time)
    : market_(market), horizon_(horizon), time_(time) {
  if (!(horizon > 0.0) || !std::isfinite(horizon)) {
    throw InputError(fmt::format("horizon must be > 0 years, got {}", horizon));
  }
  if (time.is_discrete()) {
    steps_ = sim::whole_steps(horizon, time.steps_per_year);
    dt_ = 1.0 / time.steps_per_year;
    ln_step_growth_ = std::log1p(market.r * dt_);
  }
}

void Schedule::throw_spread_too_large(double rate_multiple, double spread) {
  throw InputError(
      fmt::format("|{:g} * r| * T = {:g} exceeds {:g}: the plan's quadrature would need more than "
                  "{:g} panels (lower r, rho or the horizon)",
                  rate_multiple, spread, kMaxSpread, kMaxSpread / 2.0));
}

}  // namespace herdsim::theory
