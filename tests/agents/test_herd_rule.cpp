#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "agents/herd_rule.hpp"
#include "sim/simd.hpp"

using namespace herdsim;

namespace {

/// Distance in units in the last place between two finite doubles of the same sign.
std::int64_t ulps(double a, double b) {
  std::int64_t ia = 0, ib = 0;
  std::memcpy(&ia, &a, sizeof a);
  std::memcpy(&ib, &b, sizeof b);
  return ia > ib ? ia - ib : ib - ia;
}

bool same_bits(double a, double b) {
  return std::memcmp(&a, &b, sizeof a) == 0;
}

/// Arguments over the whole unclamped range, dense near 0 (where the rule's ln kappa usually is).
std::vector<double> arguments() {
  std::vector<double> x;
  for (int i = -7079; i <= 7089; ++i) x.push_back(i * 0.1 + 0.013 * (i % 7));  // inside [-708, 709]
  for (int i = -2000; i <= 2000; ++i) x.push_back(i * 1e-3);
  for (double v : {0.0, -0.0, 1e-300, -1e-300, 0.5 * std::log(2.0), -0.5 * std::log(2.0), 708.9, -707.9})
    x.push_back(v);
  return x;
}

}  // namespace

TEST_SUITE("agents/herd_rule") {
  TEST_CASE("fixed_exp is within 2 ulp of exp over [-708, 709]") {
    std::int64_t worst = 0;
    for (const double x : arguments()) {
      const std::int64_t d = ulps(agents::fixed_exp(x), std::exp(x));
      CAPTURE(x);
      CHECK(d <= 2);
      worst = std::max(worst, d);
    }
    MESSAGE("worst distance from std::exp: ", worst, " ulp");
    CHECK(agents::fixed_exp(0.0) == 1.0);
    CHECK(ulps(agents::fixed_exp(1.0), std::exp(1.0)) <= 1);
  }

  TEST_CASE("fixed_exp saturates outside [-708, 709] and keeps NaN") {
    const double inf = std::numeric_limits<double>::infinity();
    CHECK(agents::fixed_exp(800.0) == agents::fixed_exp(709.0));
    CHECK(agents::fixed_exp(inf) == agents::fixed_exp(709.0));
    CHECK(std::isfinite(agents::fixed_exp(inf)));
    CHECK(agents::fixed_exp(-inf) == agents::fixed_exp(-708.0));
    CHECK(agents::fixed_exp(-inf) > 0.0);
    CHECK(agents::fixed_exp(-inf) < 1e-307);
    CHECK(std::isnan(agents::fixed_exp(std::numeric_limits<double>::quiet_NaN())));
  }

  TEST_CASE("every vector width and every offset gives the scalar form's bits") {
    std::vector<double> x = arguments();
    x.push_back(std::numeric_limits<double>::infinity());
    x.push_back(-std::numeric_limits<double>::infinity());
    const int n = static_cast<int>(x.size());
    std::vector<int> widths = {2};
    if (sim::simd::has_avx2()) widths.push_back(4);
    for (const int lanes : widths) {
      for (const int offset : {0, 1, 3}) {  // the tail and the alignment differ with the offset
        std::vector<double> out(x.size(), -1.0);
        agents::detail::fixed_exp(x.data() + offset, out.data() + offset, n - offset, lanes);
        int mismatches = 0;
        for (int i = offset; i < n; ++i) mismatches += same_bits(out[i], agents::fixed_exp(x[i])) ? 0 : 1;
        CAPTURE(lanes);
        CAPTURE(offset);
        CHECK(mismatches == 0);
        CHECK(out[0] == (offset == 0 ? agents::fixed_exp(x[0]) : -1.0));  // nothing before the range
      }
    }
  }

  TEST_CASE("blend_toward_reference is the rule's weighted mean, identical in every width") {
    const int n = 1003;  // not a multiple of any width: a tail
    std::vector<double> ln_kappa(n), own(n), seen(n);
    for (int i = 0; i < n; ++i) {
      ln_kappa[i] = -40.0 + 0.08 * i;  // w from 1 to 0 across the range
      own[i] = 1.0 + 0.01 * i;
      seen[i] = 5.0 - 0.003 * i;
    }
    ln_kappa[7] = -std::numeric_limits<double>::infinity();  // theta = 0: own Merton exactly
    std::vector<double> reference(n);
    agents::detail::blend_toward_reference(ln_kappa.data(), own.data(), seen.data(), reference.data(), n, 2);
    for (int i = 0; i < n; ++i) {
      const double w = 1.0 / (1.0 + std::exp(ln_kappa[i]));
      CAPTURE(i);
      CHECK(reference[i] == doctest::Approx(w * own[i] + (1.0 - w) * seen[i]).epsilon(1e-15));
    }
    CHECK(reference[7] == own[7]);
    if (sim::simd::has_avx2()) {
      std::vector<double> wide(n);
      agents::detail::blend_toward_reference(ln_kappa.data(), own.data(), seen.data(), wide.data(), n, 4);
      int mismatches = 0;
      for (int i = 0; i < n; ++i) mismatches += same_bits(wide[i], reference[i]) ? 0 : 1;
      CHECK(mismatches == 0);
    }
    // In place, as the engine may call it.
    std::vector<double> in_place = seen;
    agents::blend_toward_reference(ln_kappa.data(), own.data(), in_place.data(), in_place.data(), n);
    int mismatches = 0;
    for (int i = 0; i < n; ++i) mismatches += same_bits(in_place[i], reference[i]) ? 0 : 1;
    CHECK(mismatches == 0);
  }
}
