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

}  // namespace herdsim::sim
