#include "sim/market/price_impact.hpp"

#include <fmt/format.h>
#include <tbb/blocked_range2d.h>
#include <tbb/parallel_for.h>
#include <tbb/partitioner.h>

#include <Eigen/Eigenvalues>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "sim/error.hpp"

namespace herdsim::sim {

namespace {

/// The sum Eigen computes of values[0, len) lying at element `index` of an aligned array. Its vectorized sum
/// adds the elements before the first packet-aligned one last, so its bits depend on the address: a block of
/// an agent split sums its agents as they lie in the one-process run's matrix (column c of the whole
/// population's count: element c total + first agent + ...), copied to that alignment when they lie
/// otherwise (an odd count).
double sum_as_at(const double* values, Eigen::Index len, Eigen::Index index) {
  constexpr Eigen::Index lanes = Eigen::internal::packet_traits<double>::size;
  const auto lane_of = [](const double* p) {
    return static_cast<Eigen::Index>(reinterpret_cast<std::uintptr_t>(p) / sizeof(double) % lanes);
  };
  if (lane_of(values) == index % lanes) return Eigen::Map<const Eigen::VectorXd>(values, len).sum();
  thread_local std::vector<double, Eigen::aligned_allocator<double>> scratch;
  scratch.resize(static_cast<std::size_t>(len + 2 * lanes));
  double* at = scratch.data();
  while (lane_of(at) != index % lanes) ++at;
  std::copy_n(values, len, at);
  return Eigen::Map<const Eigen::VectorXd>(at, len).sum();
}

/// Depth_j at market price s (currency units): given, or depth_multiple_j x market_value_j s / price0_j.
double depth_at(const ImpactSpec& im, std::size_t j, double price, double price0) {
  if (!im.depth.empty()) return im.depth[j];
  return im.depth_multiple[j] * im.market_value[j] * (price / price0);
}

/// "impact.key" with one asset, "impact.key[j]" with several entries.
std::string entry_key(std::string_view key, std::size_t j, std::size_t size) {
  return size == 1 ? fmt::format("impact.{}", key) : fmt::format("impact.{}[{}]", key, j);
}

void check_per_asset(std::string_view key, const std::vector<double>& values, std::size_t n, bool allow_zero,
                     std::vector<MarketProblem>& out) {
  if (values.size() != n) {
    out.push_back({fmt::format("impact.{}", key),
                   fmt::format("needs one entry per asset ({}), got {}", n, values.size())});
    return;
  }
  for (std::size_t j = 0; j < n; ++j) {
    const double x = values[j];
    if (!std::isfinite(x) || x < 0.0 || (!allow_zero && x == 0.0))
      out.push_back({entry_key(key, j, n),
                     fmt::format("must be {} and finite, got {}", allow_zero ? ">= 0" : "> 0", x)});
  }
}

}  // namespace

std::vector<MarketProblem> impact_problems(const MarketSpec& m) {
  std::vector<MarketProblem> out;
  const ImpactSpec& im = m.impact;
  if (im.lambda.empty() && im.depth.empty() && im.depth_multiple.empty() && im.market_value.empty() &&
      im.floor.empty())
    return out;
  const auto n = static_cast<std::size_t>(m.asset_count());
  if (im.lambda.size() != n * n) {
    out.push_back(
        {"impact.lambda", fmt::format("must be {} x {} (one row and column per asset), got {} entries", n, n,
                                      im.lambda.size())});
  } else {
    for (std::size_t i = 0; i < n; ++i)
      for (std::size_t j = 0; j < n; ++j)
        if (!std::isfinite(im.lambda[i * n + j]))
          out.push_back({n == 1 ? std::string("impact.lambda") : fmt::format("impact.lambda[{}][{}]", i, j),
                         fmt::format("must be finite, got {}", im.lambda[i * n + j])});
  }
  const bool direct = !im.depth.empty();
  const bool multiple = !im.depth_multiple.empty() || !im.market_value.empty();
  if (direct && multiple) {
    out.push_back({"impact.depth", "give either depth or depth_multiple with market_value, not both"});
  } else if (direct) {
    check_per_asset("depth", im.depth, n, false, out);
  } else if (multiple) {
    if (im.depth_multiple.empty())
      out.push_back({"impact.depth_multiple",
                     "market_value needs depth_multiple (depth = depth_multiple x "
                     "market value)"});
    else
      check_per_asset("depth_multiple", im.depth_multiple, n, false, out);
    if (im.market_value.empty())
      out.push_back({"impact.market_value",
                     "depth_multiple needs market_value (each asset's market value at "
                     "price0, currency units)"});
    else
      check_per_asset("market_value", im.market_value, n, false, out);
  } else {
    out.push_back({"impact.depth",
                   "impact needs the market's depth: depth = D (currency units) or "
                   "depth_multiple = c with market_value = V"});
  }
  if (!im.floor.empty()) {
    check_per_asset("floor", im.floor, n, true, out);
    for (std::size_t j = 0; j < n && im.floor.size() == n; ++j)
      if (im.floor[j] >= m.asset(static_cast<int>(j)).price0)
        out.push_back(
            {entry_key("floor", j, n), fmt::format("must lie below the initial price {}, got {}",
                                                   m.asset(static_cast<int>(j)).price0, im.floor[j])});
  }
  return out;
}

double impact_stability_radius(const MarketSpec& m, const Eigen::VectorXd& holding) {
  const Eigen::Index n = m.asset_count();
  Eigen::MatrixXd a(n, n);
  for (Eigen::Index i = 0; i < n; ++i) {
    for (Eigen::Index j = 0; j < n; ++j) {
      const auto js = static_cast<std::size_t>(j);
      const double price0 = m.asset(static_cast<int>(j)).price0;
      a(i, j) = m.impact.lambda[static_cast<std::size_t>(i * n + j)] * holding[j] /
                depth_at(m.impact, js, price0, price0);
    }
  }
  if (n == 1) return std::abs(a(0, 0));
  return Eigen::EigenSolver<Eigen::MatrixXd>(a, false).eigenvalues().cwiseAbs().maxCoeff();
}

std::optional<std::string> impact_stability_warning(const MarketSpec& m,
                                                    std::span<const PopulationState> populations, int steps) {
  if (!m.impact.active()) return std::nullopt;
  const int n = m.asset_count();
  double worst = 0.0;
  int worst_step = 0;
  Eigen::VectorXd worst_holding = Eigen::VectorXd::Zero(n);
  for (int k = 0; k < steps; ++k) {
    Eigen::VectorXd holding = Eigen::VectorXd::Zero(n);
    for (const PopulationState& pop : populations) {
      if (pop.theory_amount.cols() != static_cast<Eigen::Index>(n) * steps) continue;
      for (int a = 0; a < n; ++a) holding[a] += pop.theory_amount.col(a * steps + k).sum();
    }
    const double radius = impact_stability_radius(m, holding);
    if (radius > worst) {
      worst = radius;
      worst_step = k;
      worst_holding = holding;
    }
  }
  if (!(worst >= 1.0)) return std::nullopt;
  std::string held;
  for (int a = 0; a < n; ++a) held += fmt::format("{}{:.6g}", a == 0 ? "" : ", ", worst_holding[a]);
  return fmt::format(
      "market.impact: the linear stability condition of docs/theory.md §7.2 is violated: the spectral radius "
      "of lambda diag(sum_i P_i) / depth is {:.4g} >= 1 at step {} (the planned amounts sum to [{}]); under "
      "pre-impact execution returns oscillate with a growing amplitude, and a turnover of these holdings "
      "moves log prices by more than 1",
      worst, worst_step, held);
}

PriceImpact::PriceImpact(const ScenarioSpec& spec)
    // ExogenousGbm runs the market's own checks (sim::market_problems, the impact's among them) first.
    : fundamental_(spec), impact_(spec.market.impact), paths_(spec.run.paths) {
  const int n = fundamental_.assets();
  lambda_.resize(n, n);
  for (int i = 0; i < n; ++i) {
    for (int j = 0; j < n; ++j) lambda_(i, j) = impact_.lambda[static_cast<std::size_t>(i * n + j)];
    price0_.push_back(spec.market.asset(i).price0);
  }
  for (const PopulationSpec& ps : spec.populations) {
    split_.push_back({ps.agent_block(), ps.first_agent, ps.agents_total});
    if (ps.agent_block() && ps.first_agent % kFlowBlock != 0)
      throw Error(fmt::format(
          "price impact: population '{}''s block of agents starts at agent {}, not on a flow block of {}",
          ps.name, ps.first_agent, kFlowBlock));
  }
  settlement_.deposit_growth = fundamental_.settlement().deposit_growth;
  settlement_.excess = Eigen::MatrixXd::Zero(paths_, n);
  if (impact_.execution == Execution::post_impact)
    settlement_.holding_gain = Eigen::MatrixXd::Zero(paths_, n);
}

void PriceImpact::initialize(MarketState& state) {
  fundamental_.initialize(fundamental_state_);
  const int n = assets();
  state.price = fundamental_state_.price;
  state.fundamental = fundamental_state_.price;
  state.simple_return = Eigen::MatrixXd::Zero(paths_, n);
  state.shock = Eigen::MatrixXd::Zero(paths_, n);
  state.flow = Eigen::MatrixXd::Zero(paths_, n);
  drift_ = Eigen::MatrixXd::Ones(paths_, n);
  flow_ = Eigen::MatrixXd::Zero(paths_, n);
  held_ = Eigen::MatrixXd::Zero(paths_, n);
  held_previous_ = Eigen::MatrixXd::Zero(paths_, n);
}

void PriceImpact::set_agent_exchange(AgentExchange* exchange) {
  exchange_ = exchange;
}

void PriceImpact::reduce_flow(std::span<const PopulationState> populations) {
  // sum_i (P_i(k) - P_i(k-1) d) = H_k - d H_{k-1}, H_k = sum_i P_i(k): previous_amount is the decision
  // before (P_{k-1}, 0 before the first), whose sum the previous step kept, so only P_k is read.
  held_previous_.swap(held_);
  held_.setZero();
  const Eigen::Index cols = static_cast<Eigen::Index>(assets()) * paths_;
  for (std::size_t i = 0; i < populations.size(); ++i) {
    const PopulationState& pop = populations[i];
    const Block block = i < split_.size() ? split_[i] : Block{};
    const bool split = block.split;
    if (pop.count == 0 && !split) continue;  // a split population's rank with no agent still exchanges
    if (pop.count > 0 && pop.amount.cols() != cols)
      throw Error(fmt::format("price impact: population '{}' holds no amounts to reduce", pop.name));
    const int blocks = (pop.count + kFlowBlock - 1) / kFlowBlock;
    partial_.resize(blocks, cols);
    // One task per (column, block): each writes its own partial sum; blocks are fixed by kFlowBlock.
    tbb::parallel_for(
        tbb::blocked_range2d<Eigen::Index>(0, cols, 1, 0, blocks, 1),
        [&](const tbb::blocked_range2d<Eigen::Index>& r) {
          for (Eigen::Index c = r.rows().begin(); c != r.rows().end(); ++c) {
            for (Eigen::Index b = r.cols().begin(); b != r.cols().end(); ++b) {
              const Eigen::Index begin = b * kFlowBlock;
              const Eigen::Index len = std::min<Eigen::Index>(kFlowBlock, pop.count - begin);
              partial_(b, c) = split ? sum_as_at(pop.amount.col(c).data() + begin, len,
                                                 c * block.total + block.first + begin)
                                     : pop.amount.col(c).segment(begin, len).sum();
            }
          }
        },
        tbb::simple_partitioner{});
    if (split) {
      add_split_blocks(blocks, cols, pop.name);
      continue;
    }
    // Populations in order, blocks in order: a fixed order of additions.
    for (Eigen::Index c = 0; c < cols; ++c) {
      double& h = held_(c % paths_, c / paths_);
      for (Eigen::Index b = 0; b < blocks; ++b) h += partial_(b, c);
    }
  }
  flow_ = held_.array() - held_previous_.array() * drift_.array();
}

void PriceImpact::add_split_blocks(int blocks, Eigen::Index cols, const std::string& population) {
  if (exchange_ == nullptr)
    throw Error(
        fmt::format("price impact: population '{}' is a block of agents, and no exchange reaches the "
                    "other blocks",
                    population));
  // Block after block, a block's columns contiguous: every rank's, concatenated in rank order, are the
  // whole population's blocks in order.
  local_partial_.resize(static_cast<std::size_t>(blocks * cols));
  for (Eigen::Index b = 0; b < blocks; ++b)
    for (Eigen::Index c = 0; c < cols; ++c)
      local_partial_[static_cast<std::size_t>(b * cols + c)] = partial_(b, c);
  exchange_->concatenate_all(local_partial_, all_partial_);
  if (all_partial_.size() % static_cast<std::size_t>(cols) != 0)
    throw Error(fmt::format("price impact: {} block sums of population '{}' for {} columns",
                            all_partial_.size(), population, cols));
  const auto total = static_cast<Eigen::Index>(all_partial_.size()) / cols;
  // The one-process order: blocks in order, added to what the earlier populations left.
  for (Eigen::Index c = 0; c < cols; ++c) {
    double& h = held_(c % paths_, c / paths_);
    for (Eigen::Index b = 0; b < total; ++b) h += all_partial_[static_cast<std::size_t>(b * cols + c)];
  }
}

void PriceImpact::move(int k, std::span<const PopulationState> populations, MarketState& state) {
  fundamental_.move(k, {}, fundamental_state_);
  reduce_flow(populations);
  const int n = assets();
  const double growth = settlement_.deposit_growth;
  const bool post = impact_.execution == Execution::post_impact;
  Eigen::VectorXd scaled(n);
  for (int p = 0; p < paths_; ++p) {
    for (int j = 0; j < n; ++j) {
      const auto js = static_cast<std::size_t>(j);
      scaled[j] = flow_(p, j) / depth_at(impact_, js, state.price(p, j), price0_[js]);
    }
    for (int a = 0; a < n; ++a) {
      // I_a = sum_j Lambda_aj Flow_j / Depth_j, summed in index order.
      double impact = 0.0;
      for (int j = 0; j < n; ++j) impact += lambda_(a, j) * scaled[j];
      const auto as = static_cast<std::size_t>(a);
      const double floor =
          impact_.floor.empty() ? -std::numeric_limits<double>::infinity() : impact_.floor[as];
      const double s = state.price(p, a);
      const double fundamental_growth = 1.0 + fundamental_state_.simple_return(p, a);
      double next = 0.0;
      if (post) {
        // Filled at S' = S e^I; the holding carried in gains S'/S - 1; the fresh position earns S_{k+1}/S'.
        const double fill = std::max(floor, s * std::exp(impact));
        next = std::max(floor, fill * fundamental_growth);
        settlement_.holding_gain(p, a) = drift_(p, a) * (fill / s - 1.0) * growth;
        settlement_.excess(p, a) = next / fill - growth;
        drift_(p, a) = next / fill;
      } else {
        next = std::max(floor, s * fundamental_growth * std::exp(impact));
        settlement_.excess(p, a) = next / s - growth;
        drift_(p, a) = next / s;
      }
      state.price(p, a) = next;
      state.simple_return(p, a) = next / s - 1.0;
    }
  }
  state.shock = fundamental_state_.shock;
  state.fundamental = fundamental_state_.price;
  state.flow = flow_;
}

}  // namespace herdsim::sim
