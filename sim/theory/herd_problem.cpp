#include "sim/theory/herd_problem.hpp"

#include <fmt/format.h>
#include <cmath>

#include "sim/error.hpp"

namespace herdsim::theory {

namespace {
void check_positive(const char* name, double value) {
  if (!(value > 0.0) || !std::isfinite(value)) {
    throw InputError(fmt::format("{} must be > 0 and finite, got {}", name, value));
  }
}
void check_finite(const char* name, double value) {
  if (!std::isfinite(value)) throw InputError(fmt::format("{} must be finite, got {}", name, value));
}
}  // namespace

void validate(const HerdProblem& p) {
  check_positive("alpha", p.alpha);
  check_positive("alpha_leader", p.alpha_leader);
  check_positive("sigma", p.market.sigma);
  check_finite("x0", p.x0);  // CARA allows any initial wealth; replanning agents may be under water
  check_positive("horizon", p.horizon);
  check_finite("mu", p.market.mu);
  check_finite("r", p.market.r);
  check_finite("rho", p.rho);
  if (!(p.theta >= 0.0) || !std::isfinite(p.theta)) {
    throw InputError(fmt::format("theta must be >= 0 and finite, got {}", p.theta));
  }
  (void)p.schedule();  // validates the discrete step count
}

}  // namespace herdsim::theory
