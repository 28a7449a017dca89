#pragma once
// The run's large state arrays (wealth, amounts, plans: hundreds of MB at 10^5 agents x 200 paths): their
// first touch, one page fault per 4 KiB page on one thread, was most of a large run's set-up. Allocated
// here they are backed by transparent huge pages where the OS offers them (Linux's madvise mode: 512 times
// fewer faults, fewer TLB misses in the step loop) and first written in parallel.
#include <Eigen/Core>

namespace herdsim::sim {

/// An uninitialised rows x cols matrix, on transparent huge pages where the OS offers them (a hint: the
/// matrix is the same either way). Its pages are touched first by whoever writes them.
[[nodiscard]] Eigen::MatrixXd large_matrix(Eigen::Index rows, Eigen::Index cols);

/// large_matrix filled with `value`, written in parallel (the current task arena).
[[nodiscard]] Eigen::MatrixXd filled_matrix(Eigen::Index rows, Eigen::Index cols, double value);

}  // namespace herdsim::sim
