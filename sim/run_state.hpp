#pragma once
// The mutable state of one run, structure-of-arrays in Eigen columns. Owned by Simulation; observers
// (recorder, metrics) see it read-only through Observer callbacks.
#include <Eigen/Core>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "sim/scenario_spec.hpp"

namespace herdsim::sim {

/// One inference request of an LLM-backed population and what came of it (a row of `transcripts/`).
struct Transcript {
  int step = 0;                   ///< decision k at which the request was made
  int path = -1;                  ///< path, or -1 when the answer applies to every path
  int agent = 0;                  ///< agent index in the population
  int stage = 0;                  ///< protocol stage (relative: 0 absolute prompt, 1 changes)
  std::uint64_t prompt_hash = 0;  ///< investalign::Prompt::hash() of the prompt
  std::uint64_t seed = 0;         ///< sampling seed of the request
  std::string output;             ///< the generated text, as returned
  std::vector<double> values;     ///< parsed values, fractions (the fallback when invalid)
  bool valid = false;             ///< the answer parsed (investalign::ParsedAnswer::valid)
  std::string status;             ///< the parser's status name (ok, missing_key, ...)
  int prompt_tokens = 0;          ///< tokens of the formatted prompt
  int cached_tokens = 0;          ///< of those, reused from a shared prefix
  int completion_tokens = 0;      ///< generated tokens
  double time_ms = 0.0;           ///< backend wall time attributed to the request
  bool cache_hit = false;         ///< answered from the decision cache
};

/// The inference record of an LLM-backed population: provenance, totals, and the transcripts of the
/// current step (observers write them in on_step; the runtime then clears them, so memory stays bounded).
struct InferenceLog {
  std::string backend;              ///< Backend::name()
  std::string backend_description;  ///< Backend::describe() (JSON)
  std::string protocol;             ///< the protocol's name (agents::InvestProtocol)
  int width = 1;                    ///< columns of Transcript::values in the file (shorter rows: NaN)
  bool decision_cache = false;      ///< the backend may answer from a decision cache (Backend::caches)
  std::vector<Transcript> pending;  ///< transcripts of the current step
  std::int64_t requests = 0;        ///< totals over the run so far
  std::int64_t invalid = 0;
  std::int64_t prompt_tokens = 0;
  std::int64_t cached_tokens = 0;
  std::int64_t completion_tokens = 0;
  std::int64_t cache_hits = 0;  ///< answers from the decision cache
  double seconds = 0.0;         ///< wall time inside Backend::generate
};

/// One population: its per-agent parameters and its agents' state on every path.
struct PopulationState {
  std::string name;
  std::string kind;  ///< the kind's name (PopulationSpec::kind)
  int count = 0;
  /// Per-agent parameters, each a vector of `count` values (alpha, theta, wealth0, ...), in a fixed order.
  std::vector<std::pair<std::string, Eigen::VectorXd>> params;
  /// Theoretical open-loop optimum: count x (assets x steps) amounts, column a steps + k = asset a at
  /// decision k (agents contiguous, like wealth and amount; one asset: count x steps, the HDF5 (step,
  /// agent) layout). Empty where the theory defines none.
  Eigen::MatrixXd theory_amount;
  /// Current wealth X, count x paths (column p = path p, agents contiguous), currency units.
  Eigen::MatrixXd wealth;
  /// AMOUNT in each asset chosen at the last decision, currency units: count x (assets x paths), columns
  /// [a paths, (a + 1) paths) = asset a (count x paths like wealth; one asset: count x paths).
  /// A plan's amounts (a path-independent population: every column its decision) are allocated at their
  /// first reader: the step loop, an observer that reads amounts (Observer::reads_amounts) or
  /// Simulation::state(); until then (a fused run watched by such observers only) amount and
  /// previous_amount are empty (0 x 0).
  Eigen::MatrixXd amount;
  /// The decision before that (P_{k-1} while step k is decided): what adaptive agents observe, so
  /// that no decision depends on the order in which populations decide.
  Eigen::MatrixXd previous_amount;
  /// State a kind keeps between decisions (what its agents observed, answers not yet played, ...), by name,
  /// as the kind documents it (agents/<kind>_agent.hpp): one matrix each, agents in rows unless documented
  /// otherwise. Only the population's own hooks write it; observers may read it.
  std::vector<std::pair<std::string, Eigen::MatrixXd>> kind_state;
  /// LLM-backed populations only: transcripts and accounting.
  std::optional<InferenceLog> inference;

  /// The kind-state matrix called name, or nullptr.
  [[nodiscard]] const Eigen::MatrixXd* find_kind_state(std::string_view state_name) const {
    for (const auto& [key, values] : kind_state) {
      if (key == state_name) return &values;
    }
    return nullptr;
  }
  [[nodiscard]] Eigen::MatrixXd* find_kind_state(std::string_view state_name) {
    for (auto& [key, values] : kind_state) {
      if (key == state_name) return &values;
    }
    return nullptr;
  }
};

/// Market state on every path, written only by the market (sim/market/market.hpp). Each matrix is
/// paths x assets: column a = asset a on every path.
struct MarketState {
  Eigen::MatrixXd price;          ///< asset price after the last step, currency units per share
  Eigen::MatrixXd simple_return;  ///< S_{k+1}/S_k - 1 of the last step
  Eigen::MatrixXd shock;          ///< the standard normal eps of the last step (the fundamental's)
  /// The fundamental F (docs/theory.md §7.2), the exogenous GBM price; empty in an exogenous market,
  /// where it is the price itself.
  Eigen::MatrixXd fundamental;
  /// The agents' net dollar flow of the last step (currency units); empty in an exogenous market.
  Eigen::MatrixXd flow;
  /// Risky assets of the run.
  [[nodiscard]] int assets() const { return static_cast<int>(price.cols()); }
};

/// Everything an observer may read.
struct RunState {
  const ScenarioSpec* spec = nullptr;
  int steps = 0;  ///< n decisions
  int paths = 0;
  MarketState market;
  std::vector<PopulationState> populations;
};

}  // namespace herdsim::sim
