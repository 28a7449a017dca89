#pragma once
// Influence networks of `peers` populations: the weight matrix theta_ij (row i: whom agent i follows).
#include <Eigen/Core>
#include <Eigen/SparseCore>

#include "sim/market/random.hpp"
#include "sim/scenario_spec.hpp"

namespace herdsim::agents {

using WeightMatrix = Eigen::SparseMatrix<double, Eigen::RowMajor>;

/// Undirected graph of the network kind (all_to_all, ring with k neighbours each side, Erdos-Renyi
/// G(n, p), Watts-Strogatz small world: ring k rewired with probability p), then weights
/// theta_ij = theta_i / degree_i so that each agent's total herding weight is its theta. Random
/// choices are drawn from the `parameters` stream keyed by population_index: deterministic.
[[nodiscard]] WeightMatrix build_network(const sim::NetworkSpec& spec, const Eigen::VectorXd& theta,
                                         int population_index, const sim::CounterRng& rng);

}  // namespace herdsim::agents
