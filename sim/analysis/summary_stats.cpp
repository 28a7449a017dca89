#include "sim/analysis/summary_stats.hpp"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <tbb/partitioner.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>

namespace herdsim::analysis {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

/// A bracket's margin, in sample ranks: this many binomial standard deviations of the sample rank
/// of an order statistic, plus a few for the rounding of its expected position. A miss costs a
/// fallback, never a wrong result.
constexpr double kSigmas = 5.0;
constexpr std::ptrdiff_t kExtraRanks = 2;
/// The bounds are searched in an array of at most 32 (2 per bracket, padded); more brackets than
/// this (more than 15 quantiles far apart) go the direct way.
constexpr std::size_t kMaxBrackets = 15;

/// Branch-free (vectorizable) finiteness test: false for NaN and +-inf.
inline bool finite(double v) {
  return std::abs(v) <= std::numeric_limits<double>::max();
}

/// Calls body(c) for each chunk index c, in parallel. Each chunk writes only its own slot of a
/// per-chunk array and the caller combines the slots in chunk order, so the results never depend on
/// the scheduling or the thread count.
template <class Body>
void for_each_chunk(std::size_t chunks, const Body& body) {
  tbb::parallel_for(
      tbb::blocked_range<std::size_t>(0, chunks, 1),
      [&](const tbb::blocked_range<std::size_t>& r) {
        for (std::size_t c = r.begin(); c != r.end(); ++c) body(c);
      },
      tbb::simple_partitioner());
}

/// Finite count, sum, min and max of one chunk, each as four interleaved partials combined in a
/// fixed order: independent operations overlap, and the result depends on the chunking only.
struct Moments {
  std::size_t count = 0;
  double sum = 0.0;
  double min = kInf;
  double max = -kInf;
};

Moments chunk_moments(const double* x, std::size_t len) {
  std::array<Moments, 4> lane;
  const auto one = [](double v, Moments& m) {
    const bool f = finite(v);
    m.count += f ? 1 : 0;
    m.sum += f ? v : 0.0;
    m.min = (f && v < m.min) ? v : m.min;
    m.max = (f && v > m.max) ? v : m.max;
  };
  std::size_t i = 0;
  for (; i + 4 <= len; i += 4) {
    for (std::size_t k = 0; k < 4; ++k) one(x[i + k], lane[k]);
  }
  for (; i < len; ++i) one(x[i], lane[0]);
  Moments m;
  m.count = (lane[0].count + lane[1].count) + (lane[2].count + lane[3].count);
  m.sum = (lane[0].sum + lane[1].sum) + (lane[2].sum + lane[3].sum);
  for (const Moments& l : lane) {
    m.min = l.min < m.min ? l.min : m.min;
    m.max = l.max > m.max ? l.max : m.max;
  }
  return m;
}

/// Sum of squared deviations from `mean` of the finite values of one chunk (fixed order, as above).
double chunk_squares(const double* x, std::size_t len, double mean) {
  double lane[4] = {0.0, 0.0, 0.0, 0.0};
  std::size_t i = 0;
  const auto one = [&](double v, double& acc) {
    const double d = finite(v) ? v - mean : 0.0;
    acc += d * d;
  };
  for (; i + 4 <= len; i += 4) {
    for (std::size_t k = 0; k < 4; ++k) one(x[i + k], lane[k]);
  }
  for (; i < len; ++i) one(x[i], lane[0]);
  return (lane[0] + lane[1]) + (lane[2] + lane[3]);
}

/// Disjoint value intervals [lo_j, hi_j] (lo_j <= hi_j < lo_{j+1}), each expected to hold some of
/// the wanted order statistics. A finite value v falls in slot 4j (below lo_j, above hi_{j-1}),
/// 4j+1 (== lo_j), 4j+2 (strictly inside), 4j+3 (== hi_j, when hi_j > lo_j) or 4B (above all).
/// Only the strictly-inside values are copied: ties at a bound are just counted, so heavily tied
/// data (all equal, a mass at 0) costs nothing extra.
struct Brackets {
  std::vector<double> lo, hi;

