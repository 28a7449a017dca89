#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "sim/market/random.hpp"

using herdsim::sim::CounterRng;
using herdsim::sim::Stream;

TEST_SUITE("sim.random") {
  TEST_CASE("a draw depends only on its key and counter, not on call order") {
    const CounterRng a(42);
    const CounterRng b(42);
    const double first = a.normal(Stream::market, 7, 3, 0);
    for (int i = 0; i < 100; ++i) (void)b.normal(Stream::market, static_cast<std::uint64_t>(i), 1, 0);
    CHECK(b.normal(Stream::market, 7, 3, 0) == first);
  }

  TEST_CASE("seeds, streams, paths, steps and indices all change the draw") {
    const CounterRng g(42);
    const double base = g.normal(Stream::market, 1, 2, 3);
    CHECK(CounterRng(43).normal(Stream::market, 1, 2, 3) != base);
    CHECK(g.normal(Stream::noise, 1, 2, 3) != base);
    CHECK(g.normal(Stream::market, 2, 2, 3) != base);
    CHECK(g.normal(Stream::market, 1, 3, 3) != base);
    CHECK(g.normal(Stream::market, 1, 2, 4) != base);
  }

  TEST_CASE("normals have mean 0 and variance 1 within 5 standard errors (false alarm < 1e-6)") {
    const CounterRng g(2024);
    const int n = 200000;
    double sum = 0.0, sum2 = 0.0, sum4 = 0.0;
    for (int i = 0; i < n; ++i) {
      const double x = g.normal(Stream::market, static_cast<std::uint64_t>(i), 0, 0);
      sum += x;
      sum2 += x * x;
      sum4 += x * x * x * x;
    }
    const double mean = sum / n;
    const double var = sum2 / n - mean * mean;
    CHECK(std::abs(mean) < 5.0 / std::sqrt(n));
    CHECK(std::abs(var - 1.0) < 5.0 * std::sqrt(2.0 / n));
    CHECK(std::abs(sum4 / n - 3.0) < 5.0 * std::sqrt(96.0 / n));
  }

  TEST_CASE("uniforms lie in (0, 1) with mean 1/2") {
    const CounterRng g(1);
    double sum = 0.0;
    const int n = 100000;
    for (int i = 0; i < n; ++i) {
      const double u = g.uniform(Stream::noise, 0, 0, static_cast<std::uint64_t>(i));
      REQUIRE(u > 0.0);
      REQUIRE(u < 1.0);
      sum += u;
    }
    CHECK(std::abs(sum / n - 0.5) < 5.0 * std::sqrt(1.0 / 12.0 / n));
  }
}
