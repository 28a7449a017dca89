#pragma once
// The theory side of a population's comparison: the plan's certainty equivalent per agent and, for
// herding agents, their own Merton plans and the reference Pbar that h and w(t) are measured against.
// The caller (io/compare) says which theory applies, in theory types; this computes it.
#include <Eigen/Core>
#include <optional>
#include <string>
#include <vector>

#include "sim/analysis/run_metrics.hpp"
#include "sim/theory/schedule.hpp"

namespace herdsim::analysis {

/// Which theory a population's decisions are held against.
struct PopulationTheory {
  explicit PopulationTheory(const theory::Schedule& simulated_steps) : steps(simulated_steps) {}

  /// The simulated steps (a discrete schedule): decisions k = 0..n-1 at k dt, and the arithmetic
  /// market of the plan's CE.
  theory::Schedule steps;
  bool ce_exact = true;  ///< the run's wealth update is arithmetic, so the plan's CE is exact
  /// Herding agents: the time model of their own Merton plans (nullopt: no h or w(t)).
  std::optional<theory::Schedule> own_plan;
  bool absolute = false;                          ///< absolute herding: w(t) is defined
  HerdReference reference = HerdReference::none;  ///< leader or population_mean (herding agents)
  /// reference = leader: the leader's time model (nullopt: the leader is not in the scenario).
  std::optional<theory::Schedule> leader_plan;
};

/// Sets input.ce_theory and input.ce_exact from the plan (input.theory, agents x n) when input.alpha
/// and input.wealth0 are set, and for herding agents input.merton, input.opinion, input.reference and
/// input.leader (the leader's Merton plans for leader_alpha, one per agent: a leader is a merton
/// population playing its plan). Appends notes on what h and w(t) stand on.
void add_theory_references(PopulationInput& input, const PopulationTheory& theory,
                           const Eigen::VectorXd& leader_alpha, std::vector<std::string>& notes);

}  // namespace herdsim::analysis