  std::size_t size() const { return lo.size(); }
  std::size_t slots() const { return 4 * size() + 2; }  // the last one takes the non-finite values
};

/// What the second pass keeps of one chunk: its squares, its slot counts, and its strictly-inside
/// values grouped by bracket (in their order within the chunk).
struct Part {
  double squares = 0.0;
  std::vector<std::size_t> counts;
  std::vector<double> inside;
};

/// classify_chunk with the bounds padded to 2^Steps entries, so that the binary search unrolls.
template <std::size_t Steps>
void classify_chunk(const double* x, std::size_t len, const Brackets& brackets, Part& part) {
  constexpr std::size_t kPadded = std::size_t{1} << Steps;
  // lo_0, hi_0, lo_1, ..., then +inf: a local copy the compiler can keep in registers or L1.
  std::array<double, kPadded> bounds;
  bounds.fill(kInf);
  for (std::size_t j = 0; j < brackets.size(); ++j) {
    bounds[2 * j] = brackets.lo[j];
    bounds[2 * j + 1] = brackets.hi[j];
  }
  const std::size_t ignored = brackets.slots() - 1;
  // Four histograms used in turn: consecutive values in the same slot would otherwise wait on each
  // other's increment.
  std::array<std::array<std::uint32_t, 4 * kMaxBrackets + 2>, 4> counts{};
  const auto slot = std::make_unique_for_overwrite<std::uint8_t[]>(len);
  for (std::size_t i = 0; i < len; ++i) {
    const double v = x[i];
    std::size_t below = 0;
    for (std::size_t step = kPadded / 2; step > 0; step >>= 1)
      below += step * std::size_t{bounds[below + step - 1] < v};
    std::size_t s = 2 * below + (bounds[below] == v ? 1 : 0);
    slot[i] = static_cast<std::uint8_t>(finite(v) ? s : ignored);
  }
  const auto found = std::make_unique_for_overwrite<double[]>(len);
  const auto id = std::make_unique_for_overwrite<std::uint16_t[]>(len);
  std::size_t n_found = 0;
  for (std::size_t i = 0; i < len; ++i) {
    const std::size_t s = slot[i];
    ++counts[i % 4][s];
    found[n_found] = x[i];
    id[n_found] = static_cast<std::uint16_t>(s / 4);
    n_found += (s % 4 == 2) ? 1 : 0;
  }
  part.counts.assign(brackets.slots(), 0);
  for (const auto& c : counts) {
    for (std::size_t s = 0; s < part.counts.size(); ++s) part.counts[s] += c[s];
  }
  // Stable counting sort by bracket.
  std::array<std::size_t, kMaxBrackets> next{};
  for (std::size_t j = 1; j < brackets.size(); ++j) next[j] = next[j - 1] + part.counts[4 * (j - 1) + 2];
  part.inside.resize(n_found);
  for (std::size_t k = 0; k < n_found; ++k) part.inside[next[id[k]]++] = found[k];
}

void classify_chunk(const double* x, std::size_t len, const Brackets& brackets, Part& part) {
  // At least one +inf pad, so the search never runs past the real bounds.
  switch (std::bit_width(2 * brackets.size())) {
    case 0:
    case 1:
    case 2:
      return classify_chunk<2>(x, len, brackets, part);
    case 3:
      return classify_chunk<3>(x, len, brackets, part);
    case 4:
      return classify_chunk<4>(x, len, brackets, part);
    default:
      return classify_chunk<5>(x, len, brackets, part);
  }
}

/// Values at the ascending `ranks` of [first, last) into `at`, by successive nth_element calls, each
/// on what is right of the previous rank.
void select_ranks(double* first, double* last, const std::vector<std::size_t>& ranks,
                  std::vector<double>& at) {
  at.resize(ranks.size());
  double* from = first;
  for (std::size_t k = 0; k < ranks.size(); ++k) {
    double* nth = first + ranks[k];
    if (nth == from && k > 0) {
      // The next rank after a selected one: the smallest of what is to the right.
      std::iter_swap(nth, std::min_element(nth, last));
    } else {
      std::nth_element(from, nth, last);
    }
    at[k] = *nth;
    from = nth + 1;
  }
}

/// summarize() on values read through `values`; `selectable()` gives a vector holding the same
/// values that may be reordered, for a full selection (called at most once).
template <class Selectable>
QuantileMethod summarize_values(std::span<const double> values, const std::vector<double>& quantiles,
                                std::vector<double>& out, const SummaryOptions& options,
                                const Selectable& selectable) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  out.assign(4 + quantiles.size(), nan);
  const std::size_t n = values.size();
  // Per-chunk slot counts are 32-bit.
  const std::size_t chunk = std::clamp<std::size_t>(options.chunk, 1, std::size_t{1} << 30);
  const std::size_t chunks = (n + chunk - 1) / chunk;
  const auto chunk_len = [&](std::size_t c) { return std::min(chunk, n - c * chunk); };

