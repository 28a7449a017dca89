#include "sim/theory/market.hpp"

#include <fmt/format.h>
#include <cmath>
#include <cstdint>

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
  const auto [a, b] = boost::math::tools::toms748_solve(
      f, lo, hi, boost::math::tools::eps_tolerance<double>(std::numeric_limits<double>::digits - 2),
      max_iter);
  if (max_iter >= 200) throw SolverError(fmt::format("alpha_from_lottery_prob({}) did not converge", p));
  return 0.5 * (a + b);
}

}  // namespace herdsim::theory
