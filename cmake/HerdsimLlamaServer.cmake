# llama.cpp's own llama-server, built from the same pinned source as the llama.cpp backend, as the real
# OpenAI-compatible endpoint that the openai backend's tests talk to on loopback (issue 5).
#
# Included from tests/CMakeLists.txt when HERDSIM_WITH_LLAMA is ON and libcurl was found (the openai
# backend exists). An ExternalProject in its own binary directory: the backend's add_subdirectory of
# the same source already defines the targets llama and ggml, and the server needs llama.cpp's common
# and tools, which that build leaves out. Only the llama-server target is built: CPU only, portable
# (GGML_NATIVE OFF), Release whatever our build type, no tests or examples, and no web UI: with
# LLAMA_BUILD_UI and LLAMA_USE_PREBUILT_UI OFF the UI step embeds an empty asset table and fetches
# nothing (only the Debian and npm registries are reachable in CI).
#
# Provides:
#   HERDSIM_LLAMA_SERVER      path of the llama-server executable (built with `all`); empty when there
#                             is no llama.cpp source (a system llama.cpp: a llama-server on PATH is used)
#   herdsim_llama_server      the target that builds it (a no-op target for a system llama-server)
include(ExternalProject)

if(NOT EXISTS "${HERDSIM_LLAMA_DIR}/tools/server/CMakeLists.txt")
  find_program(HERDSIM_LLAMA_SERVER_PROGRAM llama-server)
  set(HERDSIM_LLAMA_SERVER "${HERDSIM_LLAMA_SERVER_PROGRAM}")
  if(NOT HERDSIM_LLAMA_SERVER_PROGRAM)
    set(HERDSIM_LLAMA_SERVER "")
  endif()
  add_custom_target(herdsim_llama_server)
  return()
endif()

# The server is a separate build: its own parallelism (empty = cmake --build's default). CI, with 2
# cores, sets nothing: the outer build is mostly done when this long step runs.
set(HERDSIM_LLAMA_SERVER_JOBS "" CACHE STRING "Parallel jobs for the llama-server build (empty: default)")

set(_herdsim_server_dir ${PROJECT_BINARY_DIR}/_deps/llama-server)
set(HERDSIM_LLAMA_SERVER ${_herdsim_server_dir}/bin/llama-server)
set(_herdsim_server_build_args --target llama-server)
if(HERDSIM_LLAMA_SERVER_JOBS)
  list(APPEND _herdsim_server_build_args --parallel ${HERDSIM_LLAMA_SERVER_JOBS})
endif()

ExternalProject_Add(herdsim_llama_server
  SOURCE_DIR ${HERDSIM_LLAMA_DIR}
  BINARY_DIR ${_herdsim_server_dir}
  CMAKE_ARGS
    -DCMAKE_BUILD_TYPE=Release
    -DCMAKE_C_COMPILER=${CMAKE_C_COMPILER}
    -DCMAKE_CXX_COMPILER=${CMAKE_CXX_COMPILER}
    -DBUILD_SHARED_LIBS=OFF
    -DLLAMA_BUILD_COMMON=ON
    -DLLAMA_BUILD_TOOLS=ON
    -DLLAMA_BUILD_SERVER=ON
    -DLLAMA_BUILD_TESTS=OFF
    -DLLAMA_BUILD_EXAMPLES=OFF
    -DLLAMA_BUILD_APP=OFF
    -DLLAMA_BUILD_UI=OFF
    -DLLAMA_USE_PREBUILT_UI=OFF
    -DLLAMA_OPENSSL=OFF
    -DLLAMA_LLGUIDANCE=OFF
    -DLLAMA_TOOLS_INSTALL=OFF
    -DGGML_NATIVE=OFF
    -DGGML_LLAMAFILE=OFF
    -DGGML_CCACHE=OFF
    -DGGML_BACKEND_DL=OFF
    -DGGML_BLAS=OFF
    -DGGML_CUDA=OFF
    -DGGML_VULKAN=OFF
    -DGGML_RPC=OFF
  BUILD_COMMAND ${CMAKE_COMMAND} --build <BINARY_DIR> ${_herdsim_server_build_args}
  INSTALL_COMMAND ""
  BUILD_BYPRODUCTS ${HERDSIM_LLAMA_SERVER}
  # Rebuilt only when its configuration changes, not on every build of ours.
  BUILD_ALWAYS OFF
  USES_TERMINAL_BUILD ON
)
