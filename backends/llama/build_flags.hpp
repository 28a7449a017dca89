#pragma once
// How this llama.cpp plugin was built: the compile definitions backends/llama/CMakeLists.txt sets, as
// constants (the CPU and the CUDA plugin compile the same sources with different values).

#ifndef HERDSIM_LLAMA_ORIGIN
#define HERDSIM_LLAMA_ORIGIN "unknown"
#endif
#ifndef HERDSIM_LLAMA_BATCH_INVARIANT
#define HERDSIM_LLAMA_BATCH_INVARIANT 0
#endif
#ifndef HERDSIM_LLAMA_LLAMAFILE
#define HERDSIM_LLAMA_LLAMAFILE 0
#endif
#ifndef HERDSIM_LLAMA_CUDA
#define HERDSIM_LLAMA_CUDA 0
#endif

namespace herdsim::llama {

/// The CUDA plugin (libherdsim_backend_llama_cuda.so): every layer on the GPU, and no engine without a
/// usable CUDA device.
inline constexpr bool cuda_build = HERDSIM_LLAMA_CUDA != 0;
/// The pinned llama.cpp source: a sequence's logits do not depend on its batch in batch-invariant mode
/// (cmake/HerdsimLlama.cmake); a system installation's are not known to.
inline constexpr bool batch_invariant_build = HERDSIM_LLAMA_BATCH_INVARIANT != 0;
/// llama.cpp's llamafile GEMM is on (x86-64): batch invariance needs the engine's padding (decode()).
inline constexpr bool llamafile_build = HERDSIM_LLAMA_LLAMAFILE != 0;
/// Where llama.cpp came from (system installation or the pinned source), for describe().
inline constexpr const char* llama_origin = HERDSIM_LLAMA_ORIGIN;

}  // namespace herdsim::llama
