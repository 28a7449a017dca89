#include "sim/large_matrix.hpp"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <tbb/partitioner.h>

#include <algorithm>
#include <cstdint>

#ifdef __linux__
#include <sys/mman.h>
#endif

namespace herdsim::sim {

namespace {

/// Asks for transparent huge pages on the whole 2 MiB pages inside [data, data + bytes) (x86-64's and
/// most arm64 kernels' huge page size). A hint: where it fails or the OS has none, nothing changes.
void advise_huge_pages([[maybe_unused]] void* data, [[maybe_unused]] std::size_t bytes) {
#ifdef MADV_HUGEPAGE
  constexpr std::uintptr_t huge = std::uintptr_t{2} << 20;
  const auto at = reinterpret_cast<std::uintptr_t>(data);
  const std::uintptr_t begin = (at + huge - 1) & ~(huge - 1);
  const std::uintptr_t end = (at + bytes) & ~(huge - 1);
  if (end > begin) (void)madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
#endif
}

}  // namespace

Eigen::MatrixXd large_matrix(Eigen::Index rows, Eigen::Index cols) {
  Eigen::MatrixXd m(rows, cols);
  advise_huge_pages(m.data(), static_cast<std::size_t>(m.size()) * sizeof(double));
  return m;
}

Eigen::MatrixXd filled_matrix(Eigen::Index rows, Eigen::Index cols, double value) {
  Eigen::MatrixXd m = large_matrix(rows, cols);
  double* data = m.data();
  // 2 MiB blocks: one huge page each, whatever the thread count (a fill has no rounding to depend on it).
  tbb::parallel_for(
      tbb::blocked_range<Eigen::Index>(0, m.size(), Eigen::Index{1} << 18),
      [&](const tbb::blocked_range<Eigen::Index>& r) { std::fill(data + r.begin(), data + r.end(), value); },
      tbb::simple_partitioner{});
  return m;
}

}  // namespace herdsim::sim
