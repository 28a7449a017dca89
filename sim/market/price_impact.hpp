#pragma once
// The endogenous market of docs/theory.md §7.2: each asset's fundamental F is the exogenous GBM of §7.1
// (ExogenousGbm, the same draws) and its market price S is moved by the agents' net dollar flow,
//
//   S_{k+1} = max(floor, S_k (1 + g_k) e^{I_k}),   I_k = Lambda (Flow_k / Depth),
//   Flow_{j,k} = sum_i (P_ij(k) - P_ij(k-1) d_j(k)) = H_j(k) - d_j(k) H_j(k-1),
//
// with g_k the fundamental's simple return and d_j(k) what a holding filled at the last trade grew to by
// this one (computed as H_k - d H_{k-1}, H_k = sum_i P_i(k)). Pre-impact execution fills at S_k (d = S_k /
// S_{k-1}); post-impact execution fills at S'_k = max(floor, S_k e^{I_k}) (d = S_k / S'_{k-1}, the
// fundamental's growth) and the holding carried in earns the impact. The flow is reduced over fixed blocks of
// agents, combined in a fixed order: the same bits for any thread count.
#include <Eigen/Core>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "sim/market/asset_covariance.hpp"
#include "sim/market/exogenous_gbm.hpp"
#include "sim/market/market.hpp"

namespace herdsim::sim {

/// The problems of m.impact (keys under [market], e.g. "impact.depth[1]"); empty when valid or absent.
[[nodiscard]] std::vector<MarketProblem> impact_problems(const MarketSpec& m);

/// The spectral radius of Lambda diag(holding) / Depth at the initial prices (docs/theory.md §7.2):
/// holding_j is the agents' summed amount in asset j, currency units. Below 1 is linearly stable.
[[nodiscard]] double impact_stability_radius(const MarketSpec& m, const Eigen::VectorXd& holding);

/// A warning when the planned amounts of `populations` (theory_amount: count x (assets x steps), summed
/// over agents at each step) violate the stability condition at some step; nothing otherwise or when
/// the market has no impact. Populations without a plan (noise traders, LLM agents) are not counted.
[[nodiscard]] std::optional<std::string> impact_stability_warning(
    const MarketSpec& m, std::span<const PopulationState> populations, int steps);

class PriceImpact final : public Market {
 public:
  /// Agents per block of the flow reduction: fixed, so the sums depend on neither the thread count nor,
  /// in an agent split, the rank count (a rank's block of a population is whole flow blocks).
  static constexpr int kFlowBlock = kAgentReductionBlock;

  /// The market of `spec.market` with m.impact active. Throws ScenarioError when spec.market is invalid.
  explicit PriceImpact(const ScenarioSpec& spec);

  [[nodiscard]] int assets() const override { return fundamental_.assets(); }
  [[nodiscard]] bool exogenous() const override { return false; }
  void initialize(MarketState& state) override;
  /// Moves the fundamental (ExogenousGbm), reduces the flow of `populations`, then the market price.
  void move(int k, std::span<const PopulationState> populations, MarketState& state) override;
  [[nodiscard]] const Settlement& settlement() const override { return settlement_; }
  /// Each split population's block sums are concatenated from every rank (in rank order, which is block
  /// order) and added in the one-process order. Throws Error when a split population's block does not
  /// start on a flow block.
  void set_agent_exchange(AgentExchange* exchange) override;

 private:
  void reduce_flow(std::span<const PopulationState> populations);
  /// Adds a split population's blocks of every rank (this rank's `blocks` in partial_) to held_.
  void add_split_blocks(int blocks, Eigen::Index cols, const std::string& population);

  ExogenousGbm fundamental_;
  MarketState fundamental_state_;  ///< F, g and eps on every path
  ImpactSpec impact_;
  Eigen::MatrixXd lambda_;      ///< N x N
  std::vector<double> price0_;  ///< per asset
  int paths_ = 0;
  Eigen::MatrixXd drift_;  ///< d: paths x assets, growth of a holding since its fill (1 before step 0)
  Eigen::MatrixXd flow_;   ///< paths x assets, the last step's net flow, currency units
  Eigen::MatrixXd held_;   ///< H_k = sum_i P_i(k), paths x assets, currency units (0 before step 0)
  Eigen::MatrixXd held_previous_;  ///< H_{k-1}
  Eigen::MatrixXd partial_;        ///< blocks x columns: one population's block sums
  /// An agent split: which populations are blocks of a larger one (PopulationSpec::agents_total), the
  /// exchange (not owned), and this rank's block sums and every rank's, block after block (a block's
  /// columns contiguous: the concatenation in rank order is the whole population's blocks in order).
  struct Block {
    bool split = false;
    Eigen::Index first = 0;  ///< PopulationSpec::first_agent
    Eigen::Index total = 0;  ///< PopulationSpec::agents_total
  };
  std::vector<Block> split_;
  AgentExchange* exchange_ = nullptr;
  std::vector<double> local_partial_, all_partial_;
  Settlement settlement_;
};

}  // namespace herdsim::sim
