# llama.cpp with its CUDA backend (GGML_CUDA), the engine of the CUDA inference plugin
# herdsim_backend_llama_cuda (docs/gpu.md).
#
# The CPU plugin's llama.cpp (cmake/HerdsimLlama.cmake) is a subdirectory of this build; a second copy
# of the same source with GGML_CUDA=ON cannot be one (the targets llama, ggml, ... would clash), so it
# is an ExternalProject: configured and built in its own binary directory, static and position
# independent, and linked privately into the CUDA plugin only. The same fetched source
# (tools/fetch_llama_cpp.sh) serves both; a system installation of llama.cpp is not used here.
#
# The CUDA toolkit is enough: no GPU and no driver are needed to build. libcuda is linked against the
# toolkit's stub (lib/stubs/libcuda.so, soname libcuda.so.1), so on a machine without the NVIDIA driver
# the plugin fails to load with "libcuda.so.1: cannot open shared object file", which the loader turns
# into a clear message (and `backend = "auto"` into the CPU plugin).
#
# Build time: ggml-cuda is ~140 CUDA translation units; compiled for every architecture and every
# FlashAttention variant it takes hours of CPU. Restricted here, each restriction a llama.cpp option:
#   HERDSIM_CUDA_ARCHITECTURES  default 90-real: SASS for sm_90 (H100, H200) only, no PTX
#   HERDSIM_CUDA_FA             default OFF: GGML_CUDA_FA=OFF, the FlashAttention kernels compile to
#                               empty stubs (the plugin does not use flash attention, as on the CPU)
#   GGML_CUDA_FA_QUANTS=f16-f16 (the least llama.cpp accepts), GGML_CUDA_NCCL=OFF (one GPU)
# docs/gpu.md gives the measured CPU time.
#
# Provides, when built: the target herdsim_llama_cuda (INTERFACE: include directories and libraries of
# the external build) and HERDSIM_CUDA_ENABLED = ON.
set(HERDSIM_WITH_CUDA AUTO CACHE STRING
    "Build the CUDA inference plugin: AUTO (when the CUDA toolkit is found), ON (required), OFF")
set_property(CACHE HERDSIM_WITH_CUDA PROPERTY STRINGS AUTO ON OFF)
set(HERDSIM_CUDA_ARCHITECTURES "90-real" CACHE STRING
    "CMAKE_CUDA_ARCHITECTURES of the CUDA plugin's ggml (no GPU is probed at build time)")
option(HERDSIM_CUDA_FA "Compile ggml's CUDA FlashAttention kernels (slow to build; unused by the plugin)" OFF)
set(HERDSIM_CUDA_LLAMA_BINARY_DIR "${PROJECT_BINARY_DIR}/_deps/llama.cpp-cuda" CACHE PATH
    "Binary directory of the CUDA build of llama.cpp (kept between builds: it resumes)")
set(HERDSIM_CUDA_ENABLED OFF)

function(_herdsim_cuda_unavailable why)
  if(HERDSIM_WITH_CUDA STREQUAL "ON")
    message(FATAL_ERROR "CUDA plugin: ${why} (HERDSIM_WITH_CUDA=ON)")
  endif()
  message(STATUS "CUDA plugin: not built, ${why}")
endfunction()

if(NOT HERDSIM_WITH_CUDA MATCHES "^(AUTO|ON|OFF)$")
  message(FATAL_ERROR "HERDSIM_WITH_CUDA must be AUTO, ON or OFF, got '${HERDSIM_WITH_CUDA}'")
elseif(HERDSIM_WITH_CUDA STREQUAL "OFF")
  message(STATUS "CUDA plugin: not built (HERDSIM_WITH_CUDA=OFF)")
elseif(NOT HERDSIM_WITH_LLAMA)
  _herdsim_cuda_unavailable("the llama.cpp backend is off (HERDSIM_WITH_LLAMA=OFF)")
elseif(NOT HERDSIM_LLAMA_PROVIDER STREQUAL "source")
  _herdsim_cuda_unavailable("it is built from the fetched llama.cpp source only, and a system "
                            "installation was found (configure with -DCMAKE_DISABLE_FIND_PACKAGE_llama=ON)")
