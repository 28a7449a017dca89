#include "agents/herd_rule.hpp"

#include <cstdint>
#include <cstring>

#include "sim/simd.hpp"

// The vector helpers pass AVX2 vectors by value; they are always inlined into their clones, so no
// call ever crosses the ABI that GCC warns about.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace herdsim::agents {

namespace {

// GNU vectors of one, two and four doubles (scalar, SSE2, AVX2) and their integer twins. Every
// operation below is elementwise IEEE arithmetic, rounded once, in a fixed order; with FMA disabled in
// every clone no multiply-add is contracted, so all widths give the same bits.
using sim::simd::Pair;
using sim::simd::Quad;
using One [[gnu::vector_size(8), gnu::aligned(8)]] = double;
using OneI [[gnu::vector_size(8), gnu::aligned(8)]] = std::int64_t;
using PairI [[gnu::vector_size(16), gnu::aligned(8)]] = std::int64_t;
using QuadI [[gnu::vector_size(32), gnu::aligned(8)]] = std::int64_t;

template <class V>
[[gnu::always_inline]] inline V splat(double d) {
  V v{};
  v += d;
  return v;
}

constexpr double kFactorialInverse(int k) {
  double f = 1.0;
  for (int i = 2; i <= k; ++i) f *= i;
  return 1.0 / f;
}

/// exp(x) = 2^n exp(r), n = round(x / ln 2), r = x - n ln 2 in two parts (Cody and Waite: n * kLn2Hi
/// is exact), exp(r) by its Taylor series to degree 13 (|r| <= 0.347: truncation below 2e-16).
template <class V, class VI>
[[gnu::always_inline]] inline V exp_fixed(V x) {
  constexpr double kLo = -708.0, kHi = 709.0;
  constexpr double kLog2e = 1.4426950408889634;
  constexpr double kLn2Hi = 0.693145751953125;  // 17 significant bits: n * kLn2Hi exact for |n| < 2^11
  constexpr double kLn2Lo = 1.42860682030941723212e-6;
  constexpr double kRound = 6755399441055744.0;  // 1.5 * 2^52: adding it rounds to an integer
  x = x < splat<V>(kLo) ? splat<V>(kLo) : x;
  x = x > splat<V>(kHi) ? splat<V>(kHi) : x;
  const V shifted = x * kLog2e + kRound;
  const V n = shifted - kRound;
  const V r = (x - n * kLn2Hi) - n * kLn2Lo;
  V p = splat<V>(kFactorialInverse(13));
  p = p * r + kFactorialInverse(12);
  p = p * r + kFactorialInverse(11);
  p = p * r + kFactorialInverse(10);
  p = p * r + kFactorialInverse(9);
  p = p * r + kFactorialInverse(8);
  p = p * r + kFactorialInverse(7);
  p = p * r + kFactorialInverse(6);
  p = p * r + kFactorialInverse(5);
  p = p * r + kFactorialInverse(4);
  p = p * r + kFactorialInverse(3);
  p = p * r + 0.5;
  p = p * r + 1.0;
  p = p * r + 1.0;
  // 2^n from its bits: the low bits of `shifted` hold n; the exponent field takes n + 1023.
  VI bits;
  std::memcpy(&bits, &shifted, sizeof bits);
  VI round_bits;
  const V round = splat<V>(kRound);
  std::memcpy(&round_bits, &round, sizeof round_bits);
  const VI scale_bits = (bits - round_bits + 1023) << 52;
  V scale;
  std::memcpy(&scale, &scale_bits, sizeof scale);
  return p * scale;
}

template <class V, class VI>
[[gnu::always_inline]] inline V blend(V ln_kappa, V own, V seen) {
  const V w = 1.0 / (1.0 + exp_fixed<V, VI>(ln_kappa));
  return w * own + (1.0 - w) * seen;
}

template <class V>
[[gnu::always_inline]] inline V load(const double* p) {
  V v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

template <class V>
[[gnu::always_inline]] inline void store(double* p, V v) {
  std::memcpy(p, &v, sizeof v);
}

/// The kernels over arrays: full vectors, then the tail one value at a time (the same operations per
/// value, so the tail's bits are the vectors').
template <class V, class VI>
[[gnu::always_inline]] inline void blend_array(const double* ln_kappa, const double* own, const double* seen,
                                               double* amount, int len) {
  constexpr int lanes = sizeof(V) / sizeof(double);
  int j = 0;
  for (; j + lanes <= len; j += lanes)
    store(amount + j, blend<V, VI>(load<V>(ln_kappa + j), load<V>(own + j), load<V>(seen + j)));
  for (; j < len; ++j)
    store(amount + j, blend<One, OneI>(load<One>(ln_kappa + j), load<One>(own + j), load<One>(seen + j)));
}

template <class V, class VI>
[[gnu::always_inline]] inline void exp_array(const double* x, double* out, int len) {
  constexpr int lanes = sizeof(V) / sizeof(double);
  int j = 0;
  for (; j + lanes <= len; j += lanes) store(out + j, exp_fixed<V, VI>(load<V>(x + j)));
  for (; j < len; ++j) store(out + j, exp_fixed<One, OneI>(load<One>(x + j)));
}

void blend_sse2(const double* k, const double* o, const double* s, double* a, int len) {
  blend_array<Pair, PairI>(k, o, s, a, len);
}
void exp_sse2(const double* x, double* out, int len) {
  exp_array<Pair, PairI>(x, out, len);
}

#ifdef HERDSIM_AVX2_CLONE
[[gnu::target("avx2,no-fma")]] void blend_avx2(const double* k, const double* o, const double* s, double* a,
                                               int len) {
  blend_array<Quad, QuadI>(k, o, s, a, len);
}
[[gnu::target("avx2,no-fma")]] void exp_avx2(const double* x, double* out, int len) {
  exp_array<Quad, QuadI>(x, out, len);
}
#endif

}  // namespace

double fixed_exp(double x) {
  double out = 0.0;
  store(&out, exp_fixed<One, OneI>(load<One>(&x)));
  return out;
}

void blend_toward_reference(const double* ln_kappa, const double* own, const double* seen, double* amount,
                            int len) {
  detail::blend_toward_reference(ln_kappa, own, seen, amount, len, sim::simd::has_avx2() ? 4 : 2);
}

namespace detail {

void fixed_exp(const double* x, double* out, int len, int lanes) {
#ifdef HERDSIM_AVX2_CLONE
  if (lanes == 4) return exp_avx2(x, out, len);
#endif
  (void)lanes;
  exp_sse2(x, out, len);
}

void blend_toward_reference(const double* ln_kappa, const double* own, const double* seen, double* amount,
                            int len, int lanes) {
#ifdef HERDSIM_AVX2_CLONE
  if (lanes == 4) return blend_avx2(ln_kappa, own, seen, amount, len);
#endif
  (void)lanes;
  blend_sse2(ln_kappa, own, seen, amount, len);
}

}  // namespace detail

}  // namespace herdsim::agents
