// The fused kernel (sim/fused_kernel.hpp). Where the x86 kernel is built this source is compiled twice:
// as itself (namespace fused_x86: SSE2 and AVX2 clones, intrinsics) and, through
// sim/fused_kernel_portable.cpp, with HERDSIM_FUSED_PORTABLE_COPY defined (namespace fused_portable: plain
// C++). Elsewhere (HERDSIM_SIMD=OFF, other hosts) it is compiled once, as fused_portable. compact_plan and
// the choice of build are compiled in the first copy only.
//
// The floating-point contract of both builds: x <- x * G + P * e, two roundings of products and one of
// their sum, in this order, exactly as the step loop's settle computes it. No multiply-add is ever
// contracted (-ffp-contract=off for the whole target; the AVX2 clone is compiled with FMA explicitly
// off), and IEEE products and sums round the same in any vector width: every clone, every build, the
// scalar tails, the step loop and any thread count give the same bits.
#include "sim/fused_kernel.hpp"

#include <tbb/blocked_range2d.h>
#include <tbb/parallel_for.h>
#include <tbb/partitioner.h>

#include <algorithm>
#include <cassert>
#include <cstring>
#include <unordered_map>

#if defined(HERDSIM_FUSED_X86) && !defined(HERDSIM_FUSED_PORTABLE_COPY)
#define HERDSIM_FUSED_INTRINSICS 1
#include <immintrin.h>
#define HERDSIM_FUSED_BUILD fused_x86
#else
#define HERDSIM_FUSED_BUILD fused_portable
#endif

