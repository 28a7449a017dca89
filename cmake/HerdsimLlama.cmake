# llama.cpp, the engine of the llama.cpp inference backend (issue 5).
#
# A system installation when CMake finds one (find_package(llama CONFIG), API 0.5.x); otherwise the
# pinned source that tools/fetch_llama_cpp.sh materialises (from the npm package node-llama-cpp),
# added as a subdirectory that builds only the libraries llama and ggml with the CPU backend, static
# and position independent so that a shared-library plugin can link them.
#
# Provides, when HERDSIM_WITH_LLAMA is ON:
#   herdsim::llama            INTERFACE target: llama + ggml, their include directories and libraries
#   HERDSIM_LLAMA_PROVIDER    "system" or "source", for messages and provenance
#
# llama.cpp is third-party code: our warnings (herdsim_warnings, -Werror) are never applied to it,
# its headers are SYSTEM includes for our targets, and it is built without sanitizers even in the
# asan preset (the flags are stripped for its directory only; our targets keep them).
option(HERDSIM_WITH_LLAMA "Build the llama.cpp inference backend" ON)
# ggml's llamafile GEMM: register-blocked matrix products for two or more columns (tokens), about
# 1.5-2x faster than ggml's one-dot-product-per-element kernel on f16 weights. The two round
# differently, so the engine lays out its decodes so that no product it hands llama.cpp has one
# column (backends/llama/llama_engine.cpp): with kv_unified = false, a sequence's logits are then
# bitwise the same for any batch (batch invariance). On x86-64 only: on other processors llamafile
# serves only products of four or more columns, which the padding does not guarantee. Applies to the
# fetched source only: a system installation is used as it was built (and not batch invariant).
if(CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64)$")
  set(_herdsim_llamafile_default ON)
else()
  set(_herdsim_llamafile_default OFF)
endif()
option(HERDSIM_LLAMA_LLAMAFILE "Build llama.cpp with its llamafile GEMM (x86-64; batch invariant by padding)"
       ${_herdsim_llamafile_default})
if(HERDSIM_LLAMA_LLAMAFILE AND NOT _herdsim_llamafile_default)
  message(FATAL_ERROR "HERDSIM_LLAMA_LLAMAFILE=ON needs an x86-64 processor (this is ${CMAKE_SYSTEM_PROCESSOR}): "
                      "elsewhere llama.cpp's llamafile GEMM takes only products of 4+ columns, and the "
                      "engine's answers would depend on their batch. Configure with -DHERDSIM_LLAMA_LLAMAFILE=OFF.")
endif()
# Default: where tools/fetch_llama_cpp.sh puts it (the same environment variable moves both).
if(DEFINED ENV{HERDSIM_LLAMA_DIR})
  set(_herdsim_llama_dir_default "$ENV{HERDSIM_LLAMA_DIR}")
else()
  set(_herdsim_llama_dir_default "${PROJECT_SOURCE_DIR}/third_party/llama.cpp")
endif()
set(HERDSIM_LLAMA_DIR "${_herdsim_llama_dir_default}"
    CACHE PATH "llama.cpp source tree used when no system installation is found (tools/fetch_llama_cpp.sh)")

# The llama.cpp API version the backend is written against: an older system installation is
# ignored, a newer one is an error (see below).
set(_herdsim_llama_api_min 0.5.0)
set(_herdsim_llama_api_next 0.6.0)

