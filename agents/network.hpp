#pragma once
// Influence networks of `peers` populations: the weight matrix theta_ij (row i: whom agent i follows).
#include <Eigen/Core>
#include <Eigen/SparseCore>
#include <array>

#include "sim/enum_names.hpp"
#include "sim/market/random.hpp"

namespace herdsim::agents {

using WeightMatrix = Eigen::SparseMatrix<double, Eigen::RowMajor>;

/// The network of a `peers` population. theta_ij = theta_i / degree_i over i's neighbours, so an
/// agent's total herding weight is its theta whatever the degree.
struct NetworkSpec {
  enum class Kind { all_to_all, ring, erdos_renyi, small_world };
  Kind kind = Kind::ring;
  int k = 2;       ///< ring / small_world: neighbours on each side
  double p = 0.1;  ///< erdos_renyi: edge probability; small_world: rewiring probability
};
constexpr std::array<NamedValue<NetworkSpec::Kind>, 4> enum_names(NetworkSpec::Kind /*unused*/) {
  using NetworkKind = NetworkSpec::Kind;
  return {{{NetworkKind::all_to_all, "all_to_all"},
           {NetworkKind::ring, "ring"},
           {NetworkKind::erdos_renyi, "erdos_renyi"},
           {NetworkKind::small_world, "small_world"}}};
}

/// Undirected graph of the network kind (all_to_all, ring with k neighbours each side, Erdos-Renyi
/// G(n, p), Watts-Strogatz small world: ring k rewired with probability p), then weights
/// theta_ij = theta_i / degree_i so that each agent's total herding weight is its theta. Random
/// choices are drawn from the `parameters` stream keyed by population_index: deterministic.
/// The graph is of `agents_total` agents (theta.size() when 0); the rows returned are those of agents
/// [first_agent, first_agent + theta.size()), with theta theirs: a block of an agent split gets the
/// whole population's rows for its agents (columns: every agent of the population).
[[nodiscard]] WeightMatrix build_network(const NetworkSpec& spec, const Eigen::VectorXd& theta,
                                         int population_index, const sim::CounterRng& rng,
                                         int agents_total = 0, int first_agent = 0);

}  // namespace herdsim::agents
