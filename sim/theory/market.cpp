#include "sim/theory/market.hpp"

#include <fmt/format.h>
#include <cmath>
#include <cstdint>
#include <exception>

#include <boost/math/tools/roots.hpp>

#include "sim/error.hpp"

namespace herdsim::theory {

double lottery_prob_from_alpha(double alpha, LotteryConvention lottery) {
  if (alpha == 0.0) return lottery.sure / lottery.win;
  // expm1 keeps full precision for small |alpha| where 1 - e^{-x} cancels.
  return std::expm1(-alpha * lottery.sure) / std::expm1(-alpha * lottery.win);
}

double alpha_from_lottery_prob(double p, LotteryConvention lottery) {
  if (!(p > 0.0 && p < 1.0)) {
    throw InputError(
        fmt::format("lottery probability must lie in (0, 1) to map to a finite alpha, got {}", p));
  }
  if (!(lottery.win > lottery.sure && lottery.sure > 0.0)) {
    throw InputError(
        fmt::format("lottery needs win > sure > 0, got win {} and sure {}", lottery.win, lottery.sure));
  }
  const double p_neutral = lottery.sure / lottery.win;
  if (p == p_neutral) return 0.0;
  auto f = [&](double a) { return lottery_prob_from_alpha(a, lottery) - p; };
  // p is increasing in alpha; grow a bracket on the correct side of 0 by doubling.
  double lo = 0.0;
  double hi = p > p_neutral ? 1.0 / lottery.sure : -1.0 / lottery.sure;
  for (int i = 0; i < 200 && (f(hi) < 0.0) == (p > p_neutral); ++i) {
    lo = hi;
    hi *= 2.0;
  }
  if (hi < lo) std::swap(lo, hi);
  std::uintmax_t max_iter = 200;
  try {
    const auto [a, b] = boost::math::tools::toms748_solve(
        f, lo, hi, boost::math::tools::eps_tolerance<double>(std::numeric_limits<double>::digits - 2),
        max_iter);
    if (max_iter < 200) return 0.5 * (a + b);
  } catch (const std::exception&) {
    // Boost's "do not bracket the root": reported below like a failure to converge.
  }
  throw SolverError(fmt::format("alpha_from_lottery_prob({}) did not converge (lottery win {}, sure {})", p,
                                lottery.win, lottery.sure));
}

std::vector<DomainProblem> market_problems(const Market& m, double horizon) {
  std::vector<DomainProblem> out;
  const double t = std::isfinite(horizon) && horizon > 0.0 ? horizon : 0.0;
  auto check = [&](const char* key, const char* quantity, double value) {
    if (!(std::abs(value) * t <= limits::max_rate_horizon)) {
      out.push_back(
          {key, fmt::format("{} * horizon = {:g} * {:g} must be at most {:g} in absolute value: beyond "
                            "it the model's growth factors overflow double precision",
                            quantity, value, t, limits::max_rate_horizon)});
    }
  };
  check("mu", "mu", m.mu);
  check("r", "r", m.r);
  if (m.sigma < limits::min_sigma) {
    out.push_back(
        {"sigma", fmt::format("sigma = {:g} is below {:g}: the optimal amounts (v / (alpha sigma^2)) "
                              "would overflow double precision",
                              m.sigma, limits::min_sigma)});
  } else {
    check("sigma", "sigma^2", m.sigma * m.sigma);
  }
  return out;
}

std::string alpha_problem(double alpha) {
  if (alpha >= limits::min_alpha && alpha <= limits::max_alpha) return {};
  return fmt::format(
      "CARA alpha {:g} lies outside [{:g}, {:g}] per currency unit: the optimal amounts "
      "v / (alpha sigma^2) would overflow or vanish in double precision",
      alpha, limits::min_alpha, limits::max_alpha);
}

}  // namespace herdsim::theory