  // Pass 1: count, sum, min, max.
  std::vector<Moments> moments(chunks);
  for_each_chunk(chunks,
                 [&](std::size_t c) { moments[c] = chunk_moments(values.data() + c * chunk, chunk_len(c)); });
  Moments all;
  for (const Moments& m : moments) {
    all.count += m.count;
    all.sum += m.sum;
    if (m.min < all.min) all.min = m.min;
    if (m.max > all.max) all.max = m.max;
  }
  if (all.count == 0) return QuantileMethod::none;
  const std::size_t count = all.count;
  const double mean = all.sum / static_cast<double>(count);

  // The order statistics the quantiles need: ranks floor(h) and, when h is not whole, floor(h) + 1.
  std::vector<std::size_t> ranks;
  for (const double q : quantiles) {
    const QuantilePosition at = quantile_position(q, count);
    ranks.push_back(at.below);
    if (at.fraction > 0.0) ranks.push_back(at.below + 1);
  }
  std::sort(ranks.begin(), ranks.end());
  ranks.erase(std::unique(ranks.begin(), ranks.end()), ranks.end());

  QuantileMethod method = ranks.empty() ? QuantileMethod::none : QuantileMethod::direct;
  Brackets brackets;
  std::vector<std::size_t> bracket_of(ranks.size());
  if (method == QuantileMethod::direct && count >= options.direct_below) {
    // A strided sample, sorted: each rank's expected position in it, widened by the margin, gives a
    // bracket of values. Overlapping brackets merge (close quantiles share one).
    const std::size_t wanted = std::max<std::size_t>(options.sample, 1);
    const std::size_t stride = std::max<std::size_t>((n + wanted - 1) / wanted, 1);
    std::vector<double> sample;
    sample.reserve(n / stride + 1);
    for (std::size_t i = 0; i < n; i += stride) {
      if (finite(values[i])) sample.push_back(values[i]);
    }
    std::sort(sample.begin(), sample.end());
    const auto m = static_cast<std::ptrdiff_t>(sample.size());
    for (std::size_t k = 0; k < ranks.size() && m > 0; ++k) {
      const double p = count > 1 ? static_cast<double>(ranks[k]) / static_cast<double>(count - 1) : 0.0;
      const double t = p * static_cast<double>(m - 1);
      const auto margin = static_cast<std::ptrdiff_t>(
                              std::ceil(kSigmas * std::sqrt(static_cast<double>(m) * p * (1.0 - p)))) +
                          kExtraRanks;
      const std::ptrdiff_t lo_at = static_cast<std::ptrdiff_t>(std::floor(t)) - margin;
      const std::ptrdiff_t hi_at = static_cast<std::ptrdiff_t>(std::ceil(t)) + margin;
      // Past either end of the sample, the bound is the exact min or max: nothing lies outside.
      const double lo = lo_at <= 0 ? all.min : sample[static_cast<std::size_t>(lo_at)];
      const double hi = hi_at >= m - 1 ? all.max : sample[static_cast<std::size_t>(hi_at)];
      if (brackets.size() > 0 && lo <= brackets.hi.back()) {
        brackets.hi.back() = std::max(brackets.hi.back(), hi);
      } else {
        brackets.lo.push_back(lo);
        brackets.hi.push_back(hi);
      }
      bracket_of[k] = brackets.size() - 1;
    }
    if (m > 0 && brackets.size() <= kMaxBrackets) method = QuantileMethod::brackets;
  }

  // Pass 2: squared deviations (two-pass std) and, with brackets, the slot counts and the values
  // strictly inside the brackets.
  std::vector<Part> parts(chunks);
  const bool classify = method == QuantileMethod::brackets;
  for_each_chunk(chunks, [&](std::size_t c) {
    const double* x = values.data() + c * chunk;
    parts[c].squares = chunk_squares(x, chunk_len(c), mean);
    if (classify) classify_chunk(x, chunk_len(c), brackets, parts[c]);
  });
  double squares = 0.0;
  for (const Part& part : parts) squares += part.squares;
  out[0] = mean;
  out[1] = std::sqrt(squares / static_cast<double>(count));
  out[2] = all.min;
  out[3] = all.max;
  if (method == QuantileMethod::none) return method;

