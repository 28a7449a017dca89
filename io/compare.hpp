#pragma once
// `herdsim compare`: every population of every run group of a run file against theory
// (docs/analysis.md). Reads the file row by row (io::RunFile) and the scenario stored in it, has
// sim/analysis compute (analyse_population, add_theory_references, make_error_table), and renders the
// result as JSON (stable, documented schema) or Markdown.
#include <Eigen/Core>
#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "io/compare_market.hpp"
#include "sim/analysis/counterfactual.hpp"
#include "sim/analysis/error_table.hpp"
#include "sim/analysis/investor_types.hpp"
#include "sim/analysis/run_metrics.hpp"

namespace herdsim::io {

struct CompareOptions {
  int lsv_min_traders = 5;                                        ///< LSV n_min
  analysis::LsvTrade lsv_trade = analysis::LsvTrade::proportion;  ///< what a buy is
  double cssd_quantile = 0.05;                                    ///< Christie–Huang tail fraction q
  int newey_west_lag = -1;                                        ///< -1: floor(4 (n/100)^(2/9))
  double significance = 0.05;                                     ///< two-sided level behind the verdicts
  double confidence = 0.95;                                       ///< CE interval
  std::size_t memory_budget = std::size_t{2} << 30;               ///< bytes for per-(agent, path) state
  int per_agent_limit = 100000;  ///< per-agent arrays in the JSON are cut at this many agents
  /// Per-agent parameters to tabulate every per-agent measure by (--by): recorded ones (alpha, theta,
  /// wealth0, ...) or "lottery_prob" and "score", derived from alpha and theta where not recorded.
  std::vector<std::string> by;
  /// Times (years, --at) at which each agent's opinion w is also a per-agent measure
  /// ("w_simulated_at_t=T", "w_theory_at_t=T"), at the recorded decision step nearest each; every one
  /// must lie within every run group's horizon.
  std::vector<double> at_years;
  /// Herding statistics of each herd population's rational counterfactual (the same investors with
  /// theta = 0 on the same paths) and what the population adds to them; on by default (issue 15: the
  /// verdict speaks of the difference), --no-counterfactual skips it. Where it cannot be computed
  /// (record.every > 1) a note says why.
  bool counterfactual = true;
};

/// A paired population against the population whose investors it took: per-agent differences.
struct PairedComparison {
  std::string source;  ///< the `investors` population (its direct source)
  int agents = 0;      ///< agents compared (analysed in both)
  analysis::PairedDifferences differences;
  std::vector<analysis::TypeTable> by_type;  ///< the differences by each --by parameter
};

struct PopulationComparison {
  std::string name;
  std::string kind;
  std::string policy;     ///< herd only (empty otherwise)
  std::string herd;       ///< absolute | relative (herd only)
  std::string influence;  ///< leader | peers (herd only)
  std::string leader;     ///< influence = leader
  std::string protocol;   ///< investagent only: absolute | relative | mutual | step
  std::string problem;    ///< investagent only: what theory/amount is, P3 | P1 | P2 (step: P3)
  /// investagent only, in a market of several assets: the asset it trades, in which it is analysed as in a
  /// one-asset market (its amounts in the others are 0); empty otherwise.
  std::string asset;
  int count = 0;
  int recorded_agents = 0;
  int analysed_agents = 0;
  std::vector<int> decision_steps;
  std::vector<double> decision_times;  ///< years
  analysis::PopulationMetrics metrics;
  std::optional<analysis::ErrorTable> table;
  std::string investors;  ///< the population whose investors it took (paired populations)
  /// The --by parameters of the analysed agents (those the population has), and the tables by them.
  std::vector<std::pair<std::string, Eigen::VectorXd>> type_params;
  std::vector<analysis::TypeTable> by_type;
  std::optional<PairedComparison> paired;
  std::optional<analysis::Counterfactual> counterfactual;
  /// Several assets (schema 2): RMSE of the amount against theory/amount per asset, currency units.
  std::vector<double> asset_decision_rmse;
};

struct RunComparison {
  std::string group;
  std::string sweep_point;
  std::vector<std::pair<std::string, double>> sweep_values;  ///< swept key path -> value (sweep points)
  int steps = 0;
  double dt = 0.0;
  int every = 1;
  int paths = 0;
  std::string wealth_update;
  std::vector<PopulationComparison> populations;
  /// Schema-2 groups only (several assets, or price impact): the market section (io/compare_market.hpp).
  std::optional<MarketComparison> market;
};

struct Comparison {
  std::string run_file;
  std::string herdsim_version;  ///< of the compare that produced it
  std::string created;
  std::string scenario;  ///< the file's scenario text (the columns of a comparison across files)
  CompareOptions options;
  std::vector<RunComparison> runs;
};

/// Analyses every run group of the file. progress (optional) is told which population is being read.
/// Throws IoError for an unreadable file and ScenarioError if the stored scenario no longer parses.
[[nodiscard]] Comparison compare_run(const std::string& path, const CompareOptions& options,
                                     const std::string& herdsim_version,
                                     const std::function<void(const std::string&)>& progress = {});

/// JSON of schema herdsim-analysis v1 (docs/analysis.md); NaN is written as null. A sweep file's JSON
/// also has the tables across its sweep points under "across" (io/compare_sweep.hpp).
[[nodiscard]] std::string comparison_json(const Comparison& comparison);
/// A readable Markdown report of the same results.
[[nodiscard]] std::string comparison_markdown(const Comparison& comparison);

/// Several analyses side by side (e.g. a base model against its fine-tuned InvestAgent on the same
/// scenario): one row per (run group, population) present in the first, with each file's headline
/// numbers, then each file's MSE table, then the tables across files and run groups (io/compare_sweep.hpp).
/// JSON: {"schema": "herdsim-analysis-set", "analyses": [...], "across": {...}}.
[[nodiscard]] std::string comparisons_json(const std::vector<Comparison>& comparisons);
[[nodiscard]] std::string comparisons_markdown(const std::vector<Comparison>& comparisons);

}  // namespace herdsim::io
