#pragma once
// The absolute adaptive rule's array kernel (docs/scenarios.md, "adaptive rule"), shared by herd
// agents on a leader and on peers: w = 1 / (1 + exp(ln kappa)), P = w P_own + (1 - w) P_seen.
//
// Its exp is a fixed sequence of IEEE operations (no library call, no multiply-add contraction), so the
// kernel gives the same bits on every x86-64 CPU, in its SSE2 and AVX2 forms, and for any split of
// the range into blocks: results never depend on the machine or the thread count.

namespace herdsim::agents {

/// exp(x) to within 2 ulp for x in [-708, 709]; x is clamped to that range first (so exp saturates at
/// about 3.3e-308 and 8.2e307 instead of reaching 0 or infinity); NaN stays NaN.
[[nodiscard]] double fixed_exp(double x);

/// amount[j] = w own[j] + (1 - w) seen[j] with w = 1 / (1 + fixed_exp(ln_kappa[j])), for j < len.
/// `amount` may alias any input.
void blend_toward_reference(const double* ln_kappa, const double* own, const double* seen, double* amount,
                            int len);

namespace detail {
/// The kernels in a chosen vector width (2: SSE2, 4: AVX2, which needs a CPU with AVX2), so that tests
/// can compare the widths bit for bit: out[j] = fixed_exp(x[j]), and blend_toward_reference.
void fixed_exp(const double* x, double* out, int len, int lanes);
void blend_toward_reference(const double* ln_kappa, const double* own, const double* seen, double* amount,
                            int len, int lanes);
}  // namespace detail

}  // namespace herdsim::agents
