#include "sim/simulation.hpp"

#include <tbb/blocked_range.h>
#include <tbb/blocked_range2d.h>
#include <tbb/parallel_for.h>
#include <tbb/partitioner.h>
#include <tbb/task_arena.h>

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cassert>
#include <chrono>
#include <cmath>
#include <limits>

#include "sim/large_matrix.hpp"
#include "sim/market/price_impact.hpp"
#include "sim/memory.hpp"

#include "sim/recording_plan.hpp"

namespace herdsim::sim {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Every parallel loop uses simple_partitioner: its blocks depend only on the range and the grain,
// never on the thread count, so vectorised code (whose results can depend on where a block starts)
// gives the same bits for any --threads.

/// Agents per task: enough work to amortise scheduling, small enough to keep a block in cache.
int agent_grain(const Population& p) {
  return p.decision_cost() > 10.0 ? 16 : 4096;
}

/// count x cols, every column the plan's decision k (the amounts the step loop holds: its copy, bit for
/// bit), zero for k < 0 (before the first decision); written in parallel.
Eigen::MatrixXd repeated_decision(const PopulationState& pop, int k, Eigen::Index cols) {
  if (k < 0 || pop.count == 0) return filled_matrix(pop.count, cols, 0.0);
  Eigen::MatrixXd out = large_matrix(pop.count, cols);
  tbb::parallel_for(tbb::blocked_range<Eigen::Index>(0, cols, 1),
                    [&](const tbb::blocked_range<Eigen::Index>& r) {
                      for (Eigen::Index c = r.begin(); c != r.end(); ++c)
                        out.col(c) = pop.theory_amount.col(k);
                    });
  return out;
}

}  // namespace

Simulation::Simulation(ScenarioSpec spec, const PopulationFactory& make)
    : spec_(std::move(spec)), rng_(spec_.run.seed), market_(make_market(spec_)) {
  populations_ = make(spec_);
  if (populations_.size() != spec_.populations.size()) {
    throw Error(fmt::format("simulation: {} population implementations for {} populations",
                            populations_.size(), spec_.populations.size()));
  }
  state_.spec = &spec_;
  state_.steps = spec_.run.steps();
  state_.paths = spec_.run.paths;
  market_->initialize(state_.market);
  const int assets = market_->assets();
  state_.populations.resize(spec_.populations.size());
  for (std::size_t i = 0; i < populations_.size(); ++i) {
    PopulationState& pop = state_.populations[i];
    const PopulationSpec& ps = spec_.populations[i];
    pop.name = ps.name;
    pop.kind = ps.kind;
    pop.count = ps.count;
    pop.wealth = filled_matrix(ps.count, state_.paths, 0.0);
    // A plan's amounts wait for their first reader (fill_deferred_amounts): a fused run nobody watches
    // the amounts of never writes them (2 x 160 MB at 10^5 agents x 200 paths).
    if (!populations_[i]->path_independent()) {
      pop.amount = filled_matrix(ps.count, assets * state_.paths, 0.0);
      pop.previous_amount = filled_matrix(ps.count, assets * state_.paths, 0.0);
    }
    populations_[i]->initialize(state_, pop);
  }
  compact_plans_.resize(populations_.size());
  for (std::size_t i = 0; i < populations_.size(); ++i) {
    // The fused kernel runs one asset's plans only (Simulation::run).
    if (populations_[i]->path_independent() && assets == 1)
      compact_plans_[i] = compact_plan(state_.populations[i].theory_amount);
  }
  if (auto warning = impact_stability_warning(spec_.market, state_.populations, state_.steps))
    warnings_.push_back(std::move(*warning));
}

const RunState& Simulation::state() {
  fill_deferred_amounts();
  return state_;
}

void Simulation::fill_deferred_amounts() {
  const Eigen::Index cols = static_cast<Eigen::Index>(market_->assets()) * state_.paths;
  for (auto& pop : state_.populations) {
    if (pop.amount.cols() == cols) continue;
    // Only the fused kernel (one asset) advances a plan without writing its amounts.
    assert(steps_done_ == 0 || cols == state_.paths);
    pop.amount = repeated_decision(pop, steps_done_ - 1, cols);
    pop.previous_amount = repeated_decision(pop, steps_done_ - 2, cols);
  }
}

DecisionContext Simulation::context(int k) const {
  DecisionContext ctx;
  ctx.step = k;
  ctx.time = k * spec_.run.dt();
  ctx.state = &state_;
  ctx.rng = &rng_;
  ctx.first_path = spec_.run.first_path;
  return ctx;
}

void Simulation::prepare(int k) {
  for (auto& pop : state_.populations) pop.amount.swap(pop.previous_amount);
  DecisionContext ctx = context(k);
  for (std::size_t i = 0; i < populations_.size(); ++i) {
    ctx.population_index = static_cast<int>(i);
    populations_[i]->prepare_step(ctx, state_.populations[i]);
  }
}

