#pragma once
// The names of the HDF5 run file's groups, datasets and attributes (docs/hdf5-schema.md), in one place:
// the writer (io/hdf5_output.cpp), the reader (io/run_file.cpp) and everything reading through RunFile
// (compare, export, replay) spell them from here. Python reads the same layout through
// tools/herdsim_load.py. Each name is a whole string literal, so data() is NUL-terminated for the HDF5 C API.
#include <string>
#include <string_view>

namespace herdsim::io::schema {

/// One risky asset: schema 1 (every file before several assets, bit for bit).
inline constexpr int kSchemaVersion = 1;
/// Several risky assets: schema 2, an asset axis in market/, amount and theory/amount.
inline constexpr int kSchemaVersionAssets = 2;

// Root attributes (provenance).
inline constexpr std::string_view kSchemaVersionAttr = "schema_version";
inline constexpr std::string_view kHerdsimVersion = "herdsim_version";
inline constexpr std::string_view kSeed = "seed";
inline constexpr std::string_view kScenario = "scenario";
inline constexpr std::string_view kCommandLine = "command_line";
inline constexpr std::string_view kCreated = "created";
inline constexpr std::string_view kComplete = "complete";
/// Run groups of a sweep are "/sweep_000", "/sweep_001", ...
inline constexpr std::string_view kSweepPrefix = "sweep_";

// Run group attributes.
inline constexpr std::string_view kSteps = "steps";
inline constexpr std::string_view kDt = "dt";
inline constexpr std::string_view kEvery = "every";
inline constexpr std::string_view kPathsTotal = "paths_total";
inline constexpr std::string_view kPaths = "paths";
inline constexpr std::string_view kSweepPoint = "sweep_point";
inline constexpr std::string_view kAssets = "assets";           ///< schema 2: N
inline constexpr std::string_view kAssetNames = "asset_names";  ///< schema 2: "name0,name1,..."

// Groups of a run group.
inline constexpr std::string_view kTime = "time";
inline constexpr std::string_view kMarket = "market";
inline constexpr std::string_view kPopulations = "populations";

// time/ and market/ datasets.
inline constexpr std::string_view kStep = "step";
inline constexpr std::string_view kT = "t";
inline constexpr std::string_view kDecisionStep = "decision_step";
inline constexpr std::string_view kPrice = "price";
inline constexpr std::string_view kFundamental = "fundamental";  ///< schema 2: the exogenous GBM price
inline constexpr std::string_view kFlow = "flow";  ///< schema 2 with price impact: net dollar flow per step
inline constexpr std::string_view kReturn = "return";
inline constexpr std::string_view kShock = "shock";

// populations/<name>/ attributes.
inline constexpr std::string_view kKind = "kind";
inline constexpr std::string_view kCount = "count";
inline constexpr std::string_view kRecordedAgents = "recorded_agents";
/// Present on paired populations: the population whose investors (parameters, draws) it took.
inline constexpr std::string_view kInvestors = "investors";
inline constexpr std::string_view kBackend = "backend";
inline constexpr std::string_view kBackendDescription = "backend_description";
inline constexpr std::string_view kProtocol = "protocol";
/// investagent populations in a market of several assets: the name of the one asset they trade.
inline constexpr std::string_view kTradedAsset = "asset";
inline constexpr std::string_view kInferenceRequests = "inference_requests";
inline constexpr std::string_view kInferenceInvalid = "inference_invalid";
inline constexpr std::string_view kInferenceSeconds = "inference_seconds";
// (prompt_tokens, cached_tokens, completion_tokens: the transcripts' column names, as totals.)

// params/lottery_prob attributes: the lottery convention mapping the probabilities to alpha.
inline constexpr std::string_view kLotteryProb = "lottery_prob";
inline constexpr std::string_view kLottery = "lottery";
inline constexpr std::string_view kLotteryAmounts = "lottery_amounts";

// populations/<name>/ datasets and groups. wealth and amount also name the summary datasets.
inline constexpr std::string_view kWealth = "wealth";
inline constexpr std::string_view kAmount = "amount";
inline constexpr std::string_view kProportion = "proportion";
inline constexpr std::string_view kParams = "params";
inline constexpr std::string_view kTheory = "theory";  ///< holds kAmount (decision_step, agent)
inline constexpr std::string_view kSummary = "summary";
inline constexpr std::string_view kStats = "stats";  ///< attribute of summary/: "mean,std,min,max,q0.05,..."
inline constexpr std::string_view kTranscripts = "transcripts";

// transcripts/ datasets (kStep too).
inline constexpr std::string_view kPath = "path";
inline constexpr std::string_view kAgent = "agent";
inline constexpr std::string_view kStage = "stage";
inline constexpr std::string_view kPromptHash = "prompt_hash";
inline constexpr std::string_view kRequestSeed = "seed";
inline constexpr std::string_view kOutput = "output";
inline constexpr std::string_view kValues = "values";
inline constexpr std::string_view kValid = "valid";
inline constexpr std::string_view kStatus = "status";
inline constexpr std::string_view kPromptTokens = "prompt_tokens";
inline constexpr std::string_view kCachedTokens = "cached_tokens";
inline constexpr std::string_view kCompletionTokens = "completion_tokens";
inline constexpr std::string_view kTimeMs = "time_ms";
inline constexpr std::string_view kCacheHit = "cache_hit";  ///< only with a decision cache

/// "a/b/...": a path below a run group, e.g. path(kTime, kStep) = "time/step".
template <class... Names>
std::string path(std::string_view first, Names... rest) {
  std::string out(first);
  ((out += '/', out += std::string_view(rest)), ...);
  return out;
}

// Attributes of every dataset.
inline constexpr std::string_view kDims = "dims";
inline constexpr std::string_view kUnits = "units";

}  // namespace herdsim::io::schema
