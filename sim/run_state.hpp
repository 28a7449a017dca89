#pragma once
// The mutable state of one run, structure-of-arrays in Eigen columns. Owned by Simulation; observers
// (recorder, metrics) see it read-only through Observer callbacks.
#include <Eigen/Core>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "sim/scenario_spec.hpp"

namespace herdsim::sim {

/// One population: its per-agent parameters and its agents' state on every path.
struct PopulationState {
  std::string name;
  AgentKind kind = AgentKind::merton;
  int count = 0;
  /// Per-agent parameters, each a vector of `count` values (alpha, theta, wealth0, ...), in a fixed order.
  std::vector<std::pair<std::string, Eigen::VectorXd>> params;
  /// Theoretical open-loop optimum: count x steps amounts, column k = decision k (agents contiguous,
  /// like wealth and amount; the HDF5 (step, agent) layout). Empty where the theory defines none.
  Eigen::MatrixXd theory_amount;
  /// Current wealth X, count x paths (column p = path p, agents contiguous), currency units.
  Eigen::MatrixXd wealth;
  /// AMOUNT in the stock chosen at the last decision, count x paths, currency units.
  Eigen::MatrixXd amount;
  /// The decision before that (P_{k-1} while step k is decided): what adaptive agents observe, so
  /// that no decision depends on the order in which populations decide.
  Eigen::MatrixXd previous_amount;
};

/// Market state on every path.
struct MarketState {
  Eigen::VectorXd price;          ///< stock price after the last step, per path
  Eigen::VectorXd simple_return;  ///< S_{k+1}/S_k - 1 of the last step, per path
  Eigen::VectorXd shock;          ///< eps of the last step, per path
};

/// Everything an observer may read.
struct RunState {
  const ScenarioSpec* spec = nullptr;
  int steps = 0;  ///< n decisions
  int paths = 0;
  MarketState market;
  std::vector<PopulationState> populations;
};

}  // namespace herdsim::sim
