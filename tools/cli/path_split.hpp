#pragma once
// The path split of `mpirun -np N herdsim run` (docs/cluster.md): each rank runs a fixed block of every
// run's paths (the RNG is keyed by the global path, so the block's paths are those of the one-process
// run), records them into its part file, and rank 0 computes the summaries over every path exactly as one
// process does, from the values the ranks concatenate on it (SummaryGatherer).
#include <memory>
#include <string>
#include <vector>

#include "dist/communicator.hpp"
#include "io/master_file.hpp"
#include "sim/observer.hpp"
#include "sim/recording_plan.hpp"

namespace herdsim::cli {

/// Paths [first, first + count) of `paths`, rank `rank`'s block of `ranks` fixed, contiguous blocks in
/// rank order (sizes differ by at most one).
struct PathBlock {
  int first = 0;
  int count = 0;
};
[[nodiscard]] PathBlock path_block(int paths, int rank, int ranks);

/// Observes one rank's block of a path-split run and, on every row the plan summarizes, concatenates the
/// values of every rank on one rank (Communicator::concatenate_on: in rank order, which is path order) and
/// summarizes them there with analysis::summarize, the recorder's own computation on the same sequence:
/// the summaries are those of the one-process file, bit for bit. The summaries of a row go to the rank that
/// has summarized the fewest agents so far (a deterministic balance, the same on every rank), so the
/// ranks share the work; at on_finish rank 0 collects every statistic (values()). Every rank must observe
/// the same plan (the collectives match up row by row). Memory on the rank that summarizes: one row of
/// every agent on every path, as on one process.
///
/// An agent split (`agents` not empty: per population of the run, each rank's agents when it is split,
/// empty when it is whole on every rank): a split population's values are put back in the one-process
/// order (agents of every rank, path after path) before they are summarized; a whole population's are
/// rank 0's.
class SummaryGatherer final : public sim::Observer {
 public:
  /// `group`: the run's group in the file ("/" or "/sweep_003"); `plan`: the rank's recording plan.
  SummaryGatherer(const sim::RecordingPlan& plan, std::string group, dist::Communicator& world,
                  std::vector<std::vector<int>> agents = {});
  void on_start(const sim::RunState& state) override;
  void on_step(int k, const sim::RunState& state) override;
  /// Collective: the statistics of every row on rank 0 (values()).
  void on_finish(const sim::RunState& /*state*/) override;
  [[nodiscard]] const sim::RecordingPlan* recording_plan() const override { return &plan_; }
  [[nodiscard]] bool reads_amounts() const override { return plan_.summaries(); }
  /// On rank 0 after the run: every summary dataset of the group, by its path in the file.
  [[nodiscard]] const io::SummaryValues& values() const { return values_; }

 private:
  /// Concatenates `local` (a row of population `population`, `pop` on this rank) on the rank whose turn it
  /// is, which summarizes it for the dataset `name`.
  void summarize(const std::string& name, std::size_t population, const sim::PopulationState& pop,
                 const std::vector<double>& local);
  void state_row(const sim::RunState& state);
  void decision_row(const sim::RunState& state);
  [[nodiscard]] std::string dataset(const std::string& population, std::string_view quantity) const;

  sim::RecordingPlan plan_;
  std::string group_;
  dist::Communicator& world_;
  io::SummaryValues values_;
  struct Row {
    std::string dataset;
    int rank;  ///< where it was summarized
  };
  std::vector<Row> rows_;     ///< every summarized row, in order (the same on every rank)
  std::vector<double> load_;  ///< agents summarized so far by each rank
  std::vector<double> mine_;  ///< the statistics of the rows this rank summarized, in order
  std::vector<std::vector<double>> decision_wealth_;  ///< X_k per population, for P_k / X_k
  std::vector<std::vector<int>> agents_;              ///< an agent split's blocks, per population
  std::vector<double> scratch_, all_, ordered_, stats_;
  const std::vector<double> none_;  ///< what a rank other than 0 sends of a whole population
};

}  // namespace herdsim::cli