void Simulation::decide(int k) {
  DecisionContext ctx = context(k);
  for (std::size_t i = 0; i < populations_.size(); ++i) {
    ctx.population_index = static_cast<int>(i);
    const Population& impl = *populations_[i];
    PopulationState& own = state_.populations[i];
    tbb::parallel_for(
        tbb::blocked_range2d<int>(0, state_.paths, 1, 0, own.count, agent_grain(impl)),
        [&](const tbb::blocked_range2d<int>& r) {
          // Each task owns a rectangle of (path, agent) slots.
          impl.decide(ctx, r.rows().begin(), r.rows().end(), r.cols().begin(), r.cols().end(), own);
        },
        tbb::simple_partitioner{});
  }
}

void Simulation::move_market(int k) {
  market_->move(k, state_.populations, state_.market);
}

void Simulation::settle(int k) {
  const Settlement& settlement = market_->settlement();
  for (std::size_t i = 0; i < state_.populations.size(); ++i) {
    PopulationState& pop = state_.populations[i];
    // The lowest path on which some wealth became inf or NaN (a market, a plan or an amount overflowed):
    // checked on the segment just written, still in cache. Lowest, so the message is thread-independent.
    std::atomic<int> bad_path{std::numeric_limits<int>::max()};
    tbb::parallel_for(
        tbb::blocked_range2d<int>(0, state_.paths, 1, 0, pop.count, 8192),
        [&](const tbb::blocked_range2d<int>& r) {
          for (int p = r.rows().begin(); p != r.rows().end(); ++p) {
            const int a0 = r.cols().begin();
            const int len = r.cols().end() - a0;
            settle_agents(settlement, p, a0, a0 + len, pop);
            // x * 0 is 0 for finite x and NaN for inf or NaN: one vectorized sum over the segment still
            // in cache (allFinite's compare-and-all cost twice as much in bench_engine's step loop).
            if (std::isnan((pop.wealth.col(p).segment(a0, len).array() * 0.0).sum())) {
              int seen = bad_path.load();
              while (p < seen && !bad_path.compare_exchange_weak(seen, p)) {
              }
            }
          }
        },
        tbb::simple_partitioner{});
    if (bad_path.load() != std::numeric_limits<int>::max()) throw_non_finite(i, k, bad_path.load(), false);
  }
}

void Simulation::throw_non_finite(std::size_t i, int k, int p, bool by_end) const {
  const PopulationState& pop = state_.populations[i];
  Eigen::Index agent = 0;
  while (agent + 1 < pop.count && std::isfinite(pop.wealth(agent, p))) ++agent;
  throw Error(fmt::format(
      "population '{}': wealth became {} {} step {} on path {} (agent {}: amount {}; market price {}, excess "
      "return {}); the parameters leave the range where the model keeps double precision",
      pop.name, std::isnan(pop.wealth(agent, p)) ? "NaN" : "infinite", by_end ? "by" : "at", k, p, agent,
      pop.amount.size() != 0 ? pop.amount(agent, p) : pop.theory_amount(agent, k), state_.market.price(p, 0),
      market_->settlement().excess(p, 0)));
}

void Simulation::check_finite_after_fused(const Eigen::MatrixXd& excess, int first, int last) const {
  for (Eigen::Index p = 0; p < excess.cols(); ++p) {
    for (int k = first; k < last; ++k) {
      if (!std::isfinite(excess(k, p))) {
        throw Error(
            fmt::format("the market's excess return became {} at step {} on path {}; the market's "
                        "parameters leave the range where the model keeps double precision",
                        excess(k, p), k, p));
      }
    }
  }
  for (std::size_t i = 0; i < state_.populations.size(); ++i) {
    const PopulationState& pop = state_.populations[i];
    const auto plan = pop.theory_amount.middleCols(first, last - first);
    if (!plan.allFinite()) {
      for (Eigen::Index k = 0; k < plan.cols(); ++k) {
        for (Eigen::Index a = 0; a < plan.rows(); ++a) {
          if (!std::isfinite(plan(a, k)))
            throw Error(fmt::format("population '{}': agent {}'s planned amount is {} at step {}", pop.name,
                                    a, plan(a, k), first + k));
        }
      }
    }
    for (Eigen::Index p = 0; p < pop.wealth.cols(); ++p) {
      if (!pop.wealth.col(p).allFinite()) throw_non_finite(i, last - 1, static_cast<int>(p), true);
    }
  }
}

void Simulation::set_agent_exchange(AgentExchange* exchange) {
  market_->set_agent_exchange(exchange);
  for (auto& population : populations_) population->set_agent_exchange(exchange);
}

