#!/usr/bin/env bash
# One-command GPU check (docs/gpu.md): on a machine with an NVIDIA GPU and the repository, builds the
# CUDA inference plugin, runs the conformance tests on the GPU, generates the random-weight models and
# runs the inference benchmark (herdsim's engine and plain llama.cpp batched decoding of the same
# workload), and writes everything to one results file.
#
#   bash tools/gpu_check.sh --pack     # here, with the fetched source: build/gpu-carry/ (~15 MB)
#   bash tools/gpu_check.sh            # there; run it again until it prints "gpu_check: complete"
#
# Resumable: every invocation stops cleanly before its time budget (HERDSIM_GPU_CHECK_BUDGET seconds,
# default 540: commands on the GPU machines are limited to 10 minutes) and exits with 75; the next one
# continues where it stopped (the ninja build directory and finished stages are kept). Exit 0: all done
# (results in the file); any other status: a failure, described in the file.
#
# Nothing is downloaded: llama.cpp's source must be in third_party/llama.cpp (tools/fetch_llama_cpp.sh;
# without .git is fine, docs/gpu.md lists what to carry); the models are written here by
# tools/make_tiny_gguf.py. Needs the CUDA toolkit (nvcc), CMake >= 3.25, ninja, a C++20 compiler,
# python3 with NumPy, and the packages tools/setup.sh installs (Boost, Eigen, TBB, fmt, CLI11,
# nlohmann-json, HDF5, Random123, doctest).
#
# Environment: HERDSIM_GPU_BUILD (build directory, default build/gpu), HERDSIM_CUDA_ARCHITECTURES
# (default 90-real: H100, H200), HERDSIM_GPU_CHECK_BUDGET, HERDSIM_GPU_CHECK_QUICK=1 (tiny models
# and batches up to 64 only), OUT (when set, the results file is also copied there).
set -uo pipefail
cd "$(dirname "$0")/.."

# The part of the llama.cpp source this check needs, as one file that travels with the repository
# (`carry`: build/gpu-carry); unpacked into third_party/llama.cpp where that is absent.
llama_subset=(CMakeLists.txt LICENSE cmake ggml src include vendor gguf-py
  models/ggml-vocab-qwen2.gguf models/ggml-vocab-llama-bpe.gguf)
carry_dir=build/gpu-carry
carry_file=$carry_dir/llama.cpp-subset.tar.gz
if [ "${1:-}" = "--pack" ]; then
  # On the machine with the fetched source: bash tools/gpu_check.sh --pack
  src=third_party/llama.cpp
  [ -f "$src/CMakeLists.txt" ] || { echo "gpu_check: no $src; run tools/fetch_llama_cpp.sh" >&2; exit 1; }
  mkdir -p "$carry_dir"
  pin=$(cat "$src/.git/herdsim-fetched" 2>/dev/null || cat "$src/.herdsim-fetched" 2>/dev/null || echo unknown)
  stage=$(mktemp -d)
  echo "$pin" >"$stage/.herdsim-fetched"
  tar -czf "$carry_file" -C "$src" --exclude='*.pyc' --exclude=__pycache__ "${llama_subset[@]}" \
    -C "$stage" .herdsim-fetched
  rm -rf "$stage"
  echo "gpu_check: wrote $carry_file ($(du -h "$carry_file" | cut -f1)); carry: [\"$carry_dir\"]"
  exit 0
fi
if [ ! -f third_party/llama.cpp/CMakeLists.txt ] && [ -f "$carry_file" ]; then
  mkdir -p third_party/llama.cpp
  tar -xzf "$carry_file" -C third_party/llama.cpp || { echo "gpu_check: cannot unpack $carry_file" >&2; exit 1; }
fi

budget=${HERDSIM_GPU_CHECK_BUDGET:-540}
build=${HERDSIM_GPU_BUILD:-build/gpu}
archs=${HERDSIM_CUDA_ARCHITECTURES:-90-real}
quick=${HERDSIM_GPU_CHECK_QUICK:-0}
llama_dir=third_party/llama.cpp
state=$build/gpu_check
results=$state/results.txt
start=$SECONDS
mkdir -p "$state/bench"

left() { echo $((budget - (SECONDS - start))); }
note() { echo "gpu_check: $*" | tee -a "$results"; }
publish() { if [ -n "${OUT:-}" ]; then cp "$results" "$OUT/gpu_check_results.txt" 2>/dev/null || true; fi; }
stop_resumable() {
  note "stopped before the time budget ($budget s) during: $1; run tools/gpu_check.sh again to resume"
  publish
  exit 75
}
fail() {
  note "FAILED: $*"
  publish
  exit 1
}
done_stage() { [ -f "$state/$1.done" ]; }
mark_done() { touch "$state/$1.done"; }
# need SECONDS STAGE: stop (resumable) unless SECONDS are left for the stage.
need() { if [ "$(left)" -lt "$1" ]; then stop_resumable "$2"; fi; }

