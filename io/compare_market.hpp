#pragma once
// The market section of `herdsim compare` for schema-2 run groups (several assets, or price impact;
// docs/analysis.md "Market"): per-asset stylised facts, the mispricing against the fundamental and its
// episodes, CSSD and CSAD regressions across assets, and the price-taker gap of each population (its
// decisions and certainty equivalent against its price-taker theory). Reads market/ through io::RunFile;
// sim/analysis/market_stats computes. Schema-1 groups get no market section (their JSON is unchanged).
#include <optional>
#include <string>
#include <vector>

#include "sim/analysis/market_stats.hpp"
#include "sim/analysis/run_metrics.hpp"

namespace herdsim::io {

class RunFile;
struct RunGroupInfo;

/// Settings of the market section.
struct MarketOptions {
  int max_lag = 20;                                ///< autocorrelations at lags 1..max_lag
  std::vector<double> hill_tails{0.05, 0.025};     ///< Hill tail fractions
  std::vector<double> cssd_quantiles{0.01, 0.05};  ///< Christie–Huang tail fractions
  analysis::EpisodeRule episodes;                  ///< bubble and crash rule
  analysis::HerdingOptions herding;                ///< significance and Newey–West lag
};

/// One asset's market statistics.
struct AssetMarket {
  std::string name;
  std::optional<analysis::StylisedFacts> facts;           ///< of the log returns ln(1 + market/return)
  std::optional<analysis::MispricingSummary> mispricing;  ///< of ln(price / fundamental), every wealth row
  std::optional<analysis::EpisodeSummary> episodes;       ///< of the same panel
  double flow_mean_abs = analysis::kNaN;  ///< mean |market/flow|, currency units (impact only)
};

/// The market section of one run group.
struct MarketComparison {
  MarketOptions options;
  int assets = 1;
  bool impact = false;  ///< market/flow recorded (prices moved by the agents)
  std::vector<AssetMarket> per_asset;
  std::optional<analysis::AssetHerding> herding;  ///< across assets, N >= 2
  std::vector<std::string> notes;
};

/// The market section of a schema-2 group (g.asset_axis); never throws for a statistic that cannot be
/// estimated (too few periods, too few assets): it leaves it out with a note.
[[nodiscard]] MarketComparison compare_market(const RunFile& file, const RunGroupInfo& g,
                                              const MarketOptions& options);

}  // namespace herdsim::io
