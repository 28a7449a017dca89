#pragma once
// The validated description of a scenario: plain structs, no behaviour. io/ builds them from a TOML
// file (every problem reported at once); sim/ turns one into a Simulation. One spec can feed many
// runs (sweep points are separate specs).
#include <any>
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "sim/enum_names.hpp"

namespace herdsim::sim {

/// How wealth moves over one step of length dt given the shock eps.
enum class WealthUpdate {
  arithmetic,  ///< the paper's: X <- X(1 + r dt) + P(v dt + sigma sqrt(dt) eps); price S <- S(1 + mu dt +
               ///< sigma sqrt(dt) eps)
  lognormal,   ///< exact GBM: X <- (X - P) e^{r dt} + P S'/S, S' = S exp((mu - sigma^2/2) dt + sigma sqrt(dt)
               ///< eps)
};
constexpr std::array<NamedValue<WealthUpdate>, 2> enum_names(WealthUpdate /*unused*/) {
  return {{{WealthUpdate::arithmetic, "arithmetic"}, {WealthUpdate::lognormal, "lognormal"}}};
}

/// [run]
struct RunSpec {
  std::uint64_t seed = 42;  ///< keys every random draw (market, noise, parameters)
  int paths = 1;            ///< independent Monte Carlo market paths
  /// The global index of this run's path 0: a block of paths [first_path, first_path + paths) of a larger
  /// run (one rank's share of a path split, docs/cluster.md). Every path-keyed draw uses the global index,
  /// so a block's paths are bit for bit those of the whole run. Not a scenario key: 0 unless split.
  int first_path = 0;
  double horizon = 10.0;   ///< T, years
  int steps_per_year = 1;  ///< decisions per year; 1 reproduces the paper
  WealthUpdate wealth_update = WealthUpdate::arithmetic;
  [[nodiscard]] int steps() const { return static_cast<int>(horizon * steps_per_year + 0.5); }
  [[nodiscard]] double dt() const { return 1.0 / steps_per_year; }
};

/// Which market moves prices (sim/market/market.hpp; make_market builds it).
enum class MarketModel {
  exogenous_gbm,  ///< stocks following geometric Brownian motions that no agent moves (docs/theory.md §1,
                  ///< §7.1)
};

/// One risky asset of a market with several (MarketSpec::assets).
struct AssetSpec {
  std::string name;     ///< the asset's name in messages and on the output's asset axis
  double mu = 0.07;     ///< drift, per year
  double sigma = 0.17;  ///< volatility, per sqrt(year)
  double price0 = 1.0;  ///< initial price, currency units per share
};

/// When a trade is filled relative to the price impact it causes (docs/theory.md §7.2).
enum class Execution {
  pre_impact,   ///< at S_k, before the flow's impact: the fresh position earns the impact
  post_impact,  ///< at S_k e^{I_k}, after it: the impact accrues to the holding carried into the step
};
constexpr std::array<NamedValue<Execution>, 2> enum_names(Execution /*unused*/) {
  return {{{Execution::pre_impact, "pre_impact"}, {Execution::post_impact, "post_impact"}}};
}

/// [market.impact]: prices moved by the agents' net dollar flow (docs/theory.md §7.2). Absent (lambda
/// empty or all zero): the exogenous market, bit for bit.
struct ImpactSpec {
  /// Lambda, N x N row-major (diagonal: own impact; off the diagonal: cross impact). Empty: no impact.
  std::vector<double> lambda;
  /// Depth_j, currency units, one per asset (depth = ...); empty when depth_multiple is given.
  std::vector<double> depth;
  /// Depth_j = depth_multiple_j x market value_j, the market value moving with the market price
  /// (market_value_j S_j / price0_j, fixed shares outstanding); empty when depth is given.
  std::vector<double> depth_multiple;
  std::vector<double> market_value;  ///< currency units at price0, one per asset (with depth_multiple)
  Execution execution = Execution::post_impact;
  std::vector<double> floor;  ///< lowest market price per asset, currency units per share; empty: none

  /// True when some entry of Lambda is non-zero (the market is endogenous).
  [[nodiscard]] bool active() const {
    for (const double x : lambda)
      if (x != 0.0) return true;
    return false;
  }
};

/// [market] (per year)
struct MarketSpec {
  MarketModel model = MarketModel::exogenous_gbm;
  double mu = 0.07;     ///< asset 0's drift (the only asset's when there is one)
  double r = 0.04;      ///< deposit rate
  double sigma = 0.17;  ///< asset 0's volatility, per sqrt(year)
  double price0 = 1.0;  ///< asset 0's initial price
  /// Several risky assets: every asset in order, N >= 2 (assets[0] repeats mu, sigma and price0, so code
  /// written for one asset reads asset 0). Empty: one asset, described by mu, sigma and price0.
  std::vector<AssetSpec> assets;
  /// The correlation matrix of the assets' shocks, N x N row-major; empty with one asset.
  std::vector<double> correlation;
  ImpactSpec impact;  ///< [market.impact]; inactive by default

