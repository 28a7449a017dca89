#include "sim/agent_exchange.hpp"

#include <algorithm>

namespace herdsim::sim {

int agent_split_blocks(int agents) {
  return static_cast<int>((static_cast<long long>(agents) + kAgentReductionBlock - 1) / kAgentReductionBlock);
}

AgentBlock agent_block(int agents, int rank, int ranks) {
  const long long blocks = agent_split_blocks(agents);
  const auto edge = [&](int r) {
    return static_cast<int>(std::min<long long>(blocks * r / ranks * kAgentReductionBlock, agents));
  };
  return {edge(rank), edge(rank + 1) - edge(rank)};
}

ScenarioSpec agent_split_block(const ScenarioSpec& spec, const std::vector<bool>& split, int rank,
                               int ranks) {
  ScenarioSpec out = spec;
  for (std::size_t i = 0; i < out.populations.size(); ++i) {
    if (!split[i]) continue;
    const AgentBlock block = agent_block(spec.populations[i].count, rank, ranks);
    out.populations[i].first_agent = block.first;
    out.populations[i].count = block.count;
    out.populations[i].agents_total = spec.populations[i].count;
  }
  return out;
}

}  // namespace herdsim::sim
