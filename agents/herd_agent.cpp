#include "agents/herd_agent.hpp"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <tbb/partitioner.h>

#include <fmt/format.h>
#include <array>
#include <cmath>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "agents/agent_support.hpp"
#include "agents/herd_rule.hpp"
#include "agents/merton_agent.hpp"
#include "agents/parameters.hpp"
#include "sim/error.hpp"
#include "sim/theory/absolute_herd.hpp"
#include "sim/theory/merton.hpp"
#include "sim/theory/mutual_game.hpp"
#include "sim/theory/relative_herd.hpp"
#include "sim/theory/relative_mutual.hpp"

namespace herdsim::agents {

namespace {

/// Kind-state names (agents/herd_agent.hpp).
constexpr std::string_view kSeenBefore = "seen_before";
constexpr std::string_view kReplanned = "replanned";

int find_population(const sim::ScenarioSpec& spec, const std::string& name) {
  for (std::size_t i = 0; i < spec.populations.size(); ++i) {
    if (spec.populations[i].name == name) return static_cast<int>(i);
  }
  throw ScenarioError(fmt::format("leader population '{}' not found", name));
}

}  // namespace

HerdPopulation::HerdPopulation(const sim::ScenarioSpec& spec, int index)
    : spec_(spec),
      ps_(spec.populations[static_cast<std::size_t>(index)]),
      index_(index),
      // Relative herding is solved in continuous time; its plans are sampled at the decision times.
      schedule_(theory_market(spec), spec.run.horizon,
                ps_.herd == sim::HerdType::relative ? theory::TimeModel::continuous()
                                                    : theory_time(spec, ps_.optimum)) {
  // The scenario validator reports these too; the runtime refuses them whatever built the spec.
  if (ps_.policy == sim::Policy::replan && ps_.influence == sim::Influence::peers &&
      ps_.herd == sim::HerdType::relative && ps_.count > kPeersReplanMaxAgentsRelative) {
    throw ScenarioError(fmt::format(
        "population '{}': relative herding on peers with policy replan solves the whole game on every path "
        "and step: at most {} agents, got {}",
        ps_.name, kPeersReplanMaxAgentsRelative, ps_.count));
  }
}

void HerdPopulation::initialize(const sim::RunState& state, sim::PopulationState& own) {
  const sim::CounterRng rng(spec_.run.seed);
  own.params = expand_params({{"alpha", &ps_.alpha}, {"theta", &ps_.theta}, {"wealth0", &ps_.wealth}},
                             ps_.count, index_, rng, ps_.lottery);
  set_initial_wealth(own);
  alpha_ = param(own, "alpha");
  theta_ = param(own, "theta");

  const int n = spec_.run.steps();
  const double dt = spec_.run.dt();
  // The adaptive rule's constants follow `optimum` (the simulated steps by default) even for relative
  // herding, whose plan is the continuous optimum: an agent reacting to observed decisions in a
  // discrete market projects them with the market's own growth.
  const theory::Schedule rule(theory_market(spec_), spec_.run.horizon, theory_time(spec_, ps_.optimum));
  ln_growth_left_.resize(n);
  ln_growth_.resize(n);
  merton_unit_.resize(n);
  projection_.resize(n);
  for (int k = 0; k < n; ++k) {
    const double t = k * dt;
    ln_growth_[k] = rule.ln_growth(t);
    // Deposit growth from t_k to T: the terminal growth of the remaining horizon's schedule.
    ln_growth_left_[k] =
        theory::Schedule(rule.market(), spec_.run.horizon - t, rule.time()).ln_terminal_growth();
    merton_unit_[k] = theory::merton_amount(rule, 1.0, t);
    projection_[k] = k == 0 ? 1.0 : std::exp(rule.ln_growth(t - dt) - ln_growth_[k]);
  }

  if (ps_.influence == sim::Influence::leader) {
    leader_index_ = find_population(spec_, ps_.leader);
    const sim::PopulationSpec& leader = spec_.populations[static_cast<std::size_t>(leader_index_)];
    leader_count_ = leader.count;
    // The leader's parameters are a pure function of its spec: recompute rather than depend on order.
    const auto leader_params =
        expand_params(merton_params(leader), leader.count, leader_index_, rng, leader.lottery);
    leader_alpha_.resize(ps_.count);
    for (int i = 0; i < ps_.count; ++i) leader_alpha_[i] = leader_params[0].second[i % leader_count_];
    own.params.emplace_back("leader_alpha", leader_alpha_);
    plan_with_leader(own);
  } else {
    weights_ = build_network(ps_.network, theta_, index_, rng);
    Eigen::VectorXd degree(ps_.count);
    for (int i = 0; i < ps_.count; ++i) degree[i] = static_cast<double>(weights_.row(i).nonZeros());
    own.params.emplace_back("degree", degree);
    plan_with_peers(own);
  }
  const double s2 = spec_.market.sigma * spec_.market.sigma;
  ln_vt_ = (theta_.array() / (alpha_.array() * s2)).log();  // log(0) = -inf: w = 1, own Merton
  if (leader_index_ < 0) {
    mean_weights_ = weights_;
    mean_weights_.makeCompressed();  // the adaptive rule walks its plain CSR arrays
    for (int i = 0; i < ps_.count; ++i) {
      if (weights_.row(i).nonZeros() == 0) ln_vt_[i] = -std::numeric_limits<double>::infinity();
      for (WeightMatrix::InnerIterator it(mean_weights_, i); it; ++it) it.valueRef() /= theta_[i];
    }
  }
  if (ps_.herd == sim::HerdType::relative && ps_.policy == sim::Policy::adaptive) {
    add_kind_state(own, std::string(kSeenBefore), ps_.count, state.paths);
  }
  if (ps_.policy == sim::Policy::replan && leader_index_ < 0) {
    add_kind_state(own, std::string(kReplanned), ps_.count, state.paths);
  }
}

// One theory solve per distinct (alpha, alpha_L, theta, x0): grids of thousands of agents share a few.
void HerdPopulation::plan_with_leader(sim::PopulationState& own) {
  const Eigen::VectorXd& x0 = param(own, "wealth0");
  std::map<std::array<double, 4>, int> combo_of;
  std::vector<int> agent_combo(static_cast<std::size_t>(ps_.count));
  std::vector<std::array<double, 4>> combos;
  for (int i = 0; i < ps_.count; ++i) {
    const std::array<double, 4> key{alpha_[i], leader_alpha_[i], theta_[i], x0[i]};
    const auto [it, inserted] = combo_of.emplace(key, static_cast<int>(combos.size()));
    if (inserted) combos.push_back(key);
    agent_combo[static_cast<std::size_t>(i)] = it->second;
  }
  const int n = spec_.run.steps();
  Eigen::MatrixXd table(n, static_cast<Eigen::Index>(combos.size()));
  tbb::parallel_for(std::size_t{0}, combos.size(), [&](std::size_t c) {
    theory::HerdProblem hp;
    hp.market = theory_market(spec_);
    hp.alpha = combos[c][0];
    hp.alpha_leader = combos[c][1];
    hp.theta = combos[c][2];
    hp.x0 = combos[c][3];
    hp.rho = ps_.rho;
    hp.horizon = spec_.run.horizon;
    hp.time = schedule_.time();
    const auto col = static_cast<Eigen::Index>(c);
    if (ps_.herd == sim::HerdType::absolute) {
      const auto sol = theory::solve_absolute_herd(hp);
      for (int k = 0; k < n; ++k) table(k, col) = sol.amount(k * spec_.run.dt());
    } else {
      theory::RelativeHerdOptions opt;
      opt.bc = ps_.bc;
      const auto sol = theory::solve_relative_herd(hp, opt);
      for (int k = 0; k < n; ++k) table(k, col) = sol.amount(k * spec_.run.dt());
    }
  });
  own.theory_amount.resize(ps_.count, n);
  for (int k = 0; k < n; ++k) {
    for (int i = 0; i < ps_.count; ++i)
      own.theory_amount(i, k) = table(k, agent_combo[static_cast<std::size_t>(i)]);
  }
}

void HerdPopulation::plan_with_peers(sim::PopulationState& own) {
  theory::MutualGame game;
  game.market = theory_market(spec_);
  game.horizon = spec_.run.horizon;
  game.time = schedule_.time();
  game.rho = ps_.rho;
  game.alpha = alpha_;
  game.x0 = param(own, "wealth0");
  game.theta = weights_;
  const int n = spec_.run.steps();
  own.theory_amount.resize(ps_.count, n);
  if (ps_.herd == sim::HerdType::relative) {
    // The mutual relative game (continuous time, like P1), once per run; decision times are grid nodes.
    game.rho = 0.0;
    theory::RelativeMutualOptions opt;
    opt.bc = ps_.bc;
    opt.node_spacing = spec_.run.dt();
    const auto sol = theory::solve_relative_mutual(game, opt);
    for (int k = 0; k < n; ++k) own.theory_amount.col(k) = sol.amounts(k * spec_.run.dt());
    return;
  }
  const auto sol = theory::solve_mutual_game(game);
  for (int k = 0; k < n; ++k) own.theory_amount.col(k) = sol.amounts(k * spec_.run.dt());
}

// What agents [c0, c0 + len) observed at the previous step on `path`, projected one step ahead with
// Merton growth: their leader's decision, or the theta-weighted mean of their peers' decisions (a
// running sum from 0 over the compressed row in storage order).
void HerdPopulation::observe(const sim::DecisionContext& ctx, int c0, int len, int path, double* seen) const {
  const int k = ctx.step;
  const double projection = projection_[k];
  const auto& populations = ctx.state->populations;
  const double* seen_from =
      populations[static_cast<std::size_t>(leader_index_ >= 0 ? leader_index_ : ctx.population_index)]
          .previous_amount.col(path)
          .data();
  if (leader_count_ == 1) {  // the usual single advisor: no index arithmetic
    for (int j = 0; j < len; ++j) seen[j] = seen_from[0] * projection;
  } else if (leader_index_ >= 0) {
    for (int j = 0; j < len; ++j) seen[j] = seen_from[(c0 + j) % leader_count_] * projection;
  } else {
    const int* outer = mean_weights_.outerIndexPtr();  // compressed in initialize()
    const int* inner = mean_weights_.innerIndexPtr();
    const double* value = mean_weights_.valuePtr();
    for (int j = 0; j < len; ++j) {
      const int i = c0 + j;
      double sum = 0.0;
      for (int at = outer[i]; at < outer[i + 1]; ++at) sum += value[at] * seen_from[inner[at]];
      seen[j] = sum * projection;
    }
  }
}

// Leader: the agent's own problem over [t_k, T] from its realised wealth; the leader's Merton path over
// the remaining horizon is its original path from t_k on (Merton depends on time to go only).
double HerdPopulation::replan(const sim::DecisionContext& ctx, int agent, double wealth) const {
  theory::HerdProblem hp;
  hp.market = theory_market(spec_);
  hp.alpha = alpha_[agent];
  hp.alpha_leader = leader_alpha_[agent];
  hp.theta = theta_[agent];
  hp.rho = ps_.rho;
  hp.x0 = wealth;
  hp.horizon = spec_.run.horizon - ctx.time;
  hp.time = schedule_.time();
  if (ps_.herd == sim::HerdType::absolute) return theory::solve_absolute_herd(hp).amount(0.0);
  theory::RelativeHerdOptions opt;
  opt.bc = ps_.bc;
  // The first decision keeps the plan's start condition (so replan starts where plan does); a restart's
  // start is free: pinned there, every decision would be the own Merton amount.
  opt.free_start = ctx.step > 0;
  return theory::solve_relative_herd(hp, opt).amount(0.0);
}

Eigen::VectorXd HerdPopulation::replan_game(const sim::DecisionContext& ctx,
                                            const Eigen::Ref<const Eigen::VectorXd>& wealth) const {
  theory::MutualGame game;
  game.market = theory_market(spec_);
  game.horizon = spec_.run.horizon - ctx.time;
  game.time = schedule_.time();
  game.rho = ps_.rho;
  game.alpha = alpha_;
  game.x0 = wealth;
  game.theta = weights_;
  if (ps_.herd == sim::HerdType::absolute) return theory::solve_mutual_game(game).amounts(0.0);
  game.rho = 0.0;
  theory::RelativeMutualOptions opt;
  opt.bc = ps_.bc;
  opt.node_spacing = spec_.run.dt();
  opt.free_start = ctx.step > 0;  // as for a leader (replan above)
  return theory::solve_relative_mutual(game, opt).amounts(0.0);
}

void HerdPopulation::prepare_step(const sim::DecisionContext& ctx, sim::PopulationState& own) {
  if (ps_.policy != sim::Policy::replan || leader_index_ >= 0) return;
  const Eigen::VectorXd& x0 = param(own, "wealth0");
  const int paths = static_cast<int>(own.wealth.cols());
  Eigen::MatrixXd& replanned = kind_state(own, kReplanned);
  // One game per path; each task writes its own column, so any thread count gives the same bits. Errors
  // are kept per path and the first path's is thrown after the loop (never from inside it).
  std::vector<std::string> errors(static_cast<std::size_t>(paths));
  tbb::parallel_for(
      tbb::blocked_range<int>(0, paths, 1),
      [&](const tbb::blocked_range<int>& r) {
        for (int p = r.begin(); p != r.end(); ++p) {
          // Wealth still at its start (every path at t = 0): the plan solved this very game.
          if (ctx.step == 0 && own.wealth.col(p) == x0) {
            replanned.col(p) = own.theory_amount.col(0);
            continue;
          }
          try {
            replanned.col(p) = replan_game(ctx, own.wealth.col(p));
          } catch (const std::exception& e) {
            errors[static_cast<std::size_t>(p)] = e.what();
          }
        }
      },
      tbb::simple_partitioner{});
  for (int p = 0; p < paths; ++p) {
    if (!errors[static_cast<std::size_t>(p)].empty()) {
      throw SolverError(fmt::format("population '{}', path {}, step {}: replan: {}", ps_.name, p, ctx.step,
                                    errors[static_cast<std::size_t>(p)]));
    }
  }
}

void HerdPopulation::decide(const sim::DecisionContext& ctx, int p0, int p1, int a0, int a1,
                            sim::PopulationState& own) const {
  if (ps_.policy == sim::Policy::plan) {
    play_plan(ctx, p0, p1, a0, a1, own);
    return;
  }
  const int k = ctx.step;
  if (ps_.policy == sim::Policy::replan) {
    if (leader_index_ < 0) {  // solved in prepare_step
      const Eigen::MatrixXd& replanned = kind_state(own, kReplanned);
      for (int p = p0; p < p1; ++p)
        own.amount.col(p).segment(a0, a1 - a0) = replanned.col(p).segment(a0, a1 - a0);
      return;
    }
    for (int p = p0; p < p1; ++p) {
      for (int i = a0; i < a1; ++i) own.amount(i, p) = replan(ctx, i, own.wealth(i, p));
    }
    return;
  }
  // Adaptive: the first decision sees nobody's; it is the agent's own Merton amount.
  if (k == 0) {
    for (int p = p0; p < p1; ++p) {
      for (int i = a0; i < a1; ++i) own.amount(i, p) = merton_unit_[0] / alpha_[i];
    }
    return;
  }
  if (ps_.herd == sim::HerdType::absolute) {
    decide_adaptive_absolute(ctx, p0, p1, a0, a1, own);
    return;
  }
  // Relative rule, per slot: ln q = ln eta_hat - ln vt + 2 ln G(t_k), w = q dt^2 / (1 + q dt^2), with
  // -ln eta_hat = alpha X G(t_k -> T) + v^2 (T - t_k) / (2 sigma^2); the step's constants first.
  const double s2 = spec_.market.sigma * spec_.market.sigma;
  const double v = spec_.market.mu - spec_.market.r;
  const double growth_left = std::exp(ln_growth_left_[k]);
  const double ln_q_shift = -v * v * (spec_.run.horizon - ctx.time) / (2.0 * s2) + 2.0 * ln_growth_[k] +
                            2.0 * std::log(spec_.run.dt());
  Eigen::MatrixXd& seen_before = kind_state(own, kSeenBefore);
  alignas(64) double seen[kChunk];
  for (int p = p0; p < p1; ++p) {
    for (int c0 = a0; c0 < a1; c0 += kChunk) {
      const int len = std::min(kChunk, a1 - c0);
      observe(ctx, c0, len, p, seen);
      for (int j = 0; j < len; ++j) {
        const int i = c0 + j;
        const double own_merton = merton_unit_[k] / alpha_[i];
        if (theta_[i] == 0.0) {
          own.amount(i, p) = own_merton;
          continue;
        }
        // Myopic discretised Euler-Lagrange: follow the reference's observed change from one's own
        // last decision, pulled to one's own Merton amount.
        const double change =
            k == 1 ? seen[j] * (1.0 - 1.0 / projection_[k]) : seen[j] - seen_before(i, p) * projection_[k];
        seen_before(i, p) = seen[j] / projection_[k];
        const double ln_q_dt2 = -alpha_[i] * own.wealth(i, p) * growth_left - ln_vt_[i] + ln_q_shift;
        const double w = 1.0 / (1.0 + std::exp(-ln_q_dt2));
        own.amount(i, p) = w * own_merton + (1.0 - w) * (own.previous_amount(i, p) + change);
      }
    }
  }
}

// The absolute rule over chunks of agents held in L1: for each path, ln kappa = ln vt - ln eta_hat -
// (2 - rho) ln G with -ln eta_hat = alpha X G(t_k -> T) + v^2 (T - t_k) / (2 sigma^2), the reference m
// (the leader's or the theta-weighted mean of the peers' previous decisions, projected a step ahead),
// then w = 1 / (1 + kappa), P = w P_alpha + (1 - w) m by blend_toward_reference. Every operation is
// elementwise or a per-agent running sum in storage order, so the bits depend on neither the CPU nor
// the blocks.
void HerdPopulation::decide_adaptive_absolute(const sim::DecisionContext& ctx, int p0, int p1, int a0, int a1,
                                              sim::PopulationState& own) const {
  const int k = ctx.step;
  const double s2 = spec_.market.sigma * spec_.market.sigma;
  const double v = spec_.market.mu - spec_.market.r;
  const double growth_left = std::exp(ln_growth_left_[k]);
  const double shift = v * v * (spec_.run.horizon - ctx.time) / (2.0 * s2) - (2.0 - ps_.rho) * ln_growth_[k];
  const double unit = merton_unit_[k];
  const double* alpha = alpha_.data();
  const double* ln_vt = ln_vt_.data();
  alignas(64) double seen[kChunk];
  alignas(64) double ln_kappa[kChunk];
  alignas(64) double own_merton[kChunk];
  for (int c0 = a0; c0 < a1; c0 += kChunk) {
    const int len = std::min(kChunk, a1 - c0);
    // Path-independent: once per chunk.
    for (int j = 0; j < len; ++j) own_merton[j] = unit / alpha[c0 + j];
    for (int p = p0; p < p1; ++p) {
      const double* x = own.wealth.col(p).data() + c0;
      observe(ctx, c0, len, p, seen);
      for (int j = 0; j < len; ++j) ln_kappa[j] = ln_vt[c0 + j] + alpha[c0 + j] * x[j] * growth_left + shift;
      blend_toward_reference(ln_kappa, own_merton, seen, own.amount.col(p).data() + c0, len);
    }
  }
}

}  // namespace herdsim::agents
