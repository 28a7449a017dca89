#pragma once
// The agents file of the mutual-influence game (`herdsim theory --problem mutual --agents FILE`).
//
// Format (docs/theory.md §8.1): a header row, then one row per agent i = 0..N-1.
//   alpha,x0,theta_0,theta_1,...,theta_{N-1}
// `lottery_prob` may replace `alpha` (mapped with the chosen lottery convention), and `score_j`
// columns may replace `theta_j` (theta = score * 1e-8). theta_ij is the weight of agent j in agent
// i's penalty; the diagonal must be 0. Blank lines and lines starting with '#' are ignored.
#include <string>

#include "sim/theory/market.hpp"
#include "sim/theory/mutual_game.hpp"

namespace herdsim::io {

/// Reads alpha, x0 and theta of a MutualGame (market, horizon and time are left at their defaults).
/// Throws IoError if the file cannot be read, InputError listing every problem (with line numbers).
[[nodiscard]] theory::MutualGame read_agents_csv(
    const std::string& path, theory::LotteryConvention lottery = theory::lottery_win10_sure3);

}  // namespace herdsim::io
