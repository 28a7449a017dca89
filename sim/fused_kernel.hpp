#pragma once
// The fused kernel: advances a population whose decisions are a plan (path independent) through a range
// of steps at once, with the arithmetic of the step loop's settle phase in the same order, so that it
// ends in the step loop's state bit for bit. The runtime uses it when every population plays a plan, the
// market is exogenous (no decision moves it) and every observer declares the steps it reads (a recording
// plan): the kernel runs between those steps.
//
// Two builds of one source (sim/fused_kernel.cpp): fused_x86 (x86-64 with HERDSIM_SIMD: SSE2, an AVX2
// clone chosen at run time, AVX2 gathers, non-temporal stores) and fused_portable (plain C++, no
// intrinsics: every other host, and the reference the x86 build is tested against bit for bit).
#include <Eigen/Core>
#include <cstdint>
#include <vector>

#include "sim/run_state.hpp"
#include "sim/simd.hpp"

#ifdef HERDSIM_AVX2_CLONE
#define HERDSIM_FUSED_X86 1  ///< this build holds fused_x86 as well as fused_portable
#endif

namespace herdsim::sim {

/// A plan (PopulationState::theory_amount) in the compact form the fused kernel reads: the distinct
/// rows (one agent's n decisions each, steps contiguous) and each agent's row. Plans over a parameter
/// grid share a few rows, so the kernel reads 2 B per agent instead of 8 B per agent and step.
struct CompactPlan {
  std::vector<double> rows;           ///< distinct rows x steps, row-major, currency units
  std::vector<std::uint16_t> row_of;  ///< per agent: its row; empty when the plan does not compress
  /// When > 0, row_of[i] == row_of[i % period] for every agent (a parameter grid repeats with the
  /// grid's size), so any tile's plan is a window of one small periodic table: nothing per agent.
  int period = 0;
};

/// The compact form of a count x steps plan (bitwise equal rows are shared), or an empty CompactPlan
/// when the distinct rows are too many to stay in cache.
[[nodiscard]] CompactPlan compact_plan(const Eigen::MatrixXd& plan);

/// Steps first..last-1 of a run (a segment between the steps observers read; the whole run: 0..steps).
struct StepRange {
  int first = 0;
  int last = 0;
};

/// Which build of the kernel a run uses; both give the same bits.
enum class FusedKernel {
  fastest,   ///< fused_x86 where this build holds it, else fused_portable
  portable,  ///< fused_portable
};

#ifdef HERDSIM_FUSED_X86
namespace fused_x86 {
/// Advances `pop` through steps a..b-1 (`steps`) on every path: wealth X_a -> X_b by x <- x G + P_k e_k
/// with P_k the plan's column k, then the state the step loop leaves after step b-1 (amount = P_{b-1},
/// previous_amount = P_{b-2} when b > 1, unless pop.amount is empty: then amounts are left alone; nothing
/// changes when a == b). `plan` is count x n
/// (theory_amount, the whole run), `compact` its compact_plan (or empty), `excess` n x paths (e of step
/// k on path p; only rows a..b-1 are read), `deposit_growth` G; currency units. Advancing 0..b in
/// several ranges gives the bits of one range. Parallel over the current task arena, the same bits for
/// any thread count.
void advance_plan(const Eigen::MatrixXd& plan, const CompactPlan& compact, const Eigen::MatrixXd& excess,
                  double deposit_growth, StepRange steps, PopulationState& pop);
}  // namespace fused_x86
#endif

namespace fused_portable {
/// fused_x86::advance_plan in plain C++, with the same bits.
void advance_plan(const Eigen::MatrixXd& plan, const CompactPlan& compact, const Eigen::MatrixXd& excess,
                  double deposit_growth, StepRange steps, PopulationState& pop);
}  // namespace fused_portable

/// advance_plan of the `kernel` build.
void advance_plan(FusedKernel kernel, const Eigen::MatrixXd& plan, const CompactPlan& compact,
                  const Eigen::MatrixXd& excess, double deposit_growth, StepRange steps,
                  PopulationState& pop);

}  // namespace herdsim::sim