RunSummary Simulation::run(const RunOptions& options) {
  check_threads(options.threads, "threads");  // a task arena of 10^9 threads crashes TBB
  const int threads = options.threads > 0 ? options.threads : tbb::this_task_arena::max_concurrency();
  tbb::task_arena arena(threads);
  RunSummary summary;
  for (const auto& phase : phases_) summary.phases.push_back({phase.name, 0.0});
  double agents = 0.0;
  for (const auto& pop : state_.populations) agents += pop.count;
  summary.agent_steps = agents * state_.paths * state_.steps;

  const auto t0 = Clock::now();
  // Plans (one asset) in a market no decision moves, watched (if at all) only at the steps the observers'
  // recording plans name: the fused kernel, between those steps.
  bool fusable = options.allow_fused && market_->exogenous() && market_->assets() == 1;
  for (const auto& p : populations_) fusable = fusable && p->path_independent();
  for (const auto* o : observers_) fusable = fusable && o->recording_plan() != nullptr;
  const bool amounts_read = !fusable || std::any_of(observers_.begin(), observers_.end(),
                                                    [](const Observer* o) { return o->reads_amounts(); });
  arena.execute([&] {
    if (amounts_read) fill_deferred_amounts();  // then the fused kernel writes them as the step loop does
    if (fusable) {
      run_fused(options, summary);
      return;
    }
    for (auto* o : observers_) o->on_start(state_);
    for (int k = 0; k < state_.steps; ++k) {
      if (options.cancel != nullptr && options.cancel->load()) {
        throw Interrupted(fmt::format("interrupted at step {} of {}", k, state_.steps));
      }
      for (std::size_t ph = 0; ph < std::size(phases_); ++ph) {
        const auto tp = Clock::now();
        (this->*phases_[ph].run)(k);
        summary.phases[ph].seconds += seconds_since(tp);
      }
      steps_done_ = k + 1;
      for (auto* o : observers_) o->on_step(k, state_);
      for (auto& pop : state_.populations) {
        if (pop.inference) pop.inference->pending.clear();  // written by the observers; bounded memory
      }
      if (options.progress) options.progress(k + 1, state_.steps);
    }
    for (auto* o : observers_) o->on_finish(state_);
  });
  summary.seconds = seconds_since(t0);
  return summary;
}

// Path-independent decisions (plans), an exogenous market and observers that read only the steps their
// recording plans name. The run is cut after each such step: per segment, the market moves through its
// steps (cheap, O(paths x steps)), then each population goes through them at once (sim/fused_kernel.hpp)
// with the step loop's arithmetic in the same order, and the observers see the state the step loop
// would show them at that step, bit for bit. Nobody watching: one segment, the whole run.
void Simulation::run_fused(const RunOptions& options, RunSummary& summary) {
  summary.fused = true;
  const int n = state_.steps;
  const auto observed = [&](int k) {
    return std::any_of(observers_.begin(), observers_.end(),
                       [&](const Observer* o) { return o->recording_plan()->records_after_step(k); });
  };
  for (auto* o : observers_) o->on_start(state_);
  Eigen::MatrixXd excess(n, state_.paths);  // e of asset 0, step k on path p (rows of past segments kept)
  double growth = 0.0;                      // G, one for the whole run (Market::exogenous)
  int first = 0;                            // the segment's first step
  for (int last = 1; last <= n; ++last) {
    const bool watched = observed(last - 1);
    if (!watched && last < n) continue;
    if (options.cancel != nullptr && options.cancel->load()) {
      throw Interrupted(fmt::format("interrupted at step {} of {}", first, n));
    }
    for (int k = first; k < last; ++k) {
      move_market(k);
      const Settlement& settlement = market_->settlement();
      excess.row(k) = settlement.excess.col(0).transpose();
      if (k == 0) growth = settlement.deposit_growth;
      if (settlement.deposit_growth != growth) {
        throw Error(fmt::format("simulation: an exogenous market changed its deposit growth at step {}", k));
      }
    }
    for (std::size_t i = 0; i < populations_.size(); ++i) {
      PopulationState& pop = state_.populations[i];
      advance_plan(options.fused_kernel, pop.theory_amount, compact_plans_[i], excess, growth, {first, last},
                   pop);
      if (options.progress)
        options.progress(
            first + (last - first) * static_cast<int>(i + 1) / static_cast<int>(populations_.size()), n);
    }
    steps_done_ = last;
    check_finite_after_fused(excess, first, last);  // O(state) per segment: the step loop checks in settle()
    if (watched) {
      for (auto* o : observers_) o->on_step(last - 1, state_);
    }
    first = last;
  }
  for (auto* o : observers_) o->on_finish(state_);
}

}  // namespace herdsim::sim
