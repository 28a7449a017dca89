#include "sim/simulation.hpp"

#include <tbb/blocked_range2d.h>
#include <tbb/parallel_for.h>
#include <tbb/partitioner.h>
#include <tbb/task_arena.h>

#include <fmt/format.h>
#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>
#include <unordered_map>

#include "sim/memory.hpp"
#include "sim/simd.hpp"

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
  compact_plans_.resize(populations_.size());
  for (std::size_t i = 0; i < populations_.size(); ++i) {
    if (populations_[i]->path_independent())
      compact_plans_[i] = compact_plan(state_.populations[i].theory_amount);
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

void Simulation::settle(int k) {
  const double growth = coefficients_.deposit_growth;
  for (std::size_t i = 0; i < state_.populations.size(); ++i) {
    PopulationState& pop = state_.populations[i];
    // The lowest path on which some wealth became inf or NaN (a market, a plan or an amount overflowed):
    // checked on the segment just written, still in cache. Lowest, so the message is thread-independent.
    std::atomic<int> bad_path{std::numeric_limits<int>::max()};
    tbb::parallel_for(
        tbb::blocked_range2d<int>(0, state_.paths, 1, 0, pop.count, 8192),
        [&](const tbb::blocked_range2d<int>& r) {
          for (int p = r.rows().begin(); p != r.rows().end(); ++p) {
            const double e = excess_[p];
            const auto a0 = r.cols().begin();
            const auto len = r.cols().end() - a0;
            auto x = pop.wealth.col(p).segment(a0, len).array();
            x = x * growth + pop.amount.col(p).segment(a0, len).array() * e;
            // x * 0 is 0 for finite x and NaN for inf or NaN: one vectorized sum over the segment still
            // in cache (allFinite's compare-and-all cost twice as much in bench_engine's step loop).
            if (std::isnan((x * 0.0).sum())) {
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
      pop.name, std::isnan(pop.wealth(agent, p)) ? "NaN" : "infinite", by_end ? "by the last" : "at", k, p,
      agent, pop.amount(agent, p), state_.market.price[p], excess_[p]));
}

void Simulation::check_finite_after_fused(const Eigen::MatrixXd& excess) const {
  for (Eigen::Index p = 0; p < excess.cols(); ++p) {
    for (Eigen::Index k = 0; k < excess.rows(); ++k) {
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
    if (!pop.theory_amount.allFinite()) {
      for (Eigen::Index k = 0; k < pop.theory_amount.cols(); ++k) {
        for (Eigen::Index a = 0; a < pop.theory_amount.rows(); ++a) {
          if (!std::isfinite(pop.theory_amount(a, k)))
            throw Error(fmt::format("population '{}': agent {}'s planned amount is {} at step {}", pop.name,
                                    a, pop.theory_amount(a, k), k));
        }
      }
    }
    for (Eigen::Index p = 0; p < pop.wealth.cols(); ++p) {
      if (!pop.wealth.col(p).allFinite()) throw_non_finite(i, state_.steps - 1, static_cast<int>(p), true);
    }
  }
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

namespace {
/// The longest period of a compact plan's rows that the fused kernel replays from a table.
constexpr std::size_t kMaxPeriod = 1024;
}  // namespace

CompactPlan compact_plan(const Eigen::MatrixXd& plan) {
  const Eigen::Index count = plan.rows();
  const Eigen::Index n = plan.cols();
  // Worth it only when the distinct rows stay in cache and are far fewer than the agents.
  const Eigen::Index max_rows =
      std::min<Eigen::Index>({65535, count / 4, (1 << 17) / std::max<Eigen::Index>(n, 1)});
  CompactPlan out;
  if (count == 0 || n == 0 || max_rows < 1) return out;
  out.row_of.resize(static_cast<std::size_t>(count));
  std::unordered_map<std::uint64_t, std::uint16_t> row_of_hash;
  std::vector<double> row(static_cast<std::size_t>(n));
  for (Eigen::Index i = 0; i < count; ++i) {
    std::uint64_t h = 1469598103934665603ULL;  // FNV-1a over the bits of the row
    for (Eigen::Index k = 0; k < n; ++k) {
      row[static_cast<std::size_t>(k)] = plan(i, k);
      std::uint64_t bits = 0;
      std::memcpy(&bits, &row[static_cast<std::size_t>(k)], sizeof bits);
      h = (h ^ bits) * 1099511628211ULL;
    }
    const auto [it, inserted] = row_of_hash.emplace(h, static_cast<std::uint16_t>(row_of_hash.size()));
    const std::size_t at = static_cast<std::size_t>(it->second) * static_cast<std::size_t>(n);
    if (inserted) {
      if (static_cast<Eigen::Index>(row_of_hash.size()) > max_rows) return {};
      out.rows.insert(out.rows.end(), row.begin(), row.end());
    } else if (std::memcmp(out.rows.data() + at, row.data(), row.size() * sizeof(double)) != 0) {
      return {};  // a hash collision between different rows: keep the full table
    }
    out.row_of[static_cast<std::size_t>(i)] = it->second;
  }
  // The smallest period of row_of, if short enough for its table to stay in cache.
  const auto& row_of = out.row_of;
  const std::size_t agents = row_of.size();
  for (std::size_t period = 1; period <= std::min<std::size_t>(agents, kMaxPeriod); ++period) {
    std::size_t i = period;
    while (i < agents && row_of[i] == row_of[i - period]) ++i;
    if (i == agents) {
      out.period = static_cast<int>(period);
      break;
    }
  }
  return out;
}

namespace {

// The fused kernel's floating-point contract: x <- x * G + P * e, two roundings of products and one of
// their sum, in this order, exactly as settle() computes it. The AVX2 clone is compiled with FMA
// explicitly off, so no multiply-add is ever contracted, and IEEE products and sums round the same in
// any vector width: every clone, the scalar tail and the step loop give the same bits.

using simd::Pair;
using simd::Quad;

/// Advances `len` agents of one path through all n steps; t + k * ld holds step k's decisions.
/// Chunks of agents stay in registers through all steps, as chunk / lanes independent multiply-add
/// chains that hide their latency (8 of the 16 SSE2 or AVX2 registers).
template <class Vec, int chunk>
[[gnu::always_inline]] inline void advance_agents(double* x, const double* t, std::ptrdiff_t ld,
                                                  const double* e, int n, int len, double growth) {
  constexpr int lanes = sizeof(Vec) / sizeof(double);
  constexpr int regs = chunk / lanes;
  int c = 0;
  for (; c + chunk <= len; c += chunk) {
    Vec xr[regs];
    for (int r = 0; r < regs; ++r) std::memcpy(&xr[r], x + c + r * lanes, sizeof(Vec));
    for (int k = 0; k < n; ++k) {
      const double* tk = t + k * ld + c;
      const double ek = e[k];
      for (int r = 0; r < regs; ++r) {
        Vec tr;
        std::memcpy(&tr, tk + r * lanes, sizeof(Vec));
        xr[r] = xr[r] * growth + tr * ek;
      }
    }
    for (int r = 0; r < regs; ++r) std::memcpy(x + c + r * lanes, &xr[r], sizeof(Vec));
  }
  for (; c < len; ++c) {
    double xc = x[c];
    for (int k = 0; k < n; ++k) xc = xc * growth + t[k * ld + c] * e[k];
    x[c] = xc;
  }
}

void advance_agents_sse2(double* x, const double* t, std::ptrdiff_t ld, const double* e, int n, int len,
                         double growth) {
  advance_agents<Pair, 16>(x, t, ld, e, n, len, growth);
}

#ifdef HERDSIM_AVX2_CLONE
[[gnu::target("avx2,no-fma")]] void advance_agents_avx2(double* x, const double* t, std::ptrdiff_t ld,
                                                        const double* e, int n, int len, double growth) {
  advance_agents<Quad, 32>(x, t, ld, e, n, len, growth);
}
#endif

/// A tile's plan from the compact plan: buf[k * stride + j] = by_step[k * distinct + row_of[j]] (a
/// gather per decision: vectorised with AVX2 gathers in that clone).
[[gnu::always_inline]] inline void fill_tile(double* buf, std::ptrdiff_t stride, const double* by_step,
                                             std::ptrdiff_t distinct, const std::uint16_t* row_of, int n,
                                             int len) {
  for (int k = 0; k < n; ++k) {
    const double* column = by_step + k * distinct;
    double* out = buf + k * stride;
    for (int j = 0; j < len; ++j) out[j] = column[row_of[j]];
  }
}

void fill_tile_sse2(double* buf, std::ptrdiff_t stride, const double* by_step, std::ptrdiff_t distinct,
                    const std::uint16_t* row_of, int n, int len) {
  fill_tile(buf, stride, by_step, distinct, row_of, n, len);
}

#ifdef HERDSIM_AVX2_CLONE
[[gnu::target("avx2,no-fma")]] void fill_tile_avx2(double* buf, std::ptrdiff_t stride, const double* by_step,
                                                   std::ptrdiff_t distinct, const std::uint16_t* row_of,
                                                   int n, int len) {
  for (int k = 0; k < n; ++k) {
    const double* column = by_step + k * distinct;
    double* out = buf + k * stride;
    int j = 0;
    for (; j + 4 <= len; j += 4) {
      std::int64_t four = 0;  // four 16-bit row indices
      std::memcpy(&four, row_of + j, sizeof four);
      const __m128i index = _mm_cvtepu16_epi32(_mm_cvtsi64_si128(four));
      // The masked form with an explicit source: the plain one reads an "undefined" register.
      const __m256d all = _mm256_castsi256_pd(_mm256_set1_epi64x(-1));
      _mm256_storeu_pd(out + j, _mm256_mask_i32gather_pd(_mm256_setzero_pd(), column, index, all, 8));
    }
    for (; j < len; ++j) out[j] = column[row_of[j]];
  }
}
#endif

using FillFn = void (*)(double*, std::ptrdiff_t, const double*, std::ptrdiff_t, const std::uint16_t*, int,
                        int);

FillFn pick_fill() {
#ifdef HERDSIM_AVX2_CLONE
  if (simd::has_avx2()) return &fill_tile_avx2;
#endif
  return &fill_tile_sse2;
}

using AdvanceFn = void (*)(double*, const double*, std::ptrdiff_t, const double*, int, int, double);

AdvanceFn pick_advance() {
#ifdef HERDSIM_AVX2_CLONE
  if (simd::has_avx2()) return &advance_agents_avx2;
#endif
  return &advance_agents_sse2;
}

/// dst[0, len) = src[0, len) with non-temporal stores: the run never reads these slots again, so they
/// skip the cache (no read for ownership).
void stream_copy(double* dst, const double* src, int len) {
  int i = 0;
  for (; i < len && (reinterpret_cast<std::uintptr_t>(dst + i) & 15U) != 0; ++i) dst[i] = src[i];
  for (; i + 2 <= len; i += 2) _mm_stream_pd(dst + i, _mm_loadu_pd(src + i));
  for (; i < len; ++i) dst[i] = src[i];
}

}  // namespace

// Path-independent decisions (plans) and nobody watching: each task takes a rectangle of agents x
// paths; tiles of agents advance through all steps on one path after another while their plan (a
// tile x steps buffer, gathered from the compact plan) stays in L2. Same arithmetic in the same order
// as decide/settle, so the final state is bitwise identical to the step loop's (tested).
void Simulation::run_fused(const RunOptions& options, RunSummary& summary) {
  summary.fused = true;
  const int n = state_.steps;
  const int paths = state_.paths;
  if (n == 0) return;
  // Shocks and market path first (cheap, O(paths * steps)).
  Eigen::MatrixXd excess(n, paths);
  for (int k = 0; k < n; ++k) {
    move_market(k);
    excess.row(k) = excess_.transpose();
  }
  const double growth = coefficients_.deposit_growth;
  const AdvanceFn advance = pick_advance();
  const FillFn fill = pick_fill();
  // Agents per tile: a tile's plan (tile x steps) in about 16 KiB, so that it stays in L1 between
  // the gather that writes it and the steps that read it; a multiple of the chunk.
  const int tile = std::clamp((2048 / std::max(n, 1)) / 32 * 32, 32, 2048);
  // The buffer's row stride: one cache line more than the tile, so that the n rows (a power-of-two
  // distance apart otherwise) fall in different cache sets instead of evicting each other.
  const int stride = tile + 8;
  for (std::size_t i = 0; i < populations_.size(); ++i) {
    PopulationState& pop = state_.populations[i];
    const Eigen::MatrixXd& plan = pop.theory_amount;  // count x steps: agents contiguous per step
    const CompactPlan& compact = compact_plans_[i];
    const bool is_compact = !compact.row_of.empty();
    // The distinct rows step-major (decision k of every row contiguous), for the tiles' gathers.
    const std::ptrdiff_t distinct = is_compact ? static_cast<std::ptrdiff_t>(compact.rows.size()) / n : 0;
    std::vector<double> by_step(compact.rows.size());
    for (std::ptrdiff_t d = 0; d < distinct; ++d) {
      for (int k = 0; k < n; ++k) by_step[k * distinct + d] = compact.rows[d * n + k];
    }
    // A periodic plan: one table of period + tile agents (row stride padded as the buffer's) holds
    // every tile's plan, the window starting at a0 % period: nothing to gather per tile.
    const int period = is_compact ? compact.period : 0;
    const std::ptrdiff_t window_stride = period + tile + 8;
    std::vector<double> window(period > 0 ? static_cast<std::size_t>(window_stride) * n : 0);
    for (int j = 0; period > 0 && j < period + tile; ++j) {
      const double* row = compact.rows.data() + std::size_t{compact.row_of[j % period]} * n;
      for (int k = 0; k < n; ++k) window[k * window_stride + j] = row[k];
    }
    // About 64 tasks (at least 64 K agent-paths each), each as long a contiguous run of every state
    // array as the shape allows: a whole path's agents where a path has up to 256 K of them, so that
    // consecutive paths continue one stream (the hardware prefetcher's best case; cutting paths into
    // 4 K-agent pieces cost 1.8x at 10^5 agents x 100 paths, and 1.4-2x with a full plan too, although
    // a tile's plan is then read once per path instead of once per task). Blocks depend only on the shape,
    // never on the thread count (and the arithmetic is element-wise, so not even on the blocks).
    const double slots = static_cast<double>(pop.count) * paths;
    const int agent_grain = static_cast<int>(std::clamp(slots / 64.0, 4096.0, 262144.0));
    const int path_grain = std::max(1, 65536 / std::min(std::max(pop.count, 1), agent_grain));
    tbb::parallel_for(
        tbb::blocked_range2d<int>(0, paths, path_grain, 0, pop.count, agent_grain),
        [&](const tbb::blocked_range2d<int>& r) {
          // Per worker thread, reused across tasks and runs (a fresh allocation of this size would be
          // an mmap and page faults per task).
          thread_local std::vector<double> buffer;
          if (is_compact && period == 0)
            buffer.resize(std::max(buffer.size(), static_cast<std::size_t>(stride) * n));
          // One tile on one path: all steps, then the state the step loop would leave, the last two
          // decisions (after one step, the previous one is the initial amount, untouched).
          const auto advance_tile = [&](int p, int a0, int len, const double* t, std::ptrdiff_t ld) {
            advance(pop.wealth.col(p).data() + a0, t, ld, excess.col(p).data(), n, len, growth);
            stream_copy(pop.amount.col(p).data() + a0, t + (n - 1) * ld, len);
            if (n > 1) stream_copy(pop.previous_amount.col(p).data() + a0, t + (n - 2) * ld, len);
          };
          if (period > 0) {
            // Nothing to prepare per tile: path after path, each sweeping the task's agents in one
            // contiguous run of every array (friendly to the hardware prefetcher).
            for (int p = r.rows().begin(); p != r.rows().end(); ++p) {
              for (int a0 = r.cols().begin(); a0 < r.cols().end(); a0 += tile) {
                advance_tile(p, a0, std::min(tile, r.cols().end() - a0), window.data() + a0 % period,
                             window_stride);
              }
            }
          } else {
            // Tile after tile, its plan read or gathered once and then replayed on every path.
            for (int a0 = r.cols().begin(); a0 < r.cols().end(); a0 += tile) {
              const int len = std::min(tile, r.cols().end() - a0);
              const double* t = plan.data() + a0;  // step k of agent a0 + j at t[k * ld + j]
              std::ptrdiff_t ld = pop.count;
              if (is_compact) {
                fill(buffer.data(), stride, by_step.data(), distinct, compact.row_of.data() + a0, n, len);
                t = buffer.data();
                ld = stride;
              }
              for (int p = r.rows().begin(); p != r.rows().end(); ++p) advance_tile(p, a0, len, t, ld);
            }
          }
          _mm_sfence();  // the streamed stores are visible before the task completes
        },
        tbb::simple_partitioner{});
    if (options.progress)
      options.progress(static_cast<int>(i + 1) * n / static_cast<int>(populations_.size()), n);
  }
  check_finite_after_fused(excess);  // once, O(state): the step loop checks in settle()
}

}  // namespace herdsim::sim