# Adds the fetched source. A function, so that every variable set here configures llama.cpp's
# directories only and none leaks into ours.
function(_herdsim_add_llama_source source_dir)
  # Only the libraries: no tests, examples, tools, server (and so no web UI download), app, common.
  foreach(opt IN ITEMS LLAMA_BUILD_COMMON LLAMA_BUILD_TESTS LLAMA_BUILD_TOOLS LLAMA_BUILD_EXAMPLES
                       LLAMA_BUILD_SERVER LLAMA_BUILD_APP LLAMA_BUILD_UI LLAMA_USE_PREBUILT_UI
                       LLAMA_BUILD_MTMD LLAMA_TOOLS_INSTALL LLAMA_TESTS_INSTALL LLAMA_CURL
                       LLAMA_OPENSSL LLAMA_LLGUIDANCE LLAMA_FATAL_WARNINGS LLAMA_ALL_WARNINGS
                       LLAMA_SANITIZE_ADDRESS LLAMA_SANITIZE_THREAD LLAMA_SANITIZE_UNDEFINED
                       GGML_BUILD_TESTS GGML_BUILD_EXAMPLES GGML_BACKEND_DL GGML_CPU_ALL_VARIANTS
                       GGML_NATIVE GGML_CCACHE GGML_BLAS GGML_CUDA GGML_METAL GGML_VULKAN
                       GGML_OPENCL GGML_RPC GGML_SANITIZE_ADDRESS GGML_SANITIZE_THREAD
                       GGML_SANITIZE_UNDEFINED)
    set(${opt} OFF)
  endforeach()
  set(GGML_CPU ON)
  set(GGML_LLAMAFILE ${HERDSIM_LLAMA_LLAMAFILE})
  # GGML_NATIVE OFF above: portable x86-64 binaries (AVX2/FMA/F16C baseline), not tuned to the
  # build machine. GGML_CCACHE OFF: ggml would set a global compiler launcher for our targets too.

  set(BUILD_SHARED_LIBS OFF)                 # static: linked into the plugin, no extra .so to ship
  set(CMAKE_POSITION_INDEPENDENT_CODE ON)    # ... and the plugin is a shared library
  set(CMAKE_CXX_STANDARD 17)                 # upstream's standard, not our C++20
  set(CMAKE_CXX_EXTENSIONS ON)

  # Sanitizers are for our code (asan preset); llama.cpp is built as upstream ships it.
  foreach(lang IN ITEMS C CXX)
    string(REGEX REPLACE "-f(no-)?sanitize[^ ]*" "" CMAKE_${lang}_FLAGS "${CMAKE_${lang}_FLAGS}")
    # Optimised even in Debug builds (the dev preset): at -O0 the backend tests run ~10x slower, and
    # nobody debugs into ggml's kernels. -g0 keeps the static libraries small.
    set(CMAKE_${lang}_FLAGS_DEBUG "-O2 -g0")
    # The asan preset compiles our code at -O1 -g1 (half the compile time of -O2 -g); llama.cpp keeps
    # -O2 there (the backend tests' speed) and needs no debug information.
    set(CMAKE_${lang}_FLAGS_RELWITHDEBINFO "-O2 -DNDEBUG")
  endforeach()

  # EXCLUDE_FROM_ALL: only targets that ours link are built. SYSTEM: its headers raise no warnings
  # in our -Werror builds.
  add_subdirectory("${source_dir}" "${PROJECT_BINARY_DIR}/_deps/llama.cpp" EXCLUDE_FROM_ALL SYSTEM)
endfunction()

if(HERDSIM_WITH_LLAMA)
  # -DCMAKE_DISABLE_FIND_PACKAGE_llama=ON skips any system installation (always the fetched source).
  # The version request keeps out older installations (their config is not even loaded).
  find_package(llama ${_herdsim_llama_api_min} CONFIG QUIET)
  if(llama_FOUND AND NOT llama_VERSION VERSION_LESS _herdsim_llama_api_next)
    message(FATAL_ERROR
      "llama.cpp: the system installation ${llama_VERSION} (${llama_DIR}) is newer than the API herdsim "
      "is written against (${_herdsim_llama_api_min} <= version < ${_herdsim_llama_api_next}). "
      "Configure with -DCMAKE_DISABLE_FIND_PACKAGE_llama=ON to build the fetched source instead.")
  endif()
  if(llama_FOUND AND NOT TARGET llama)
    message(FATAL_ERROR "llama.cpp: ${llama_DIR} defines no target 'llama'")
  endif()

  add_library(herdsim_llama INTERFACE)
  add_library(herdsim::llama ALIAS herdsim_llama)

  if(llama_FOUND)
    set(HERDSIM_LLAMA_PROVIDER system)
    message(STATUS "llama.cpp: system installation ${llama_VERSION} (${llama_DIR})")
    target_link_libraries(herdsim_llama INTERFACE llama)  # its imported target brings ggml::ggml
  elseif(EXISTS "${HERDSIM_LLAMA_DIR}/CMakeLists.txt" AND EXISTS "${HERDSIM_LLAMA_DIR}/include/llama.h")
    set(HERDSIM_LLAMA_PROVIDER source)
    set(_herdsim_llama_pin "unknown version")
    if(EXISTS "${HERDSIM_LLAMA_DIR}/.git/herdsim-fetched")
      file(STRINGS "${HERDSIM_LLAMA_DIR}/.git/herdsim-fetched" _herdsim_llama_pin LIMIT_COUNT 1)
    elseif(EXISTS "${HERDSIM_LLAMA_DIR}/.herdsim-fetched")  # a subset without .git (tools/gpu_check.sh --pack)
      file(STRINGS "${HERDSIM_LLAMA_DIR}/.herdsim-fetched" _herdsim_llama_pin LIMIT_COUNT 1)
    endif()
    message(STATUS "llama.cpp: building from ${HERDSIM_LLAMA_DIR} (${_herdsim_llama_pin}), CPU backend")
    _herdsim_add_llama_source("${HERDSIM_LLAMA_DIR}")
    target_link_libraries(herdsim_llama INTERFACE llama ggml)
  else()
    message(FATAL_ERROR
      "llama.cpp not found: no system installation (find_package(llama)) and no source in "
      "HERDSIM_LLAMA_DIR=${HERDSIM_LLAMA_DIR}.\n"
      "Run `bash tools/fetch_llama_cpp.sh` (or `bash tools/setup.sh`, which calls it), "
      "or configure with -DHERDSIM_WITH_LLAMA=OFF to build without the llama.cpp backend.")
  endif()
endif()
