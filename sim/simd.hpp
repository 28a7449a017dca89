#pragma once
// What the vectorised kernels share: GNU vector types of two and four doubles (one SSE2 and one AVX2
// register, unaligned loads), whether this build has x86 SIMD code (HERDSIM_AVX2_CLONE), and the run-time
// AVX2 test that picks a kernel's clone. The project is built for portable x86-64 (SSE2); AVX2 clones are
// compiled with target("avx2,no-fma") so that no multiply-add is contracted and every width gives the
// same bits. Other hosts, and builds with HERDSIM_SIMD=OFF (HERDSIM_NO_SIMD), have no x86 code: the
// kernels take their portable forms.

namespace herdsim::sim::simd {

using Pair [[gnu::vector_size(16), gnu::aligned(8)]] = double;
using Quad [[gnu::vector_size(32), gnu::aligned(8)]] = double;

#if defined(__GNUC__) && defined(__x86_64__) && !defined(HERDSIM_NO_SIMD)
#define HERDSIM_AVX2_CLONE 1  ///< x86 SIMD code is built: SSE2 intrinsics, AVX2 clones
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