  /// N, the number of risky assets.
  [[nodiscard]] int asset_count() const { return assets.empty() ? 1 : static_cast<int>(assets.size()); }
  /// Asset a (a < asset_count()); with one asset, the one that mu, sigma and price0 describe.
  [[nodiscard]] AssetSpec asset(int a) const {
    return assets.empty() ? AssetSpec{"asset0", mu, sigma, price0} : assets[static_cast<std::size_t>(a)];
  }
};

/// A distribution of a per-agent parameter; optional truncation to [low, high] (rejection-free,
/// by inverse CDF of the truncated law).
struct DistributionSpec {
  enum class Kind { uniform, normal, lognormal };
  Kind kind = Kind::uniform;
  double a = 0.0;             ///< uniform: low; normal: mean; lognormal: mean of ln X
  double b = 1.0;             ///< uniform: high; normal: std; lognormal: std of ln X
  std::optional<double> low;  ///< truncation (normal, lognormal)
  std::optional<double> high;
};
constexpr std::array<NamedValue<DistributionSpec::Kind>, 3> enum_names(DistributionSpec::Kind /*unused*/) {
  using Kind = DistributionSpec::Kind;
  return {{{Kind::uniform, "uniform"}, {Kind::normal, "normal"}, {Kind::lognormal, "lognormal"}}};
}

/// One per-agent parameter: a constant, a list (combined as a grid with the population's other
/// lists, then cycled to count), or a distribution (drawn per agent from the `parameters` stream).
struct ParamSpec {
  enum class Form { constant, list, distribution };
  /// What the numbers are: the parameter itself, a lottery probability (alpha only), or a
  /// dependence score (theta only, theta = score * 1e-8).
  enum class Scale { direct, lottery_prob, score };
  Form form = Form::constant;
  Scale scale = Scale::direct;
  double value = 0.0;             ///< constant
  std::vector<double> values;     ///< list
  DistributionSpec distribution;  ///< distribution
};

/// The `inference` table of an investagent population: which backend answers and how. Plain data: the
/// backend itself is created outside the agents by a factory (inference::BackendFactory).
struct InferenceSpec {
  std::string backend;  ///< plugin name ("llama"), a plugin path (contains '/'), "replay" or "reference"
  std::string model;    ///< model file (plugins); empty for replay
  std::vector<std::string> lora;  ///< LoRA adapter files, applied in order
  double temperature = 0.0;       ///< 0 = greedy
  int max_tokens = 384;           ///< upper bound on generated tokens per request
  int batch = 64;                 ///< requests per backend call
  int threads = 1;                ///< backend threads
  bool prefix_sharing = true;     ///< let the backend evaluate the shared prompt prefix once
  std::string mode =
      "batch_invariant";          ///< llama plugins: "batch_invariant" or "fast" (docs/investagents.md)
  bool grammar = true;            ///< constrain the output with the answer's GBNF grammar
  std::string replay;             ///< backend = "replay": the run file whose transcripts answer
  std::string replay_group;       ///< replay: only this run group ("/", "/sweep_001"); empty = any
  std::string replay_population;  ///< replay: only this population; empty = any
  std::string answerer;           ///< backend = "reference": p3_closed_form, advisor, merton or own_theory
};

/// [[population]]: what every population has, and its kind's own parameters. The kind (agents/kind.hpp)
/// defines, reads and checks those; agents::params_of<P>(spec) gives them typed.
struct PopulationSpec {
  std::string name;
  std::string kind;  ///< the registered kind's name ("merton", "herd", ...)
  int count = 1;
  ParamSpec wealth;  ///< initial wealth, currency units
  std::any params;   ///< the kind's parameter type (e.g. agents::HerdParams)
  /// `investors`: the population whose investors this one takes (alpha, theta, wealth and its other
  /// drawn parameters, agent for agent; common random numbers). Empty: its own.
  std::string investors;
  /// Source line of the [[population]] table, for messages raised after parsing (0 if unknown).
  int source_line = 0;
  /// The global index of this population's agent 0: a block of agents [first_agent, first_agent + count)
  /// of a larger population (one rank's share of an agent split, docs/cluster.md). Every agent-keyed draw,
  /// grid position and leader pairing uses the global index, so a block's agents are bit for bit those of
  /// the whole population. Not a scenario key: 0 unless split.
  int first_agent = 0;
  /// A block of an agent-split population: the whole population's count (every rank's agents), and the
  /// market's cross-agent sums take every rank's blocks (sim::AgentExchange). 0 for a whole population
  /// (replicated on every rank of a split). Not a scenario key.
  int agents_total = 0;

  /// True for a block of an agent-split population (agents_total > 0).
  [[nodiscard]] bool agent_block() const { return agents_total > 0; }
};

/// [record]
struct RecordSpec {
  int every = 1;             ///< record every k-th step (the final step is always recorded)
  bool trajectories = true;  ///< false: per-step summaries only
  bool summaries = true;     ///< per-step mean, std, min, max, quantiles (false: trajectories at disk speed)
  bool enabled = true;       ///< false: nothing but the final summary (benchmarks)
  std::vector<int> paths;    ///< subset of paths to record (empty: all)
  int max_agents = -1;       ///< record only the first max_agents agents of each population (-1: all)
  int compression = 0;       ///< gzip level 0..9 for trajectory datasets
  std::vector<double> quantiles{0.05, 0.25, 0.5, 0.75, 0.95};
};

/// A whole validated scenario (one sweep point).
struct ScenarioSpec {
  RunSpec run;
  MarketSpec market;
  std::vector<PopulationSpec> populations;
  RecordSpec record;
  std::string text;  ///< the full scenario text after overrides, [sweep] included (provenance)
  std::vector<std::pair<std::string, double>> sweep_point;  ///< key path -> value of this sweep point
};

}  // namespace herdsim::sim
