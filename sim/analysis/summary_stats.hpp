#pragma once
// Summary statistics and the one quantile definition of the project (numpy's default, linear
// interpolation between order statistics): summarize() is the exact, deterministic and parallel (TBB)
// version for large samples (the recorder's per-step summaries); describe() in run_metrics and the
// tests read single quantiles through interpolated_quantile().

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <span>
#include <vector>

namespace herdsim::analysis {

/// Where quantile q (clamped to [0, 1]) of `count` values falls: h = q (count - 1) splits into the
/// rank `below` = floor(h) and `fraction` = h - floor(h), so that the quantile is
/// x_(below) + fraction (x_(below+1) - x_(below)) (numpy's "linear"). count must be positive.
struct QuantilePosition {
  std::size_t below = 0;
  double fraction = 0.0;
};
[[nodiscard]] inline QuantilePosition quantile_position(double q, std::size_t count) {
  const double h = std::clamp(q, 0.0, 1.0) * static_cast<double>(count - 1);
  const auto below = static_cast<std::size_t>(std::floor(h));
  return {below, h - static_cast<double>(below)};
}

/// Quantile q of `count` values given their order statistics: order_statistic(r) is the r-th smallest
/// (0-based). Reads rank floor(h) and, only when h is not whole, floor(h) + 1.
template <class OrderStatistic>
[[nodiscard]] double interpolated_quantile(double q, std::size_t count, OrderStatistic&& order_statistic) {
  const QuantilePosition at = quantile_position(q, count);
  const double a = order_statistic(at.below);
  const double b = at.fraction > 0.0 ? order_statistic(at.below + 1) : a;
  return a + at.fraction * (b - a);
}

/// Tuning of summarize(); the defaults suit 10^5..10^7 values. The results do not depend on these
/// (up to the rounding of the mean and std, which depends on `chunk` only), nor on the thread count.
struct SummaryOptions {
  /// Values per parallel task. Partial sums are combined in chunk order, so the rounding of the
  /// mean and std depends on this, never on the scheduling.
  std::size_t chunk = std::size_t{1} << 15;
  /// About this many values (every ceil(n / sample)-th) are sorted to bracket the order statistics.
  std::size_t sample = std::size_t{1} << 14;
  /// Below this many values the quantiles come from plain nth_element (no sampling).
  std::size_t direct_below = std::size_t{1} << 16;
};

/// How summarize() found the quantiles (for tests and diagnostics).
enum class QuantileMethod {
  none,      ///< no finite value, or no quantile asked
  direct,    ///< nth_element on all the finite values
  brackets,  ///< nth_element within brackets found from a sample
  fallback,  ///< a bracket missed its order statistic: nth_element on all the finite values
};

/// mean, std (ddof 0), min, max, then the quantiles (linear interpolation, numpy's default) of the
/// finite `values` into `out`; NaN when there are none. The quantiles are exact order statistics;
/// the output bits are the same for any number of threads. May reorder or compact `values`.
QuantileMethod summarize(std::vector<double>& values, const std::vector<double>& quantiles,
                         std::vector<double>& out, const SummaryOptions& options = {});

/// The same statistics (the same bits) of read-only `values`: they are copied into `scratch` only
/// when the quantiles need a full selection (fewer than options.direct_below values, or a fallback).
QuantileMethod summarize(std::span<const double> values, const std::vector<double>& quantiles,
                         std::vector<double>& out, std::vector<double>& scratch,
                         const SummaryOptions& options = {});

}  // namespace herdsim::analysis
