#include "tools/cli/path_split.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <numeric>
#include <string>
#include <utility>
#include <vector>

#include "io/hdf5_schema.hpp"
#include "sim/analysis/summary_stats.hpp"
#include "sim/error.hpp"

namespace herdsim::cli {

PathBlock path_block(int paths, int rank, int ranks) {
  const auto edge = [&](int r) { return static_cast<int>(static_cast<long long>(paths) * r / ranks); };
  return {edge(rank), edge(rank + 1) - edge(rank)};
}

SummaryGatherer::SummaryGatherer(const sim::RecordingPlan& plan, std::string group, dist::Communicator& world,
                                 std::vector<std::vector<int>> agents)
    : plan_(plan),
      group_(std::move(group)),
      world_(world),
      load_(static_cast<std::size_t>(world.size()), 0.0),
      agents_(std::move(agents)) {}

std::string SummaryGatherer::dataset(const std::string& population, std::string_view quantity) const {
  return fmt::format("{}{}/{}/{}/{}", group_ == "/" ? "/" : group_ + "/", io::schema::kPopulations,
                     population, io::schema::kSummary, quantity);
}

void SummaryGatherer::summarize(const std::string& name, std::size_t population,
                                const sim::PopulationState& pop, const std::vector<double>& local) {
  const std::vector<int>* blocks =
      population < agents_.size() && !agents_[population].empty() ? &agents_[population] : nullptr;
  const bool whole_on_every_rank = !agents_.empty() && blocks == nullptr;
  // The rank with the least work so far (agents: every rank knows them, the whole population's; the first
  // such rank on a tie).
  const double agents = blocks != nullptr ? std::accumulate(blocks->begin(), blocks->end(), 0.0) : pop.count;
  const auto least = std::min_element(load_.begin(), load_.end());
  const int rank = static_cast<int>(least - load_.begin());
  *least += agents;
  rows_.push_back({name, rank});
  world_.concatenate_on(rank, whole_on_every_rank && world_.rank() != 0 ? none_ : local, all_);
  if (world_.rank() != rank) return;
  if (blocks == nullptr) {
    analysis::summarize(all_, plan_.quantiles(), stats_);
  } else {
    // Rank after rank, each its (block x paths) values path after path; one process: path after path, the
    // agents of every block in order.
    ordered_.resize(all_.size());
    const std::size_t paths = all_.size() / static_cast<std::size_t>(agents);
    std::size_t at = 0;
    for (std::size_t p = 0; p < paths; ++p) {
      std::size_t offset = 0;
      for (const int count : *blocks) {
        const auto n = static_cast<std::size_t>(count);
        std::copy_n(all_.begin() + static_cast<std::ptrdiff_t>(offset * paths + p * n), n,
                    ordered_.begin() + static_cast<std::ptrdiff_t>(at));
        at += n;
        offset += n;
      }
    }
    analysis::summarize(ordered_, plan_.quantiles(), stats_);
  }
  mine_.insert(mine_.end(), stats_.begin(), stats_.end());
}

void SummaryGatherer::on_finish(const sim::RunState& /*state*/) {
  if (!plan_.summaries()) return;
  world_.concatenate_on(0, mine_, all_);
  if (world_.rank() != 0) return;
  // all_ holds each rank's rows in rank order, each rank's in row order.
  const auto per_row = static_cast<std::size_t>(plan_.stats_per_row());
  std::vector<std::size_t> next(load_.size(), 0);
  for (const Row& row : rows_) ++next[static_cast<std::size_t>(row.rank)];
  std::size_t offset = 0;
  for (auto& n : next) offset += std::exchange(n, offset) * per_row;
  if (offset != all_.size())
    throw Error(fmt::format("path split: {} summary values gathered, {} expected", all_.size(), offset));
  for (const Row& row : rows_) {
    const auto at = all_.begin() + static_cast<std::ptrdiff_t>(next[static_cast<std::size_t>(row.rank)]);
    auto& values = values_[row.dataset];
    values.insert(values.end(), at, at + static_cast<std::ptrdiff_t>(per_row));
    next[static_cast<std::size_t>(row.rank)] += per_row;
  }
}

namespace {

/// The values of an (agents x paths) matrix on every path of the block, path after path (every path of a
/// block is recorded: a path split refuses record.paths).
void gather(const Eigen::MatrixXd& matrix, Eigen::Index paths, std::vector<double>& out) {
  out.assign(matrix.data(), matrix.data() + matrix.rows() * paths);
}

}  // namespace

void SummaryGatherer::state_row(const sim::RunState& state) {
  for (std::size_t i = 0; i < state.populations.size(); ++i) {
    const auto& pop = state.populations[i];
    gather(pop.wealth, state.paths, scratch_);
    summarize(dataset(pop.name, io::schema::kWealth), i, pop, scratch_);
  }
}

void SummaryGatherer::decision_row(const sim::RunState& state) {
  const int assets = state.market.assets();
  for (std::size_t i = 0; i < state.populations.size(); ++i) {
    const auto& pop = state.populations[i];
    // Several assets: the total amount in the risky assets, summed in asset order (as the recorder does).
    Eigen::MatrixXd total = pop.amount.leftCols(state.paths);
    for (int a = 1; a < assets; ++a) total += pop.amount.middleCols(a * state.paths, state.paths);
    gather(total, state.paths, scratch_);
    summarize(dataset(pop.name, io::schema::kAmount), i, pop, scratch_);
    const std::vector<double>& wealth = decision_wealth_[i];
    for (std::size_t v = 0; v < scratch_.size(); ++v) scratch_[v] /= wealth[v];
    summarize(dataset(pop.name, io::schema::kProportion), i, pop, scratch_);
  }
}

void SummaryGatherer::on_start(const sim::RunState& state) {
  if (!plan_.summaries()) return;
  decision_wealth_.assign(state.populations.size(), {});
  state_row(state);
  if (plan_.keeps_decision_wealth(0)) {
    for (std::size_t i = 0; i < state.populations.size(); ++i)
      gather(state.populations[i].wealth, state.paths, decision_wealth_[i]);
  }
}

void SummaryGatherer::on_step(int k, const sim::RunState& state) {
  if (!plan_.summaries()) return;
  if (plan_.records_decision(k)) decision_row(state);
  if (plan_.records_state(k + 1)) state_row(state);
  if (plan_.keeps_decision_wealth(k + 1)) {
    for (std::size_t i = 0; i < state.populations.size(); ++i)
      gather(state.populations[i].wealth, state.paths, decision_wealth_[i]);
  }
}

}  // namespace herdsim::cli
