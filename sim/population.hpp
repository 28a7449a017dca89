#pragma once
// The interface every agent kind implements (agents/ holds the kinds). The runtime calls decide() in
// parallel over blocks of paths; an implementation writes only its own amount columns for those
// paths and reads other populations' *previous* decisions, so results never depend on scheduling.
#include <memory>
#include <string>
#include <vector>

#include "sim/market/random.hpp"
#include "sim/run_state.hpp"

namespace herdsim::sim {

class AgentExchange;

/// What a decision may read besides the population's own state. Read-only.
struct DecisionContext {
  int step = 0;                     ///< k, the decision being taken (0..steps-1)
  double time = 0.0;                ///< t_k = k dt, years
  const RunState* state = nullptr;  ///< all populations: wealth X_k, previous_amount P_{k-1}
  const CounterRng* rng = nullptr;
  int population_index = 0;  ///< this population's index in RunState::populations (RNG keys)
  int first_path = 0;  ///< global index of path 0 (RunSpec::first_path): path p's RNG key is first_path + p
};

class Population {
 public:
  Population() = default;
  Population(const Population&) = delete;
  Population& operator=(const Population&) = delete;
  virtual ~Population() = default;

  /// Fills params, theory_amount and initial wealth of `own` (count x paths already sized).
  /// May read earlier populations' params (e.g. a leader's alpha). Called once, in population order.
  virtual void initialize(const RunState& state, PopulationState& own) = 0;

  /// Serial hook, called once per step on the calling thread before the parallel decide() (after
  /// amount has become previous_amount): where a population makes its batched inference calls, so that
  /// no backend is ever called from inside the parallel loop. May throw (the run stops before deciding).
  virtual void prepare_step(const DecisionContext& /*ctx*/, PopulationState& /*own*/) {}

  /// Decides P_k for the slots paths [path_begin, path_end) x agents [agent_begin, agent_end): writes
  /// own.amount there and nowhere else.
  virtual void decide(const DecisionContext& ctx, int path_begin, int path_end, int agent_begin,
                      int agent_end, PopulationState& own) const = 0;

  /// True when decisions depend only on (step, agent) — never on paths, wealth or others — and
  /// decide() plays theory_amount, so the runtime may advance blocks of agents through many steps at
  /// once (plan policies; the fused kernel never calls prepare_step).
  [[nodiscard]] virtual bool path_independent() const { return false; }

  /// An agent split (docs/cluster.md): how a block of a split population (PopulationSpec::agent_block)
  /// reaches the other ranks' blocks; not owned. A population whose decisions read other agents of its
  /// own population (peers on a network) exchanges in prepare_step, which every rank calls in step order.
  virtual void set_agent_exchange(AgentExchange* /*exchange*/) {}

  /// Relative cost of one agent-decision (1 = a few flops; ~1000 = a root solve), for partitioning.
  [[nodiscard]] virtual double decision_cost() const { return 1.0; }
};

}  // namespace herdsim::sim
