#pragma once
// The theory library's scalar root finders, one of each kind: Boost's TOMS 748 (bracketing like
// Brent's method, with better asymptotic order) for an equation given only by its values, and a
// safeguarded Newton iteration for one whose derivative comes cheaply with each value (the games'
// best responses, warm-started from the previous sweep). Both to full double precision.
#include <algorithm>
#include <boost/math/tools/roots.hpp>
#include <cmath>
#include <cstdint>
#include <limits>
#include <utility>

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

/// ln(e^a + e^b) without overflow: the upper end of a bracket in log space, e.g. ln(eta0 + bound).
[[nodiscard]] inline double log_add_exp(double a, double b) {
  if (a < b) std::swap(a, b);
  if (b == -std::numeric_limits<double>::infinity()) return a;
  return a + std::log1p(std::exp(b - a));
}

/// Root of an increasing f on [lo, hi] with f(lo) <= 0 <= f(hi) by Newton steps from `guess`,
/// bisecting whenever a step leaves the bracket; f(x) returns {value, derivative} (a pair or
/// anything structured-bindable). Converged when a step is below 2 ulp of max(1, |x|); NaN if it
/// does not settle within 200 evaluations.
template <class F>
double newton_in_bracket(F&& f, double lo, double hi, double guess) {
  double x = std::clamp(guess, lo, hi);
  for (int iter = 0; iter < 200; ++iter) {
    const auto [value, slope] = f(x);
    if (value == 0.0) return x;
    const double step = value / slope;
    const double tol = 2.0 * std::numeric_limits<double>::epsilon() * std::max(1.0, std::abs(x));
    if (std::abs(step) <= tol) return x - step;
    (value < 0.0 ? lo : hi) = x;
    x -= step;
    if (!(x > lo && x < hi)) x = 0.5 * (lo + hi);
    if (hi - lo <= tol) return x;
  }
  return std::numeric_limits<double>::quiet_NaN();
}

}  // namespace herdsim::theory
