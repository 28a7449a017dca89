#include <doctest/doctest.h>
#include <tbb/global_control.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <span>
#include <vector>

#include "sim/analysis/summary_stats.hpp"

namespace {

using herdsim::analysis::QuantileMethod;
using herdsim::analysis::summarize;
using herdsim::analysis::SummaryOptions;

constexpr double kNan = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

const std::vector<double> kQuantiles{0.05, 0.25, 0.5, 0.75, 0.95};

/// The straightforward definition: sort the finite values and interpolate (numpy's "linear").
std::vector<double> reference(const std::vector<double>& values, const std::vector<double>& quantiles) {
  std::vector<double> finite;
  for (const double v : values) {
    if (std::isfinite(v)) finite.push_back(v);
  }
  std::vector<double> out(4 + quantiles.size(), kNan);
  if (finite.empty()) return out;
  std::sort(finite.begin(), finite.end());
  const auto n = static_cast<double>(finite.size());
  long double sum = 0.0L;
  for (const double v : finite) sum += v;
  const auto mean = static_cast<double>(sum / static_cast<long double>(n));
  long double squares = 0.0L;
  for (const double v : finite) squares += static_cast<long double>(v - mean) * (v - mean);
  out[0] = mean;
  out[1] = std::sqrt(static_cast<double>(squares / static_cast<long double>(n)));
  out[2] = finite.front();
  out[3] = finite.back();
  for (std::size_t i = 0; i < quantiles.size(); ++i) {
    const double h = std::clamp(quantiles[i], 0.0, 1.0) * (n - 1.0);
    const auto below = static_cast<std::size_t>(std::floor(h));
    const double fraction = h - static_cast<double>(below);
    const double a = finite[below];
    const double b = fraction > 0.0 ? finite[below + 1] : a;
    out[4 + i] = a + fraction * (b - a);
  }
  return out;
}

/// Runs summarize on a copy and checks it against the reference: moments to rounding, min, max and
/// quantiles exactly.
QuantileMethod check(const std::vector<double>& values, const std::vector<double>& quantiles,
                     const SummaryOptions& options = {}) {
  std::vector<double> copy = values, out;
  const QuantileMethod method = summarize(copy, quantiles, out, options);
  // The read-only overload: the same method and bits, and the values left as they were.
  std::vector<double> source = values, scratch, out_read_only;
  CHECK(summarize(std::span<const double>(source), quantiles, out_read_only, scratch, options) == method);
  REQUIRE(out_read_only.size() == out.size());
  CHECK(std::memcmp(out_read_only.data(), out.data(), out.size() * sizeof(double)) == 0);
  CHECK((values.empty() || std::memcmp(source.data(), values.data(), values.size() * sizeof(double)) == 0));
  const std::vector<double> want = reference(values, quantiles);
  REQUIRE(out.size() == want.size());
  for (std::size_t i = 0; i < out.size(); ++i) {
    CAPTURE(i);
    if (std::isnan(want[i])) {
      CHECK(std::isnan(out[i]));
    } else if (i < 2) {
      // Mean and std: the summation order differs from the reference's, the rounding hardly.
      const double scale = std::max({std::abs(want[0]), want[1], 1e-300});
      CHECK(std::abs(out[i] - want[i]) <= 1e-13 * scale);
    } else {
      CHECK(out[i] == want[i]);
    }
  }
  return method;
}

std::vector<double> random_values(std::size_t n, std::uint64_t seed, bool sprinkle) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal(3.0, 2.0);
  std::uniform_int_distribution<int> pick(0, 99);
  std::vector<double> v(n);
  for (double& x : v) {
    x = normal(rng);
    if (!sprinkle) continue;
    const int k = pick(rng);
    if (k == 0) x = kNan;
    if (k == 1) x = kInf;
    if (k == 2) x = -kInf;
  }
  return v;
}

/// Small chunks and samples, and no direct path: the bracket machinery on small inputs.
SummaryOptions tiny() {
  SummaryOptions o;
  o.chunk = 64;
  o.sample = 32;
  o.direct_below = 0;
  return o;
}

}  // namespace

