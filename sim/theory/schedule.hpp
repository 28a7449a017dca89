#pragma once
// The time axis of an investment problem: continuous trading on [0, T] or n = T * steps_per_year
// discrete decisions. Everything model-specific about time (growth factors, integrals versus sums)
// lives here so that every solver has one code path for both.
#include <boost/math/quadrature/gauss.hpp>
#include <cmath>

#include "sim/theory/market.hpp"

namespace herdsim::theory {

/// Continuous time (dX = (rX + vP)dt + sigma P dW) or discrete steps of length 1/steps_per_year
/// (X <- X(1 + r dt) + P(v dt + sigma sqrt(dt) eps)); one step per year is the paper's experiment loop.
struct TimeModel {
  enum class Kind { continuous, discrete };
  Kind kind = Kind::continuous;
  int steps_per_year = 1;  ///< decisions per year (discrete only)

  static constexpr TimeModel continuous() { return {Kind::continuous, 1}; }
  static constexpr TimeModel annual() { return {Kind::discrete, 1}; }
  static constexpr TimeModel discrete(int steps_per_year) { return {Kind::discrete, steps_per_year}; }
  [[nodiscard]] bool is_discrete() const { return kind == Kind::discrete; }
};

/// A problem's time axis. Growth G(t) is what one unit invested at t is worth at T in the deposit:
/// e^{r(T-t)} in continuous time, (1 + r dt)^{n-1-k} for the decision at step k (t = k dt).
class Schedule {
 public:
  /// horizon in years; for discrete time horizon * steps_per_year must be a whole number.
  Schedule(const Market& market, double horizon, TimeModel time);

  [[nodiscard]] const Market& market() const { return market_; }
  [[nodiscard]] double horizon() const { return horizon_; }
  [[nodiscard]] TimeModel time() const { return time_; }
  /// Number of discrete decisions n (0 in continuous time).
  [[nodiscard]] int steps() const { return steps_; }
  /// Step length in years (discrete time).
  [[nodiscard]] double step_years() const { return dt_; }
  /// Time in years of decision k.
  [[nodiscard]] double step_time(int k) const { return k * dt_; }

  /// ln G(t).
  [[nodiscard]] double ln_growth(double t) const {
    return time_.is_discrete() ? ((horizon_ - t) / dt_ - 1.0) * ln_step_growth_ : market_.r * (horizon_ - t);
  }
  /// G(t), see the class comment.
  [[nodiscard]] double growth(double t) const { return std::exp(ln_growth(t)); }
  /// ln of the deposit's growth over [0, T]: rT, or n ln(1 + r dt).
  [[nodiscard]] double ln_terminal_growth() const {
    return time_.is_discrete() ? steps_ * ln_step_growth_ : market_.r * horizon_;
  }

  /// Calls fn(t, weight) for the nodes of the rule that integrates f over [0, T]: composite 16-point
  /// Gauss-Legendre in continuous time (panels short enough that integrands built from e^{c r (T-t)},
  /// |c| <= rate_multiple, converge to machine precision), the decisions k dt with weight dt otherwise.
  template <class Fn>
  void for_each_node(double rate_multiple, Fn&& fn) const {
    if (time_.is_discrete()) {
      for (int k = 0; k < steps_; ++k) fn(k * dt_, dt_);
      return;
    }
    using Rule = boost::math::quadrature::gauss<double, 16>;
    // Poles of such integrands sit pi/(c r) off the real axis; panels of c r width <= 2 keep the
    // Bernstein ellipse parameter above 6, i.e. below 1e-25 error for 16 points.
    const double spread = std::abs(rate_multiple * market_.r) * horizon_;
    // The work grows with the spread: refuse rather than spin (or overflow the panel count).
    if (!(spread <= kMaxSpread)) throw_spread_too_large(rate_multiple, spread);
    const int panels = std::max(1, static_cast<int>(std::ceil(spread / 2.0)));
    const double width = horizon_ / panels;
    const auto& x = Rule::abscissa();
    const auto& w = Rule::weights();
    for (int p = 0; p < panels; ++p) {
      const double mid = (p + 0.5) * width;
      const double half = 0.5 * width;
      for (std::size_t i = 0; i < x.size(); ++i) {
        fn(mid - half * x[i], half * w[i]);
        if (x[i] != 0.0) fn(mid + half * x[i], half * w[i]);
      }
    }
  }

  /// The largest |rate_multiple * r| * T for_each_node integrates over (10^4 panels).
  static constexpr double kMaxSpread = 2e4;

 private:
  [[noreturn]] static void throw_spread_too_large(double rate_multiple, double spread);
  Market market_;
  double horizon_;
  TimeModel time_;
  int steps_ = 0;
  double dt_ = 0.0;
  double ln_step_growth_ = 0.0;
};

}  // namespace herdsim::theory
