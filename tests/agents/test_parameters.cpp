#include <doctest/doctest.h>

#include "agents/parameters.hpp"
#include "sim/theory/market.hpp"
#include "support/specs.hpp"

using namespace herdsim;

TEST_SUITE("agents.parameters") {
  TEST_CASE("lists form a grid (first list slowest), cycled to the count; constants repeat") {
    const auto alpha = test::list({0.4, 0.5}, sim::ParamSpec::Scale::lottery_prob);
    const auto theta = test::list({0, 1, 2}, sim::ParamSpec::Scale::score);
    const auto wealth = test::constant(10.0);
    const sim::CounterRng rng(1);
    const auto out =
        agents::expand_params({{"alpha", &alpha}, {"theta", &theta}, {"wealth0", &wealth}}, 14, 0, rng);
    REQUIRE(out.size() == 3);
    const auto& a = out[0].second;
    const auto& t = out[1].second;
    const double a4 = theory::alpha_from_lottery_prob(0.4);
    const double a5 = theory::alpha_from_lottery_prob(0.5);
    const std::vector<double> want_a{a4, a4, a4, a5, a5, a5};
    const std::vector<double> want_t{0, 1e-8, 2e-8, 0, 1e-8, 2e-8};
    for (int i = 0; i < 14; ++i) {
      CHECK(a[i] == want_a[static_cast<std::size_t>(i % 6)]);
      CHECK(t[i] == doctest::Approx(want_t[static_cast<std::size_t>(i % 6)]).epsilon(1e-15));
      CHECK(out[2].second[i] == 10.0);
    }
  }

  TEST_CASE("distributions: truncated draws stay inside, deterministic for the seed, differ across agents") {
    sim::ParamSpec p;
    p.form = sim::ParamSpec::Form::distribution;
    p.distribution = {sim::DistributionSpec::Kind::normal, 0.5, 1.0, 0.1, 0.9};
    const sim::CounterRng rng(9);
    const auto a = agents::expand_params({{"x", &p}}, 1000, 2, rng)[0].second;
    const auto b = agents::expand_params({{"x", &p}}, 1000, 2, rng)[0].second;
    CHECK(a == b);
    CHECK(a.minCoeff() >= 0.1);
    CHECK(a.maxCoeff() <= 0.9);
    CHECK(a[0] != a[1]);
    CHECK(agents::expand_params({{"x", &p}}, 1000, 3, rng)[0].second != a);  // another population
  }

  TEST_CASE("inverse CDFs: uniform, normal median, lognormal median, truncation bounds") {
    using K = sim::DistributionSpec::Kind;
    CHECK(agents::sample_distribution({K::uniform, 2.0, 4.0, {}, {}}, 0.25) == doctest::Approx(2.5));
    CHECK(agents::sample_distribution({K::normal, 1.0, 3.0, {}, {}}, 0.5) == doctest::Approx(1.0));
    CHECK(agents::sample_distribution({K::lognormal, 0.0, 1.0, {}, {}}, 0.5) == doctest::Approx(1.0));
    CHECK(agents::sample_distribution({K::normal, 0.0, 1.0, 1.0, 2.0}, 1e-12) ==
          doctest::Approx(1.0).epsilon(1e-6));
    CHECK(agents::sample_distribution({K::lognormal, 0.0, 1.0, 2.0, 3.0}, 1.0 - 1e-12) ==
          doctest::Approx(3.0).epsilon(1e-6));
  }
}