echo "== gpu_check run at $(date -u +%FT%TZ) (budget $budget s)" >>"$results"

# -- 1. the machine --------------------------------------------------------------------------------
if ! done_stage env; then
  {
    echo "== environment"
    echo "host: $(uname -srm), $(nproc) CPUs, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)"
    if command -v nvidia-smi >/dev/null; then
      nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv,noheader 2>&1 |
        sed 's/^/gpu: /'
    else
      echo "gpu: nvidia-smi not found"
    fi
    nvcc_bin=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
    if [ -x "$nvcc_bin" ]; then "$nvcc_bin" --version | tail -1 | sed 's/^/nvcc: /'; else echo "nvcc: not found"; fi
    echo "cmake: $(cmake --version 2>/dev/null | head -1)"
    echo "llama.cpp: $(cat "$llama_dir/.git/herdsim-fetched" "$llama_dir/.herdsim-fetched" 2>/dev/null | head -1)"
  } >>"$results" 2>&1
  mark_done env
fi

# -- 2. what must be here (no network) -------------------------------------------------------------
missing=()
for f in CMakeLists.txt include/llama.h ggml/CMakeLists.txt ggml/src/ggml-cuda/CMakeLists.txt src/llama.cpp \
  gguf-py/gguf/__init__.py models/ggml-vocab-qwen2.gguf models/ggml-vocab-llama-bpe.gguf; do
  [ -e "$llama_dir/$f" ] || missing+=("$llama_dir/$f")
