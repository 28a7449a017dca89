#include <doctest/doctest.h>

#include "agents/network.hpp"

using namespace herdsim;
using Kind = agents::NetworkSpec::Kind;

namespace {
agents::WeightMatrix make(Kind kind, int n, int k, double p, double theta = 1e-8) {
  agents::NetworkSpec spec;
  spec.kind = kind;
  spec.k = k;
  spec.p = p;
  return agents::build_network(spec, Eigen::VectorXd::Constant(n, theta), 0, sim::CounterRng(5));
}
double edges(const agents::WeightMatrix& w) {
  return static_cast<double>(w.nonZeros()) / 2.0;
}
bool symmetric_pattern(const agents::WeightMatrix& w) {
  for (int i = 0; i < w.rows(); ++i) {
    for (agents::WeightMatrix::InnerIterator it(w, i); it; ++it) {
      if (w.coeff(it.col(), i) == 0.0) return false;
    }
  }
  return true;
}
}  // namespace

TEST_SUITE("agents.network") {
  TEST_CASE("rows sum to theta_i: each agent's total herding weight is its theta") {
    for (const Kind kind : {Kind::all_to_all, Kind::ring, Kind::erdos_renyi, Kind::small_world}) {
      const auto w = make(kind, 60, 2, 0.2, 3e-8);
      for (int i = 0; i < 60; ++i) {
        const double sum = w.row(i).sum();
        if (w.row(i).nonZeros() > 0) CHECK(sum == doctest::Approx(3e-8).epsilon(1e-12));
        CHECK(w.coeff(i, i) == 0.0);
      }
    }
  }

  TEST_CASE("ring: exactly 2k neighbours, i +- 1..k") {
    const auto w = make(Kind::ring, 20, 3, 0.0);
    for (int i = 0; i < 20; ++i) {
      CHECK(w.row(i).nonZeros() == 6);
      CHECK(w.coeff(i, (i + 3) % 20) > 0.0);
      CHECK(w.coeff(i, (i + 17) % 20) > 0.0);
      CHECK(w.coeff(i, (i + 4) % 20) == 0.0);
    }
  }

  TEST_CASE("Erdos-Renyi: undirected, edge count within 5 sd of p n(n-1)/2") {
    const int n = 400;
    const double p = 0.05;
    const auto w = make(Kind::erdos_renyi, n, 1, p);
    const double pairs = n * (n - 1) / 2.0;
    CHECK(symmetric_pattern(w));
    CHECK(std::abs(edges(w) - p * pairs) < 5.0 * std::sqrt(pairs * p * (1 - p)));
    CHECK(make(Kind::erdos_renyi, 50, 1, 1.0).nonZeros() == 50 * 49);
    CHECK(make(Kind::erdos_renyi, 50, 1, 0.0).nonZeros() == 0);
  }

  TEST_CASE("small world: keeps the ring's edge count, undirected, rewires about p of the edges") {
    const auto ringed = make(Kind::ring, 500, 2, 0.0);
    const auto w = make(Kind::small_world, 500, 2, 0.3);
    CHECK(edges(w) == edges(ringed));
    CHECK(symmetric_pattern(w));
    int moved = 0;
    for (int i = 0; i < 500; ++i) {
      for (agents::WeightMatrix::InnerIterator it(w, i); it; ++it) moved += ringed.coeff(i, it.col()) == 0.0;
    }
    // Each rewired edge appears twice in the pattern; 1000 edges, p = 0.3: ~300 rewired.
    CHECK(moved / 2 > 200);
    CHECK(moved / 2 < 400);
  }

  TEST_CASE("deterministic for the seed") {
    const auto a = make(Kind::small_world, 100, 2, 0.5);
    const auto b = make(Kind::small_world, 100, 2, 0.5);
    CHECK(a.isApprox(b, 0.0));
  }
}