else()
  # Also finds a toolkit that is not on PATH in its usual place, /usr/local/cuda.
  if(NOT DEFINED CUDAToolkit_ROOT AND NOT DEFINED ENV{CUDAToolkit_ROOT} AND EXISTS /usr/local/cuda/bin/nvcc)
    set(CUDAToolkit_ROOT /usr/local/cuda)
  endif()
  find_package(CUDAToolkit QUIET)
  if(NOT CUDAToolkit_FOUND OR NOT CUDAToolkit_NVCC_EXECUTABLE)
    _herdsim_cuda_unavailable("no CUDA toolkit found (nvcc; set CUDAToolkit_ROOT)")
  elseif(NOT TARGET CUDA::cuda_driver OR NOT TARGET CUDA::cublas OR NOT TARGET CUDA::cudart)
    _herdsim_cuda_unavailable("the CUDA toolkit in ${CUDAToolkit_LIBRARY_DIR} lacks cudart, cuBLAS or the libcuda stub")
  else()
    set(HERDSIM_CUDA_ENABLED ON)
  endif()
endif()

if(HERDSIM_CUDA_ENABLED)
  find_package(OpenMP REQUIRED COMPONENTS C CXX)  # ggml-cpu's threads, as in the CPU plugin's build
  find_package(Threads REQUIRED)
  include(ExternalProject)
  set(_bin "${HERDSIM_CUDA_LLAMA_BINARY_DIR}")
  set(_libs
      "${_bin}/src/libllama.a"
      "${_bin}/ggml/src/libggml.a"
      "${_bin}/ggml/src/libggml-cpu.a"
      "${_bin}/ggml/src/ggml-cuda/libggml-cuda.a"
      "${_bin}/ggml/src/libggml-base.a")
  string(REPLACE ";" "|" _archs "${HERDSIM_CUDA_ARCHITECTURES}")
  # Portable CPU code without the llamafile GEMM (the CPU code is not on the decode path: every layer is
  # on the GPU), always Release and without our sanitizer flags.
  ExternalProject_Add(herdsim_llama_cuda_build
    SOURCE_DIR "${HERDSIM_LLAMA_DIR}"
    BINARY_DIR "${_bin}"
    DOWNLOAD_COMMAND ""
    UPDATE_COMMAND ""
    INSTALL_COMMAND ""
    LIST_SEPARATOR |
    CMAKE_GENERATOR Ninja
    CMAKE_ARGS
      -DCMAKE_BUILD_TYPE=Release
      -DBUILD_SHARED_LIBS=OFF
      -DCMAKE_POSITION_INDEPENDENT_CODE=ON
      -DCMAKE_C_COMPILER=${CMAKE_C_COMPILER}
      -DCMAKE_CXX_COMPILER=${CMAKE_CXX_COMPILER}
      -DCMAKE_CUDA_COMPILER=${CUDAToolkit_NVCC_EXECUTABLE}
      -DCMAKE_CUDA_ARCHITECTURES=${_archs}
      -DGGML_CUDA=ON
      -DGGML_CUDA_FA=${HERDSIM_CUDA_FA}
      -DGGML_CUDA_FA_QUANTS=f16-f16
      -DGGML_CUDA_NCCL=OFF
      -DGGML_NATIVE=OFF
      -DGGML_LLAMAFILE=OFF
      -DGGML_CCACHE=OFF
      -DGGML_BACKEND_DL=OFF
      -DLLAMA_BUILD_COMMON=OFF
      -DLLAMA_BUILD_TESTS=OFF
      -DLLAMA_BUILD_TOOLS=OFF
      -DLLAMA_BUILD_EXAMPLES=OFF
      -DLLAMA_BUILD_SERVER=OFF
      -DLLAMA_BUILD_APP=OFF
      -DLLAMA_CURL=OFF
      -DLLAMA_OPENSSL=OFF
    BUILD_COMMAND ${CMAKE_COMMAND} --build <BINARY_DIR> --target llama ggml
    BUILD_ALWAYS ON  # ninja there decides what is out of date (an edited source, an interrupted build)
    BUILD_BYPRODUCTS ${_libs}
    USES_TERMINAL_CONFIGURE ON
    USES_TERMINAL_BUILD ON)

  add_library(herdsim_llama_cuda INTERFACE)
  add_dependencies(herdsim_llama_cuda herdsim_llama_cuda_build)
  target_include_directories(herdsim_llama_cuda SYSTEM INTERFACE "${HERDSIM_LLAMA_DIR}/include"
                                                                 "${HERDSIM_LLAMA_DIR}/ggml/include")
  target_link_libraries(herdsim_llama_cuda INTERFACE
    ${_libs} CUDA::cudart CUDA::cublas CUDA::cublasLt CUDA::cuda_driver OpenMP::OpenMP_CXX
    Threads::Threads ${CMAKE_DL_LIBS} m)
  message(STATUS "CUDA plugin: built with CUDA ${CUDAToolkit_VERSION} (${CUDAToolkit_NVCC_EXECUTABLE}) for "
                 "architectures ${HERDSIM_CUDA_ARCHITECTURES}, FlashAttention kernels ${HERDSIM_CUDA_FA}, "
                 "llama.cpp built in ${_bin}")
endif()
