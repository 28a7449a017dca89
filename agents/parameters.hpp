#pragma once
// Per-agent parameters from their scenario description: constants, lists combined as a grid and
// cycled to the population's count, or distributions drawn from the `parameters` RNG stream.
#include <Eigen/Core>
#include <string>
#include <utility>
#include <vector>

#include "sim/market/random.hpp"
#include "sim/scenario_spec.hpp"
#include "sim/theory/market.hpp"

namespace herdsim::agents {

/// A named parameter of a population kind, in the order that defines the grid (first slowest).
struct NamedParam {
  std::string name;
  const sim::ParamSpec* spec;
};

/// The investor parameters a kind draws for a population and the convention mapping its lottery
/// probabilities (Kind::investor_draws).
struct InvestorDraws {
  std::vector<NamedParam> params;
  theory::LotteryConvention lottery = theory::lottery_win10_sure3;
};

/// Values for `count` agents, the agents [first_agent, first_agent + count) of the population
/// (PopulationSpec::first_agent: a block of an agent split). Lists form a grid over all list-valued
/// parameters in `params` order (the first varies slowest), cycled to the population's agents; distributions
/// are drawn per agent with the key (population_index, parameter position, agent). Grid positions and keys
/// use the global agent index. Scales (lottery_prob, score) are mapped.
[[nodiscard]] std::vector<std::pair<std::string, Eigen::VectorXd>> expand_params(
    const std::vector<NamedParam>& params, int count, int population_index, const sim::CounterRng& rng,
    theory::LotteryConvention lottery = theory::lottery_win10_sure3, int first_agent = 0);

/// expand_params without the scales' mapping: the values as the scenario gives them (lottery probabilities,
/// scores), at the same grid positions and draws.
[[nodiscard]] std::vector<std::pair<std::string, Eigen::VectorXd>> unscaled_values(
    const std::vector<NamedParam>& params, int count, int population_index, const sim::CounterRng& rng,
    int first_agent = 0);

/// Inverse CDF of a (possibly truncated) distribution at u in (0, 1).
[[nodiscard]] double sample_distribution(const sim::DistributionSpec& d, double u);

/// Maps a raw value by the parameter's scale (lottery probability -> alpha under the convention,
/// score -> theta).
[[nodiscard]] double apply_scale(sim::ParamSpec::Scale scale, double value,
                                 theory::LotteryConvention lottery = theory::lottery_win10_sure3);

}  // namespace herdsim::agents
