// The portable build of the fused kernel (namespace fused_portable) where sim/fused_kernel.cpp builds the
// x86 one: the same source compiled a second time with the intrinsics turned off, so that both builds
// run, and are compared bit for bit, in one binary. Elsewhere sim/fused_kernel.cpp is the portable build
// and this file adds nothing.
#include "sim/fused_kernel.hpp"

#ifdef HERDSIM_FUSED_X86
#define HERDSIM_FUSED_PORTABLE_COPY 1
#include "sim/fused_kernel.cpp"  // NOLINT(bugprone-suspicious-include): the second build of that source
#endif
