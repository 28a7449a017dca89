#include "agents/network.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

namespace herdsim::agents {

namespace {

using Adjacency = std::vector<std::vector<int>>;

// Network draws use path keys above this offset so they never collide with parameter draws.
constexpr std::uint64_t network_key = 1ULL << 32;

void link(Adjacency& adj, int a, int b) {
  adj[static_cast<std::size_t>(a)].push_back(b);
  adj[static_cast<std::size_t>(b)].push_back(a);
}

bool linked(const Adjacency& adj, int a, int b) {
  const auto& row = adj[static_cast<std::size_t>(a)];
  return std::find(row.begin(), row.end(), b) != row.end();
}

Adjacency ring(int n, int k) {
  Adjacency adj(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) {
    for (int d = 1; d <= k; ++d) link(adj, i, (i + d) % n);
  }
  return adj;
}

}  // namespace

WeightMatrix build_network(const NetworkSpec& spec, const Eigen::VectorXd& theta, int population_index,
                           const sim::CounterRng& rng, int agents_total, int first_agent) {
  const int rows = static_cast<int>(theta.size());
  const int n = agents_total > 0 ? agents_total : rows;
  const auto key = network_key + static_cast<std::uint64_t>(population_index);
  auto uniform = [&](std::uint64_t a, std::uint64_t b) {
    return rng.uniform(sim::Stream::parameters, key, a, b);
  };
  Adjacency adj(static_cast<std::size_t>(n));
  switch (spec.kind) {
    case NetworkSpec::Kind::all_to_all:
      break;  // implicit, see below
    case NetworkSpec::Kind::ring:
      adj = ring(n, spec.k);
      break;
    case NetworkSpec::Kind::erdos_renyi: {
      // Walk the pairs (i < j) in row order, jumping geometric gaps: O(n + edges) draws, not O(n^2).
      if (spec.p <= 0.0 || n < 2) break;
      const double log_q = std::log1p(-std::min(spec.p, 1.0 - 1e-16));
      int i = 0;
      double offset = -1.0;  // position within row i, whose pairs are j = i+1..n-1
      for (std::uint64_t draw = 0; i < n - 1; ++draw) {
        offset += spec.p >= 1.0 ? 1.0 : 1.0 + std::floor(std::log(uniform(draw, 0)) / log_q);
        while (i < n - 1 && offset >= n - 1 - i) {
          offset -= n - 1 - i;
          ++i;
        }
        if (i < n - 1) link(adj, i, i + 1 + static_cast<int>(offset));
      }
      break;
    }
    case NetworkSpec::Kind::small_world: {
      adj = ring(n, spec.k);
      for (int i = 0; i < n; ++i) {
        for (int d = 1; d <= spec.k; ++d) {
          const int j = (i + d) % n;
          if (uniform(static_cast<std::uint64_t>(i), static_cast<std::uint64_t>(d)) >= spec.p) continue;
          // Rewire (i, j) to (i, m) with m uniform among non-neighbours; skip if i is saturated.
          if (static_cast<int>(adj[static_cast<std::size_t>(i)].size()) >= n - 1) continue;
          int m = i;
          for (std::uint64_t attempt = 0; m == i || linked(adj, i, m); ++attempt) {
            const double u =
                uniform(static_cast<std::uint64_t>(i), (static_cast<std::uint64_t>(d) << 32) + attempt + 1);
            m = std::min(n - 1, static_cast<int>(u * n));
          }
          auto& ri = adj[static_cast<std::size_t>(i)];
          auto& rj = adj[static_cast<std::size_t>(j)];
          ri.erase(std::find(ri.begin(), ri.end(), j));
          rj.erase(std::find(rj.begin(), rj.end(), i));
          link(adj, i, m);
        }
      }
      break;
    }
  }

  WeightMatrix w(rows, n);
  if (spec.kind == NetworkSpec::Kind::all_to_all) {
    w.reserve(Eigen::VectorXi::Constant(rows, std::max(n - 1, 0)));
    for (int i = 0; i < rows; ++i) {
      for (int j = 0; j < n; ++j) {
        if (j != first_agent + i && theta[i] > 0.0) w.insert(i, j) = theta[i] / (n - 1);
      }
    }
  } else {
    std::vector<Eigen::Triplet<double>> triplets;
    for (int i = 0; i < rows; ++i) {
      auto& row = adj[static_cast<std::size_t>(first_agent + i)];
      std::sort(row.begin(), row.end());
      for (int j : row) {
        if (theta[i] > 0.0) triplets.emplace_back(i, j, theta[i] / static_cast<double>(row.size()));
      }
    }
    w.setFromTriplets(triplets.begin(), triplets.end());
  }
  w.makeCompressed();
  return w;
}

}  // namespace herdsim::agents
