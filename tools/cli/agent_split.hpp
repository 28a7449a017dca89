#pragma once
// The agent split of `mpirun -np N herdsim run --split agents` (docs/cluster.md): every rank runs every
// path of every run, the large populations split into fixed blocks of agents (sim::agent_block: whole
// reduction blocks, in rank order) and the small ones (leaders) replicated. The market's flow under price
// impact, the one cross-agent quantity of a step, is reduced from every rank's block sums, exchanged bit
// for bit (Communicator::concatenate_all) and added in the one-process order on every rank.
#include <span>
#include <string>
#include <vector>

#include "dist/communicator.hpp"
#include "sim/agent_exchange.hpp"
#include "sim/scenario_spec.hpp"

namespace herdsim::cli {

/// Which populations of `spec` an agent split over `ranks` ranks splits: those with at least as many
/// reduction blocks (sim::kAgentReductionBlock agents) as there are ranks, so that every rank has agents,
/// and that no other population follows (a leader is replicated: its followers read any of its agents).
[[nodiscard]] std::vector<bool> agent_split_populations(const sim::ScenarioSpec& spec, int ranks);

/// Why the runs of `specs` cannot be split by agents across `ranks` ranks, or "" when they can.
[[nodiscard]] std::string agent_split_problem(const std::vector<sim::ScenarioSpec>& specs, int ranks);

/// The memory estimate of one rank's share of the largest run of `specs` split by agents: the largest block
/// of every split population, the others whole, plus, with summaries on, the row of every agent on every
/// path of the largest population that the rank may summarize (gathered, then put in agent order: twice).
[[nodiscard]] double agent_split_bytes(const std::vector<sim::ScenarioSpec>& specs, int ranks);

/// The exchange of an agent split through the communicator, timed: what the benchmark reports as the
/// communication cost per step (docs/benchmarks.md).
class CommunicatorExchange final : public sim::AgentExchange {
 public:
  explicit CommunicatorExchange(dist::Communicator& world) : world_(world) {}
  void concatenate_all(std::span<const double> local, std::vector<double>& all) override;
  [[nodiscard]] long long exchanges() const { return exchanges_; }
  [[nodiscard]] double bytes_received() const { return bytes_; }  ///< every rank's values, summed over calls
  [[nodiscard]] double seconds() const { return seconds_; }       ///< wall time inside the exchanges

 private:
  dist::Communicator& world_;
  long long exchanges_ = 0;
  double bytes_ = 0.0;
  double seconds_ = 0.0;
};

}  // namespace herdsim::cli
