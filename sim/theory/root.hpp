#pragma once
// One bracketed root finder for every scalar equation of the theory library: Boost's TOMS 748
// (bracketing like Brent's method, with better asymptotic order), to full double precision.
#include <boost/math/tools/roots.hpp>
#include <cmath>
#include <cstdint>
#include <limits>

namespace herdsim::theory {

/// Outcome of a bracketed root search; never a silent value: check `converged`.
struct RootResult {
  double value = 0.0;  ///< midpoint of the final bracket
  double lo = 0.0;     ///< final bracket
  double hi = 0.0;
  bool converged = false;
};

/// Root of f on [lo, hi] given f(lo) = f_lo and f(hi) = f_hi of opposite sign (or one zero).
/// Converged when the bracket is below 4 ulp of max(1, |x|), i.e. ~1e-15 absolute on ln eta.
template <class F>
RootResult find_root_bracketed(F&& f, double lo, double hi, double f_lo, double f_hi, int max_iter = 200) {
  if (f_lo == 0.0) return {lo, lo, lo, true};
  if (f_hi == 0.0) return {hi, hi, hi, true};
  if ((f_lo < 0.0) == (f_hi < 0.0)) return {std::nan(""), lo, hi, false};
  auto tol = [](double a, double b) {
    return std::abs(b - a) <=
           4.0 * std::numeric_limits<double>::epsilon() * std::max(1.0, std::min(std::abs(a), std::abs(b)));
  };
  std::uintmax_t iters = static_cast<std::uintmax_t>(max_iter);
  const auto [a, b] = boost::math::tools::toms748_solve(f, lo, hi, f_lo, f_hi, tol, iters);
  return {0.5 * (a + b), a, b, iters < static_cast<std::uintmax_t>(max_iter) || tol(a, b)};
}

}  // namespace herdsim::theory
