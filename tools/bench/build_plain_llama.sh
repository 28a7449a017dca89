#!/usr/bin/env bash
# The plain llama.cpp baseline of bench_inference (docs/benchmarks.md): builds llama.cpp from the pinned
# source with llama.cpp's own default options (GGML_NATIVE, the llamafile GEMM, OpenMP, flash attention
# and repacked weights left to llama.cpp), not herdsim's batch-invariant build, and compiles
# tools/bench/bench_llama_batched.cpp against it.
#
#   tools/bench/build_plain_llama.sh [BUILD_DIR]     (default /tmp/llama-plain)
#
# Only what does not change a kernel is switched off: tests, examples, tools, the server and curl; the
# libraries are static so that the executable stands alone. Prints the path of the executable, for
#   bench_inference --baseline BUILD_DIR/bench_llama_batched
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
src="${HERDSIM_LLAMA_DIR:-$root/third_party/llama.cpp}"
out="${1:-/tmp/llama-plain}"
jobs="${JOBS:-2}"
[[ -f "$src/CMakeLists.txt" ]] || { echo "build_plain_llama: no llama.cpp source at $src (tools/fetch_llama_cpp.sh)" >&2; exit 2; }
cmake -S "$src" -B "$out" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF -DLLAMA_BUILD_TESTS=OFF \
  -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_CURL=OFF >/dev/null
cmake --build "$out" -j"$jobs" --target llama >/dev/null
${CXX:-g++} -std=c++20 -O2 -o "$out/bench_llama_batched" "$root/tools/bench/bench_llama_batched.cpp" \
  -I"$src/include" -I"$src/ggml/include" \
  "$out/src/libllama.a" "$out/ggml/src/libggml.a" "$out/ggml/src/libggml-cpu.a" "$out/ggml/src/libggml-base.a" \
  -fopenmp -lpthread -ldl
echo "$out/bench_llama_batched"
