#pragma once
// Reading a run file back (docs/hdf5-schema.md, schema_version 1 and 2): what compare, export and report
// need. A schema-2 group (several assets, or price impact) is described and checked here: its market/
// datasets and amounts have an asset axis (market_assets(), read_row's asset).
// Trajectories are read one row at a time (optionally a range of agents), never whole, so analysing or
// exporting a file needs memory for one row, not for the run.
//
// Layout rule: a dataset with rows r and a last axis of length C comes back as an Eigen matrix with
// C rows and one column per dataset row (column-major), i.e. column r is dataset row r. So
// `theory/amount` (n, M) is M x n, exactly the engine's PopulationState::theory_amount, and one
// trajectory row (P, M) is M x P, the engine's wealth/amount layout.
#include <Eigen/Core>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace herdsim::io {

/// Root attributes of a run file.
struct RunFileInfo {
  int schema_version = 0;
  std::string herdsim_version;
  std::uint64_t seed = 0;
  std::string scenario;  ///< full scenario text after overrides
  std::string command_line;
  std::string created;
  bool complete = false;
  /// The run groups: {"/"} for a single run, {"/sweep_000", "/sweep_001", ...} for a sweep.
  std::vector<std::string> groups;
};

/// One recorded population.
struct PopulationInfo {
  std::string name;
  std::string kind;  ///< the kind's name (merton, herd, noise, investagent, ...)
  int count = 0;     ///< agents in the population
  int recorded_agents = 0;
  bool has_trajectories = false;           ///< wealth and amount
  bool has_theory = false;                 ///< theory/amount
  std::vector<std::string> params;         ///< names under params/
  std::vector<std::string> summary_stats;  ///< column names of summary/* (empty: no summaries)
  bool has_transcripts = false;            ///< transcripts/ (LLM-backed populations)
  std::string backend;                     ///< backend name (LLM-backed populations)
  std::string protocol;                    ///< investagent protocol
};

/// populations/<name>/transcripts/ read whole: one entry per request, in file order.
struct Transcripts {
  std::vector<int> step, path, agent, stage;
  std::vector<std::uint64_t> prompt_hash, seed;
  std::vector<std::string> output, status;
  Eigen::MatrixXd values;  ///< width x requests (column r = request r), NaN padded
  std::vector<std::uint8_t> valid;
  std::vector<int> prompt_tokens, cached_tokens, completion_tokens;
  std::vector<double> time_ms;
  std::vector<std::uint8_t> cache_hit;  ///< empty when the run had no decision cache
  [[nodiscard]] std::size_t size() const { return step.size(); }
};

/// One run group.
struct RunGroupInfo {
  std::string group;
  int steps = 0;  ///< n decisions
  double dt = 0.0;
  int every = 1;
  int paths_total = 0;
  std::vector<int> paths;   ///< recorded paths (the path axis)
  std::string sweep_point;  ///< "key=value;..." (sweep points only)
  int assets = 1;           ///< risky assets (schema 2: may be 1 under price impact)
  /// Schema 2: market/, amount and theory/amount have an asset axis (several assets, or price impact
  /// with one), and market/fundamental is there.
  bool asset_axis = false;
  std::vector<std::string> asset_names;  ///< one per asset
  std::vector<int> wealth_steps;         ///< step index of each wealth row
  std::vector<double> wealth_times;      ///< time/t: t of each wealth row, in years
  std::vector<int> decision_steps;       ///< step index of each decision row
  std::vector<PopulationInfo> populations;
  [[nodiscard]] const PopulationInfo* population(const std::string& name) const;
};

/// A run file opened read-only. Throws IoError for a file that is missing, not HDF5, not a herdsim
/// run file, of a newer schema, or incomplete (unless allow_incomplete).
class RunFile {
 public:
  explicit RunFile(const std::string& path, bool allow_incomplete = false);
  ~RunFile();
  RunFile(const RunFile&) = delete;
  RunFile& operator=(const RunFile&) = delete;

  [[nodiscard]] const std::string& path() const { return path_; }
  [[nodiscard]] const RunFileInfo& info() const { return info_; }
  /// Attributes, time axes and population list of a group named in info().groups, checked against the
  /// shapes of every dataset the readers use (IoError naming the mismatch: nothing downstream trusts an
  /// attribute that its data contradict).
  [[nodiscard]] RunGroupInfo group(const std::string& group) const;

  /// market/price (P x S), market/return or market/shock (P x D) of a group without an asset axis.
  [[nodiscard]] Eigen::MatrixXd market(const std::string& group, const std::string& name) const;
  /// Whether market/<name> exists (fundamental, flow: schema 2 only).
  [[nodiscard]] bool has_market(const std::string& group, const std::string& name) const;
  /// market/<name> per asset, either schema: one P x rows matrix per asset (schema 1: the one asset).
  [[nodiscard]] std::vector<Eigen::MatrixXd> market_assets(const std::string& group,
                                                           const std::string& name) const;

  /// One row of populations/<population>/<dataset> (dataset = "wealth" or "amount") for agents
  /// [agent_begin, agent_begin + agents) into out (agents x P). agents < 0: to the last recorded agent.
  /// asset: which asset of a schema-2 amount (D, N, P, M); 0 for every other dataset.
  void read_row(const std::string& group, const std::string& population, const std::string& dataset, int row,
                Eigen::MatrixXd& out, int agent_begin = 0, int agents = -1, int asset = 0) const;

  /// params/<name> of the recorded agents (M).
  [[nodiscard]] Eigen::VectorXd param(const std::string& group, const std::string& population,
                                      const std::string& name) const;
  /// theory/amount: M x n (schema 2: of the given asset).
  [[nodiscard]] Eigen::MatrixXd theory_amount(const std::string& group, const std::string& population,
                                              int asset = 0) const;
  /// transcripts/ of an LLM-backed population (IoError when it has none).
  [[nodiscard]] Transcripts transcripts(const std::string& group, const std::string& population) const;
  /// summary/<quantity> (wealth, amount, proportion): Q x rows, Q = summary_stats columns.
  [[nodiscard]] Eigen::MatrixXd summary(const std::string& group, const std::string& population,
                                        const std::string& quantity) const;

  struct Impl;

 private:
  /// Throws IoError naming what differs when the group's attributes and its datasets' shapes disagree.
  void check_consistency(const RunGroupInfo& g) const;

  std::string path_;
  std::unique_ptr<Impl> impl_;
  RunFileInfo info_;
};

/// "run.h5" -> "run.analysis.json": where compare leaves its results next to the run file.
[[nodiscard]] std::string analysis_sidecar_path(const std::string& run_path);

}  // namespace herdsim::io
