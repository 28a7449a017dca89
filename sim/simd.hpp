#pragma once
// What the vectorised kernels share: GNU vector types of two and four doubles (one SSE2 and one AVX2
// register, unaligned loads) and the run-time AVX2 test that picks a kernel's clone. The project is
// built for portable x86-64 (SSE2); AVX2 clones are compiled with target("avx2,no-fma") so that no
// multiply-add is contracted and every width gives the same bits.

namespace herdsim::sim::simd {

using Pair [[gnu::vector_size(16), gnu::aligned(8)]] = double;
using Quad [[gnu::vector_size(32), gnu::aligned(8)]] = double;

#if defined(__GNUC__) && defined(__x86_64__)
#define HERDSIM_AVX2_CLONE 1
#endif

/// Whether this CPU runs AVX2 clones (asked once; false where there are none).
inline bool has_avx2() {
#ifdef HERDSIM_AVX2_CLONE
  static const bool yes = [] {
    __builtin_cpu_init();  // safe to ask before main() too
    return __builtin_cpu_supports("avx2") != 0;
  }();
  return yes;
#else
  return false;
#endif
}

}  // namespace herdsim::sim::simd
