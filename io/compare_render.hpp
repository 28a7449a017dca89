#pragma once
// io-internal: the pieces of `herdsim compare`'s JSON and Markdown shared by io/compare.cpp (populations)
// and io/compare_market.cpp (the market section of schema-2 groups), each written once.
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "io/compare.hpp"
#include "io/run_file.hpp"
#include "sim/scenario_spec.hpp"

namespace herdsim::io {

/// One herding regression: model, verdict, coefficients with the standard errors behind the verdict.
[[nodiscard]] nlohmann::json regression_json(const analysis::HerdingRegression& r, int observations);
/// "- label: verdict (coef = x [p = y], ...; Newey–West lag L)" and a newline.
void markdown_regression(std::string& md, const char* label, const analysis::HerdingRegression& r);

/// A comparison holding only the population's identity: name, kind, counts, decision steps and times.
[[nodiscard]] PopulationComparison population_identity(const RunGroupInfo& g, const PopulationInfo& info);

/// A population of a group with several assets: its identity, a note, and the decision error per asset
/// against theory/amount (the per-agent measures of io/compare.cpp are for one asset).
[[nodiscard]] PopulationComparison several_assets_population(const RunFile& file, const RunGroupInfo& g,
                                                             const PopulationInfo& info,
                                                             const sim::ScenarioSpec& spec,
                                                             double confidence);

/// The market section of a run ("market" in docs/analysis.md); pops give the price-taker gap.
[[nodiscard]] nlohmann::json market_json(const MarketComparison& m,
                                         const std::vector<PopulationComparison>& pops);
/// The same as Markdown, appended to md.
void market_markdown(std::string& md, const MarketComparison& m,
                     const std::vector<PopulationComparison>& pops);

}  // namespace herdsim::io