TEST_SUITE("analysis.summary_stats") {
  TEST_CASE("random data of many sizes, with NaN and inf, matches the sorted reference") {
    for (const std::size_t n : {0, 1, 2, 7, 1000, 1000000}) {
      CAPTURE(n);
      for (const bool sprinkle : {false, true}) {
        const auto values = random_values(n, 42 + n, sprinkle);
        check(values, kQuantiles);
        check(values, kQuantiles, tiny());
      }
    }
    CHECK(check(random_values(1000000, 7, true), kQuantiles) == QuantileMethod::brackets);
    CHECK(check(random_values(1000, 7, true), kQuantiles) == QuantileMethod::direct);
    CHECK(check(random_values(1000, 7, true), kQuantiles, tiny()) == QuantileMethod::brackets);
  }

  TEST_CASE("no finite values gives NaN; no quantiles gives the moments only") {
    std::vector<double> out;
    std::vector<double> values{kNan, kInf, -kInf};
    CHECK(summarize(values, kQuantiles, out) == QuantileMethod::none);
    REQUIRE(out.size() == 9);
    for (const double x : out) CHECK(std::isnan(x));
    CHECK(check(random_values(100000, 3, true), {}) == QuantileMethod::none);
  }

  TEST_CASE("heavy ties: all equal, two values, a mass at zero") {
    for (const auto& options : {SummaryOptions{}, tiny()}) {
      CHECK(check(std::vector<double>(200000, 1.5), kQuantiles, options) == QuantileMethod::brackets);
      std::vector<double> two(200000);
      for (std::size_t i = 0; i < two.size(); ++i) two[i] = (i * 7919) % 3 == 0 ? 2.0 : -1.0;
      CHECK(check(two, kQuantiles, options) == QuantileMethod::brackets);
      auto mass = random_values(300000, 11, true);
      for (std::size_t i = 0; i < mass.size(); i += 3) mass[i] = 0.0;
      check(mass, kQuantiles, options);
    }
  }

  TEST_CASE("sorted and reverse-sorted input; quantiles 0 and 1 and close together") {
    const std::vector<double> qs{0.0, 1.0, 0.5, 0.5000001, 0.999999, 1e-7, 0.3};
    auto values = random_values(1000000, 5, false);
    std::sort(values.begin(), values.end());
    CHECK(check(values, qs) == QuantileMethod::brackets);
    check(values, qs, tiny());
    std::reverse(values.begin(), values.end());
    CHECK(check(values, qs) == QuantileMethod::brackets);
    check(values, qs, tiny());
  }

  TEST_CASE("a sample that misrepresents the data makes a bracket miss: the fallback stays exact") {
    // Every sampled position (every 1000th) holds a huge value, everything else is small.
    SummaryOptions options;
    options.sample = 1000;
    auto values = random_values(1000000, 9, true);
    for (std::size_t i = 0; i < values.size(); i += 1000) values[i] = 1e9 + static_cast<double>(i);
    CHECK(check(values, kQuantiles, options) == QuantileMethod::fallback);
    CHECK(check(values, {0.0, 1.0}, options) == QuantileMethod::brackets);  // min and max never miss
  }

  TEST_CASE("the output bits do not depend on the number of threads") {
    const auto values = random_values(1000000, 13, true);
    const auto run = [&](std::size_t threads) {
      tbb::global_control limit(tbb::global_control::max_allowed_parallelism, threads);
      std::vector<double> copy = values, out;
      summarize(copy, kQuantiles, out);
      return out;
    };
    const auto one = run(1);
    const auto two = run(2);
    const auto many = run(8);
    REQUIRE(one.size() == two.size());
    CHECK(std::memcmp(one.data(), two.data(), one.size() * sizeof(double)) == 0);
    CHECK(std::memcmp(one.data(), many.data(), one.size() * sizeof(double)) == 0);
  }
}