  std::vector<double> rank_values(ranks.size());
  if (classify) {
    std::vector<std::size_t> slot_counts(brackets.slots(), 0);
    for (const Part& part : parts) {
      for (std::size_t s = 0; s < slot_counts.size(); ++s) slot_counts[s] += part.counts[s];
    }
    std::vector<char> missed(brackets.size(), 0);
    tbb::parallel_for(
        tbb::blocked_range<std::size_t>(0, brackets.size(), 1),
        [&](const tbb::blocked_range<std::size_t>& r) {
          for (std::size_t j = r.begin(); j != r.end(); ++j) {
            std::size_t less = 0;
            for (std::size_t s = 0; s <= 4 * j; ++s) less += slot_counts[s];
            const std::size_t at_lo = slot_counts[4 * j + 1];
            const std::size_t n_inside = slot_counts[4 * j + 2];
            const std::size_t at_hi = slot_counts[4 * j + 3];
            // This bracket's inside values, chunk after chunk.
            std::vector<double> inside;
            inside.reserve(n_inside);
            for (const Part& part : parts) {
              std::size_t offset = 0;
              for (std::size_t i = 0; i < j; ++i) offset += part.counts[4 * i + 2];
              const auto begin = part.inside.begin() + static_cast<std::ptrdiff_t>(offset);
              inside.insert(inside.end(), begin, begin + static_cast<std::ptrdiff_t>(part.counts[4 * j + 2]));
            }
            std::vector<std::size_t> local;  // ranks within `inside`
            std::vector<std::size_t> local_of;
            for (std::size_t k = 0; k < ranks.size(); ++k) {
              if (bracket_of[k] != j) continue;
              if (ranks[k] < less || ranks[k] >= less + at_lo + n_inside + at_hi) {
                missed[j] = 1;
                return;
              }
              const std::size_t pos = ranks[k] - less;
              if (pos < at_lo) {
                rank_values[k] = brackets.lo[j];
              } else if (pos < at_lo + n_inside) {
                local.push_back(pos - at_lo);
                local_of.push_back(k);
              } else {
                rank_values[k] = brackets.hi[j];
              }
            }
            std::vector<double> at;
            select_ranks(inside.data(), inside.data() + inside.size(), local, at);
            for (std::size_t i = 0; i < local.size(); ++i) rank_values[local_of[i]] = at[i];
          }
        },
        tbb::simple_partitioner());
    if (std::find(missed.begin(), missed.end(), 1) != missed.end()) method = QuantileMethod::fallback;
  }
  if (method != QuantileMethod::brackets) {
    std::vector<double>& finite_values = selectable();
    if (count < n) {
      finite_values.erase(
          std::remove_if(finite_values.begin(), finite_values.end(), [](double v) { return !finite(v); }),
          finite_values.end());
    }
    select_ranks(finite_values.data(), finite_values.data() + finite_values.size(), ranks, rank_values);
  }

  const auto rank_value = [&](std::size_t r) {
    return rank_values[static_cast<std::size_t>(std::lower_bound(ranks.begin(), ranks.end(), r) -
                                                ranks.begin())];
  };
  for (std::size_t i = 0; i < quantiles.size(); ++i)
    out[4 + i] = interpolated_quantile(quantiles[i], count, rank_value);
  return method;
}

}  // namespace

QuantileMethod summarize(std::vector<double>& values, const std::vector<double>& quantiles,
                         std::vector<double>& out, const SummaryOptions& options) {
  return summarize_values(values, quantiles, out, options, [&]() -> std::vector<double>& { return values; });
}

QuantileMethod summarize(std::span<const double> values, const std::vector<double>& quantiles,
                         std::vector<double>& out, std::vector<double>& scratch,
                         const SummaryOptions& options) {
  return summarize_values(values, quantiles, out, options, [&]() -> std::vector<double>& {
    scratch.assign(values.begin(), values.end());
    return scratch;
  });
}

}  // namespace herdsim::analysis
