#include "tools/cli/agent_split.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

#include "agents/herd_agent.hpp"
#include "sim/memory.hpp"

namespace herdsim::cli {

namespace {

/// The populations that another population follows (herd's influence = "leader").
std::vector<std::string> leaders_of(const sim::ScenarioSpec& spec) {
  std::vector<std::string> out;
  for (const auto& ps : spec.populations) {
    if (ps.kind != agents::HerdParams::kind) continue;
    const auto& hp = agents::params_of<agents::HerdParams>(ps);
    if (hp.influence == agents::Influence::leader) out.push_back(hp.leader);
  }
  return out;
}

/// A herd population following peers on a network (its agents read each other's decisions).
bool peers_of(const sim::PopulationSpec& ps) {
  return ps.kind == agents::HerdParams::kind &&
         agents::params_of<agents::HerdParams>(ps).influence == agents::Influence::peers;
}

}  // namespace

std::vector<bool> agent_split_populations(const sim::ScenarioSpec& spec, int ranks) {
  const std::vector<std::string> leaders = leaders_of(spec);
  std::vector<bool> out;
  for (const auto& ps : spec.populations) {
    const bool leads = std::find(leaders.begin(), leaders.end(), ps.name) != leaders.end();
    out.push_back(!leads && sim::agent_split_blocks(ps.count) >= ranks);
  }
  return out;
}

std::string agent_split_problem(const std::vector<sim::ScenarioSpec>& specs, int ranks) {
  for (const auto& spec : specs) {
    if (spec.record.enabled && !spec.record.paths.empty())
      return "record.paths names recorded paths; an agent split records every path (leave record.paths out)";
    if (spec.record.enabled && spec.record.max_agents >= 0)
      return "record.max_agents records the first agents; an agent split records every agent (leave "
             "record.max_agents out)";
    const std::vector<bool> split = agent_split_populations(spec, ranks);
    for (std::size_t i = 0; i < spec.populations.size(); ++i) {
      const auto& ps = spec.populations[i];
      if (ps.kind == "investagent")
        return fmt::format(
            "population '{}' is LLM-backed (investagent): its requests and transcripts are not split by "
            "agents "
            "yet",
            ps.name);
      if (split[i] && peers_of(ps) &&
          agents::params_of<agents::HerdParams>(ps).policy == agents::Policy::replan)
        return fmt::format(
            "population '{}' herds with peers on a network with policy = \"replan\": it solves the whole "
            "network's game from every agent's wealth on every path and step, which an agent split does not "
            "exchange (policy = \"adaptive\" or \"plan\" can be split)",
            ps.name);
      if (!ps.investors.empty()) {
        const auto source = std::find_if(spec.populations.begin(), spec.populations.end(),
                                         [&](const auto& q) { return q.name == ps.investors; });
        if (source != spec.populations.end() &&
            split[static_cast<std::size_t>(source - spec.populations.begin())] != split[i])
          return fmt::format("population '{}' takes the investors of '{}', and only one of the two is split",
                             ps.name, ps.investors);
      }
    }
    if (std::none_of(split.begin(), split.end(), [](bool s) { return s; }))
      return fmt::format(
          "no population has {} agents or more ({} ranks x blocks of {}) and leads no other: nothing to "
          "split",
          static_cast<long long>(ranks) * sim::kAgentReductionBlock, ranks, sim::kAgentReductionBlock);
  }
  return {};
}

double agent_split_bytes(const std::vector<sim::ScenarioSpec>& specs, int ranks) {
  double largest = 0.0;
  for (const sim::ScenarioSpec& spec : specs) {
    const std::vector<bool> split = agent_split_populations(spec, ranks);
    sim::ScenarioSpec share = spec;
    double gathered = 0.0;
    double exchanged = 0.0;
    for (std::size_t i = 0; i < share.populations.size(); ++i) {
      auto& ps = share.populations[i];
      if (spec.record.enabled && spec.record.summaries)
        gathered = std::max(gathered, 2.0 * 8.0 * static_cast<double>(ps.count) * spec.run.paths);
      if (split[i] && peers_of(ps)) {
        // Every rank holds every agent's previous decisions (and the exchange's two buffers).
        exchanged += 3.0 * 8.0 * static_cast<double>(ps.count) * spec.run.paths * spec.market.asset_count();
      }
      if (split[i]) {
        int most = 0;
        for (int r = 0; r < ranks; ++r) most = std::max(most, sim::agent_block(ps.count, r, ranks).count);
        ps.count = most;
      }
    }
    largest = std::max(largest, sim::run_memory_bytes(share) + gathered + exchanged);
  }
  return largest;
}

void CommunicatorExchange::concatenate_all(std::span<const double> local, std::vector<double>& all) {
  const auto t0 = std::chrono::steady_clock::now();
  world_.concatenate_all(local, all);
  seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  bytes_ += 8.0 * static_cast<double>(all.size());
  ++exchanges_;
}

}  // namespace herdsim::cli