namespace herdsim::sim {

#ifndef HERDSIM_FUSED_PORTABLE_COPY

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

void advance_plan(FusedKernel kernel, const Eigen::MatrixXd& plan, const CompactPlan& compact,
                  const Eigen::MatrixXd& excess, double deposit_growth, StepRange steps,
                  PopulationState& pop) {
#ifdef HERDSIM_FUSED_X86
  if (kernel == FusedKernel::fastest)
    return fused_x86::advance_plan(plan, compact, excess, deposit_growth, steps, pop);
#endif
  (void)kernel;
  fused_portable::advance_plan(plan, compact, excess, deposit_growth, steps, pop);
}

#endif  // HERDSIM_FUSED_PORTABLE_COPY

namespace HERDSIM_FUSED_BUILD {

namespace {

using AdvanceFn = void (*)(double*, const double*, std::ptrdiff_t, const double*, int, int, double);
using FillFn = void (*)(double*, std::ptrdiff_t, const double*, std::ptrdiff_t, const std::uint16_t*, int,
                        int);

/// A tile's plan from the compact plan: buf[k * stride + j] = by_step[k * distinct + row_of[j]] (a
/// gather per decision).
[[gnu::always_inline]] inline void fill_tile(double* buf, std::ptrdiff_t stride, const double* by_step,
                                             std::ptrdiff_t distinct, const std::uint16_t* row_of, int n,
                                             int len) {
  for (int k = 0; k < n; ++k) {
    const double* column = by_step + k * distinct;
    double* out = buf + k * stride;
    for (int j = 0; j < len; ++j) out[j] = column[row_of[j]];
  }
}

#ifdef HERDSIM_FUSED_INTRINSICS

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

[[gnu::target("avx2,no-fma")]] void advance_agents_avx2(double* x, const double* t, std::ptrdiff_t ld,
                                                        const double* e, int n, int len, double growth) {
  advance_agents<Quad, 32>(x, t, ld, e, n, len, growth);
}

void fill_tile_sse2(double* buf, std::ptrdiff_t stride, const double* by_step, std::ptrdiff_t distinct,
                    const std::uint16_t* row_of, int n, int len) {
  fill_tile(buf, stride, by_step, distinct, row_of, n, len);
}

/// fill_tile with AVX2 gathers.
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

AdvanceFn pick_advance() {
  return simd::has_avx2() ? &advance_agents_avx2 : &advance_agents_sse2;
}

FillFn pick_fill() {
  return simd::has_avx2() ? &fill_tile_avx2 : &fill_tile_sse2;
}

/// dst[0, len) = src[0, len) with non-temporal stores: the run never reads these slots again, so they
/// skip the cache (no read for ownership).
void stream_copy(double* dst, const double* src, int len) {
  int i = 0;
  for (; i < len && (reinterpret_cast<std::uintptr_t>(dst + i) & 15U) != 0; ++i) dst[i] = src[i];
  for (; i + 2 <= len; i += 2) _mm_stream_pd(dst + i, _mm_loadu_pd(src + i));
  for (; i < len; ++i) dst[i] = src[i];
}

/// The streamed stores are visible before the task completes.
void stream_fence() {
  _mm_sfence();
}

#else  // plain C++

/// advance_agents of the x86 build in plain C++: chunks of 16 agents in a local array (which compilers
/// keep in vector registers where the host has them) through all steps, then one agent at a time.
void advance_agents(double* x, const double* t, std::ptrdiff_t ld, const double* e, int n, int len,
                    double growth) {
  constexpr int chunk = 16;
  int c = 0;
  for (; c + chunk <= len; c += chunk) {
    double xr[chunk];
    std::copy_n(x + c, chunk, xr);
    for (int k = 0; k < n; ++k) {
      const double* tk = t + k * ld + c;
      const double ek = e[k];
      for (int j = 0; j < chunk; ++j) xr[j] = xr[j] * growth + tk[j] * ek;
    }
    std::copy_n(xr, chunk, x + c);
  }
  for (; c < len; ++c) {
    double xc = x[c];
    for (int k = 0; k < n; ++k) xc = xc * growth + t[k * ld + c] * e[k];
    x[c] = xc;
  }
}

void fill_tile_plain(double* buf, std::ptrdiff_t stride, const double* by_step, std::ptrdiff_t distinct,
                     const std::uint16_t* row_of, int n, int len) {
  fill_tile(buf, stride, by_step, distinct, row_of, n, len);
}

AdvanceFn pick_advance() {
  return &advance_agents;
}

FillFn pick_fill() {
  return &fill_tile_plain;
}

void stream_copy(double* dst, const double* src, int len) {
  std::copy_n(src, len, dst);
}

void stream_fence() {}

#endif  // HERDSIM_FUSED_INTRINSICS

}  // namespace

// Each task takes a rectangle of agents x paths; tiles of agents advance through the range's steps on one
// path after another while their plan (a tile x steps buffer, gathered from the compact plan) stays in L2.
void advance_plan(const Eigen::MatrixXd& plan, const CompactPlan& compact, const Eigen::MatrixXd& excess,
                  double deposit_growth, StepRange steps, PopulationState& pop) {
  const int total = static_cast<int>(plan.cols());  // plan: count x steps, agents contiguous per step
  const int paths = static_cast<int>(excess.cols());
  assert(0 <= steps.first && steps.first <= steps.last && steps.last <= total);
  assert(plan.rows() == pop.count && excess.rows() == total && pop.wealth.cols() == paths);
  const int n = steps.last - steps.first;  // steps advanced
  if (n == 0 || pop.count == 0) return;
  // Decisions held per tile: steps lo..last-1, the range's and the one before it (the previous_amount
  // the step loop leaves after a range of one step); the advance skips the first `skip` of them.
  const int lo = std::max(steps.first - 1, 0);
  const int m = steps.last - lo;
  const int skip = steps.first - lo;
  const double growth = deposit_growth;
  const bool write_amounts = pop.amount.size() != 0;  // empty: nobody reads them (Simulation)
  const AdvanceFn advance = pick_advance();
  const FillFn fill = pick_fill();
  // Agents per tile: a tile's plan (tile x steps) in about 16 KiB, so that it stays in L1 between
  // the gather that writes it and the steps that read it; a multiple of the chunk.
  const int tile = std::clamp((2048 / std::max(m, 1)) / 32 * 32, 32, 2048);
  // The buffer's row stride: one cache line more than the tile, so that the m rows (a power-of-two
  // distance apart otherwise) fall in different cache sets instead of evicting each other.
  const int stride = tile + 8;
  const bool is_compact = !compact.row_of.empty();
  // The distinct rows step-major (decision k of every row contiguous), for the tiles' gathers.
  const std::ptrdiff_t distinct = is_compact ? static_cast<std::ptrdiff_t>(compact.rows.size()) / total : 0;
  std::vector<double> by_step(static_cast<std::size_t>(distinct) * m);
  for (std::ptrdiff_t d = 0; d < distinct; ++d) {
    for (int k = 0; k < m; ++k) by_step[k * distinct + d] = compact.rows[d * total + lo + k];
  }
  // A periodic plan: one table of period + tile agents (row stride padded as the buffer's) holds
  // every tile's plan, the window starting at a0 % period: nothing to gather per tile.
  const int period = is_compact ? compact.period : 0;
  const std::ptrdiff_t window_stride = period + tile + 8;
  std::vector<double> window(period > 0 ? static_cast<std::size_t>(window_stride) * m : 0);
  for (int j = 0; period > 0 && j < period + tile; ++j) {
    const double* row = compact.rows.data() + std::size_t{compact.row_of[j % period]} * total + lo;
    for (int k = 0; k < m; ++k) window[k * window_stride + j] = row[k];
  }
  // About 64 tasks (at least 64 K agent-paths each), each as long a contiguous run of every state
  // array as the shape allows: a whole path's agents where a path has up to 256 K of them, so that
  // consecutive paths continue one stream (the hardware prefetcher's best case; cutting paths into
  // 4 K-agent pieces cost 1.8x at 10^5 agents x 100 paths, and 1.4-2x with a full plan too, although
  // a tile's plan is then read once per path instead of once per task). Blocks depend only on the shape,
  // never on the thread count (and the arithmetic is element-wise, so not even on the blocks).
  const double slots = static_cast<double>(pop.count) * paths;
  int agent_grain = static_cast<int>(std::clamp(slots / 64.0, 4096.0, 262144.0));
  int path_grain = std::max(1, 65536 / std::min(std::max(pop.count, 1), agent_grain));
  // A full plan over many steps is far larger than the state it moves (10^5 agents x 100 steps: 80 MB,
  // read again for every path): then tasks take a block of agents on every path instead, and each tile
  // replays its plan (tile x steps, in L1) over all the paths.
  if (!is_compact && m > 16 && static_cast<double>(pop.count) * m * sizeof(double) > (1 << 20)) {
    agent_grain = 2048;
    path_grain = paths;
  }
  tbb::parallel_for(
      tbb::blocked_range2d<int>(0, paths, path_grain, 0, pop.count, agent_grain),
      [&](const tbb::blocked_range2d<int>& r) {
        // Per worker thread, reused across tasks and runs (a fresh allocation of this size would be
        // an mmap and page faults per task).
        thread_local std::vector<double> buffer;
        if (is_compact && period == 0)
          buffer.resize(std::max(buffer.size(), static_cast<std::size_t>(stride) * m));
        // One tile on one path (t: its decisions lo..last-1): the range's steps, then the state the step
        // loop would leave, the last two decisions (after step 0, the previous one is the initial
        // amount, untouched).
        const auto advance_tile = [&](int p, int a0, int len, const double* t, std::ptrdiff_t ld) {
          advance(pop.wealth.col(p).data() + a0, t + skip * ld, ld, excess.col(p).data() + steps.first, n,
                  len, growth);
          if (!write_amounts) return;
          stream_copy(pop.amount.col(p).data() + a0, t + (m - 1) * ld, len);
          if (steps.last > 1) stream_copy(pop.previous_amount.col(p).data() + a0, t + (m - 2) * ld, len);
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
            std::ptrdiff_t ld = pop.count;
            const double* t = plan.data() + lo * ld + a0;  // step lo + k of agent a0 + j at t[k * ld + j]
            if (is_compact) {
              fill(buffer.data(), stride, by_step.data(), distinct, compact.row_of.data() + a0, m, len);
              t = buffer.data();
              ld = stride;
            }
            for (int p = r.rows().begin(); p != r.rows().end(); ++p) advance_tile(p, a0, len, t, ld);
          }
        }
        stream_fence();
      },
      tbb::simple_partitioner{});
}

}  // namespace HERDSIM_FUSED_BUILD

}  // namespace herdsim::sim