done
[ ${#missing[@]} -eq 0 ] || fail "the llama.cpp source is incomplete (carry it, docs/gpu.md): ${missing[*]}"
command -v nvcc >/dev/null || [ -x /usr/local/cuda/bin/nvcc ] || fail "no CUDA toolkit (nvcc) on this machine"
command -v ninja >/dev/null || fail "ninja not found"
py=""
for c in /usr/bin/python3 python3; do
  if "$c" -c 'import numpy' 2>/dev/null; then py=$c && break; fi
done
[ -n "$py" ] || fail "python3 with NumPy is needed to write the models"

# -- 3. configure and build (resumable) -------------------------------------------------------------
if [ ! -f "$build/build.ninja" ]; then
  need 60 "configure"
  if ! cmake --preset release -B "$build" -DHERDSIM_WITH_CUDA=ON -DHERDSIM_CUDA_ARCHITECTURES="$archs" \
    -DHERDSIM_LLAMA_SERVER_TESTS=OFF >"$state/configure.log" 2>&1; then
    tail -40 "$state/configure.log" >>"$results"
    fail "configure (log above; the packages of tools/setup.sh must be installed)"
  fi
fi
if ! done_stage build; then
  # SIGINT to the whole build (timeout signals its process group): ninja stops cleanly and the next
  # invocation resumes; 45 s are kept for the message.
  slice=$(($(left) - 45))
  [ "$slice" -gt 30 ] || stop_resumable "build"
  timeout -s INT -k 20 "$slice" cmake --build "$build" -j "$(nproc)" --target herdsim_backend_llama_cuda \
    herdsim_backend_llama test_backends bench_inference bench_llama_batched herdsim_test_models \
    >"$state/build.log" 2>&1
  rc=$?
  if [ $rc -eq 124 ] || [ $rc -eq 130 ] || [ $rc -eq 137 ]; then
    note "build: $(grep -c '^\[' "$state/build.log") steps done in this slice, $(tail -1 "$state/build.log" | cut -c1-120)"
    stop_resumable "build"
  fi
  if [ $rc -ne 0 ]; then
    grep -B2 -A20 -m3 -E 'error|FAILED' "$state/build.log" >>"$results"
    fail "build (exit $rc; $state/build.log)"
  fi
  note "build: done"
  mark_done build
fi

# -- 4. conformance: the CPU plugin's test body on the GPU, and auto's choice ------------------------
for t in backends_cuda backends; do
  done_stage "test_$t" && continue
  need 300 "test $t"
  echo "== ctest $t" >>"$results"
  ctest --test-dir "$build" -R "^$t\$" --output-on-failure --timeout "$(($(left) - 30))" >"$state/test_$t.log" 2>&1
  rc=$?
  grep -E 'SKIPPED|Passed|Failed|\*\*\*|tests passed|test cases|assertions|MESSAGE|ERROR|CHECK' \
    "$state/test_$t.log" | head -60 >>"$results"
  grep -q 'SKIPPED: llama_cuda' "$state/test_$t.log" && fail "$t skipped: no usable CUDA device on this GPU machine"
  [ $rc -eq 0 ] || note "$t: FAILED (exit $rc; $state/test_$t.log)"
  [ $rc -eq 0 ] && note "$t: passed"
  mark_done "test_$t"
done

# -- 5. models (random weights, written here) ---------------------------------------------------------
models_dir=$build/models
mkdir -p "$models_dir"
presets=(qwen2.5-0.5b llama-3.1-8b)
[ "$quick" = 1 ] && presets=()
for p in "${presets[@]}"; do
  [ -f "$models_dir/$p.gguf" ] && continue
  need 400 "model $p"
  note "writing the random $p model"
  "$py" tools/make_tiny_gguf.py "$models_dir/$p.tmp.gguf" --preset "$p" --llama-dir "$llama_dir" \
    >"$state/model_$p.log" 2>&1 || fail "make_tiny_gguf.py --preset $p ($state/model_$p.log)"
  mv "$models_dir/$p.tmp.gguf" "$models_dir/$p.gguf"
done

# -- 6. benchmark: every (model, grammar, batch) is a stage ------------------------------------------
bench_models=("tiny-qwen2:$build/tests/models/tiny-qwen2.gguf")
for p in "${presets[@]}"; do bench_models+=("$p:$models_dir/$p.gguf"); done
batches=(1 2 4 8 16 32 64 128 256 512 1024 2048)
[ "$quick" = 1 ] && batches=(1 8 64)
for m in "${bench_models[@]}"; do
  name=${m%%:*}
  file=${m#*:}
  for grammar in on off; do
    for b in "${batches[@]}"; do
      stage="bench_${name}_${grammar}_$b"
      done_stage "$stage" && continue
      need 240 "$stage"
      # n_ctx 1024 per sequence: the 527-token prompt and up to 256 answer tokens; 256 sequences of an
      # 8B model's f16 KV cache then take 34 GB next to its 15 GB of weights.
      args=(--plugin llama_cuda --model "$file" --batches "$b" --decisions 16 --max-tokens 256
        --n-ctx 1024 --json "$state/bench/$stage.json" --baseline "$build/tools/bench/bench_llama_batched")
      [ "$grammar" = off ] && args+=(--no-grammar)
      slice=$(($(left) - 30))
      timeout -k 10 "$slice" "$build/tools/bench/bench_inference" "${args[@]}" >"$state/bench/$stage.txt" 2>&1
      rc=$?
      if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
        # Retried with a whole budget; a point that does not fit in one command is recorded as such.
        if [ "$slice" -lt $((budget - 120)) ]; then stop_resumable "$stage"; fi
        note "$stage: did not finish within one command ($slice s); left out of the table"
      elif [ $rc -ne 0 ]; then
        tail -5 "$state/bench/$stage.txt" >>"$results"
        fail "$stage (exit $rc; $state/bench/$stage.txt)"
      fi
      mark_done "$stage"
    done
  done
done

# -- 7. one table -------------------------------------------------------------------------------------
{
  echo "== benchmark (plugin llama_cuda; baseline: plain llama.cpp batched decoding of the same prompts"
  echo "   and the same number of generated tokens per sequence, greedy, no grammar, same model and run)"
  "$py" - "$state/bench" <<'EOF'
import json, pathlib, sys
rows = []
for f in sorted(pathlib.Path(sys.argv[1]).glob("*.json")):
    for r in json.loads(f.read_text()):
        rows.append(r)
print(f"{'model':>14} {'grammar':>7} {'batch':>5} {'prefix':>6} {'dec/s':>9} {'gen tok/s':>10} {'prompt tok/s':>12} "
      f"{'valid':>6} {'GPU MiB':>8} {'llama.cpp dec/s':>15} {'llama.cpp gen tok/s':>19}")
rows.sort(key=lambda r: (r["model_name"], r["grammar"], r["batch"], not r["prefix"]))
for r in rows:
    base = r.get("baseline") or {}
    print(f"{r['model_name']:>14} {('on' if r['grammar'] else 'off'):>7} {r['batch']:>5} {('on' if r['prefix'] else 'off'):>6} "
          f"{r['decisions_per_s']:>9.1f} {r['generated_tokens_per_s']:>10.1f} {r['prompt_tokens_per_s']:>12.1f} "
          f"{100.0 * r['valid'] / r['decisions']:>5.0f}% {r.get('device_memory_used_bytes', 0) / 2**20:>8.0f} "
          f"{base.get('decisions_per_s', float('nan')):>15.1f} {base.get('generated_tokens_per_s', float('nan')):>19.1f}")
EOF
} >>"$results" 2>&1
note "complete; results in $results"
publish
exit 0
