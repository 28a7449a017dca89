#pragma once
// The seam of an agent split (docs/cluster.md): each rank runs a block of the agents of the large
// populations (PopulationSpec::agents_total) and replicates the small ones (leaders). A cross-agent
// quantity (the market's net flow under price impact) is reduced over fixed blocks of agents, the same
// blocks as on one process; the ranks exchange the blocks' partial sums, bit for bit, and every rank adds
// them in the same fixed order: never a floating-point reduction across ranks. tools/ implements the
// exchange with the MPI communicator; sim/ stays MPI-free.
#include <span>
#include <vector>
#include "sim/scenario_spec.hpp"

namespace herdsim::sim {

/// Agents per block of a cross-agent reduction (PriceImpact's flow): fixed, so that the sums depend on
/// neither the thread count nor the rank count.
inline constexpr int kAgentReductionBlock = 4096;

/// The ranks of an agent split, as the market sees them.
class AgentExchange {
 public:
  AgentExchange() = default;
  AgentExchange(const AgentExchange&) = delete;
  AgentExchange& operator=(const AgentExchange&) = delete;
  virtual ~AgentExchange() = default;
  /// Collective (every rank calls it at the same point of the step): every rank's `local` concatenated in
  /// rank order into `all`, on every rank. The values travel as they are.
  virtual void concatenate_all(std::span<const double> local, std::vector<double>& all) = 0;
};

/// Agents [first, first + count) of a population: one rank's block.
struct AgentBlock {
  int first = 0;
  int count = 0;
};

/// Rank `rank`'s block of a population of `agents` split over `ranks` ranks: whole reduction blocks
/// (kAgentReductionBlock agents; the last block of the population may be shorter), contiguous, in rank
/// order; the ranks' numbers of blocks differ by at most one. A rank gets no agent when the population
/// has fewer blocks than there are ranks (agent_split_blocks says how many it has).
[[nodiscard]] AgentBlock agent_block(int agents, int rank, int ranks);

/// Reduction blocks of a population of `agents`.
[[nodiscard]] int agent_split_blocks(int agents);

/// Rank `rank`'s share of `spec` in an agent split of `ranks` ranks: each population with split[i] set
/// becomes its agent_block (first_agent, count, agents_total); the others stay whole.
[[nodiscard]] ScenarioSpec agent_split_block(const ScenarioSpec& spec, const std::vector<bool>& split,
                                             int rank, int ranks);

}  // namespace herdsim::sim
