#include "sim/simulation.hpp"

#include <tbb/blocked_range2d.h>
#include <tbb/parallel_for.h>
#include <tbb/partitioner.h>
#include <tbb/task_arena.h>

#include <fmt/format.h>
#include <chrono>

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

}  // namespace

Simulation::Simulation(ScenarioSpec spec, const PopulationFactory& make)
    : spec_(std::move(spec)),
      rng_(spec_.run.seed),
      coefficients_(spec_.market, spec_.run.dt(), spec_.run.wealth_update) {
  populations_ = make(spec_);
  if (populations_.size() != spec_.populations.size()) {
    throw Error(fmt::format("simulation: {} population implementations for {} populations",
                            populations_.size(), spec_.populations.size()));
  }
  state_.spec = &spec_;
  state_.steps = spec_.run.steps();
  state_.paths = spec_.run.paths;
  state_.market.price = Eigen::VectorXd::Constant(state_.paths, spec_.market.price0);
  state_.market.simple_return = Eigen::VectorXd::Zero(state_.paths);
  state_.market.shock = Eigen::VectorXd::Zero(state_.paths);
  excess_ = Eigen::VectorXd::Zero(state_.paths);
  state_.populations.resize(spec_.populations.size());
  for (std::size_t i = 0; i < populations_.size(); ++i) {
    PopulationState& pop = state_.populations[i];
    const PopulationSpec& ps = spec_.populations[i];
    pop.name = ps.name;
    pop.kind = ps.kind;
    pop.count = ps.count;
    pop.wealth = Eigen::MatrixXd::Zero(ps.count, state_.paths);
    pop.amount = Eigen::MatrixXd::Zero(ps.count, state_.paths);
    pop.previous_amount = Eigen::MatrixXd::Zero(ps.count, state_.paths);
    populations_[i]->initialize(state_, pop);
  }
}

DecisionContext Simulation::context(int k) const {
  DecisionContext ctx;
  ctx.step = k;
  ctx.time = k * spec_.run.dt();
  ctx.state = &state_;
  ctx.rng = &rng_;
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
  tbb::parallel_for(tbb::blocked_range<int>(0, state_.paths, 256), [&](const tbb::blocked_range<int>& r) {
    for (int p = r.begin(); p != r.end();
         ++p) {  // scalar and keyed by path: any partition gives the same bits
      const double eps =
          rng_.normal(Stream::market, static_cast<std::uint64_t>(p), static_cast<std::uint64_t>(k), 0);
      const double ret = coefficients_.stock_return(eps);
      state_.market.shock[p] = eps;
      state_.market.simple_return[p] = ret;
      state_.market.price[p] *= 1.0 + ret;
      excess_[p] = coefficients_.excess_return(eps);
    }
  });
}

void Simulation::settle(int /*k*/) {
  const double growth = coefficients_.deposit_growth;
  for (auto& pop : state_.populations) {
    tbb::parallel_for(
        tbb::blocked_range2d<int>(0, state_.paths, 1, 0, pop.count, 8192),
        [&](const tbb::blocked_range2d<int>& r) {
          for (int p = r.rows().begin(); p != r.rows().end(); ++p) {
            const double e = excess_[p];
            const auto a0 = r.cols().begin();
            const auto len = r.cols().end() - a0;
            auto x = pop.wealth.col(p).segment(a0, len).array();
            x = x * growth + pop.amount.col(p).segment(a0, len).array() * e;
          }
        },
        tbb::simple_partitioner{});
  }
}

RunSummary Simulation::run(const RunOptions& options) {
  const int threads = options.threads > 0 ? options.threads : tbb::this_task_arena::max_concurrency();
  tbb::task_arena arena(threads);
  RunSummary summary;
  for (const auto& phase : phases_) summary.phases.push_back({phase.name, 0.0});
  double agents = 0.0;
  for (const auto& pop : state_.populations) agents += pop.count;
  summary.agent_steps = agents * state_.paths * state_.steps;

  const auto t0 = Clock::now();
  bool fusable = observers_.empty();
  for (const auto& p : populations_) fusable = fusable && p->path_independent();
  arena.execute([&] {
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

// Path-independent decisions (plans) and nobody watching: each block of agents advances through all
// steps while it stays in cache. Same arithmetic in the same order as decide/settle, so the final
// state is bitwise identical to the step loop's.
void Simulation::run_fused(const RunOptions& options, RunSummary& summary) {
  summary.fused = true;
  const int n = state_.steps;
  const int paths = state_.paths;
  // Shocks and market path first (cheap, O(paths * steps)).
  Eigen::MatrixXd excess(n, paths);
  for (int k = 0; k < n; ++k) {
    move_market(k);
    excess.row(k) = excess_.transpose();
  }
  const double growth = coefficients_.deposit_growth;
  for (std::size_t i = 0; i < populations_.size(); ++i) {
    PopulationState& pop = state_.populations[i];
    const Eigen::MatrixXd& plan = pop.theory_amount;  // count x steps: agents contiguous per step
    constexpr int block = 512;                        // agents per task: plan block + wealth in L1/L2
    tbb::parallel_for(
        tbb::blocked_range<int>(0, pop.count, block),
        [&](const tbb::blocked_range<int>& r) {
          const int a0 = r.begin();
          const int len = r.end() - a0;
          for (int p = 0; p < paths; ++p) {
            double* x = pop.wealth.col(p).data() + a0;
            const double* e = excess.col(p).data();
            int c = 0;
            // Chunks of `chunk` agents stay in registers through all steps: enough independent
            // multiply-add chains to hide their latency (the compiler vectorises j).
            constexpr int chunk = 16;
            for (; c + chunk <= len; c += chunk) {
              double xr[chunk];
              for (int j = 0; j < chunk; ++j) xr[j] = x[c + j];
              for (int k = 0; k < n; ++k) {
                const double* t = plan.col(k).data() + a0 + c;
                const double ek = e[k];
                for (int j = 0; j < chunk; ++j) xr[j] = xr[j] * growth + t[j] * ek;
              }
              for (int j = 0; j < chunk; ++j) x[c + j] = xr[j];
            }
            for (; c < len; ++c) {
              for (int k = 0; k < n; ++k) x[c] = x[c] * growth + plan(a0 + c, k) * e[k];
            }
            // The state the step loop would leave: the last two decisions.
            pop.amount.col(p).segment(a0, len) = plan.col(n - 1).segment(a0, len);
            pop.previous_amount.col(p).segment(a0, len) = plan.col(n > 1 ? n - 2 : 0).segment(a0, len);
          }
        },
        tbb::simple_partitioner{});
    if (options.progress)
      options.progress(static_cast<int>(i + 1) * n / static_cast<int>(populations_.size()), n);
  }
}

}  // namespace herdsim::sim
