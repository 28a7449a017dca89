#pragma once
// Per-step summary statistics of one recorded quantity: exact, deterministic and parallel (TBB).

#include <cstddef>
#include <span>
#include <vector>

namespace herdsim::io {

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

}  // namespace herdsim::io
