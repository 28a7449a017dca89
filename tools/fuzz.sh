#!/usr/bin/env bash
# Builds the libFuzzer harnesses (the `fuzz` preset: clang-14, ASan + UBSan; docs/fuzzing.md; the build
# preset's target herdsim_fuzzers: the harnesses and the libraries they link, nothing else) and runs each
# for SECONDS (default 30), from its seed corpus (tests/fuzz/corpus/<name>) and regression inputs
# (tests/fuzz/regressions/<name>), as many at once as there are cores. Fails when any harness finds a crash,
# a sanitizer report, a leak, a slow input (-timeout) or an input that needs too much memory (-rss_limit_mb);
# the input is left in build/fuzz/fuzz-runs/NAME/ (crash-*, timeout-*, oom-*, leak-*).
#
#   tools/fuzz.sh [SECONDS] [NAME...]        e.g. tools/fuzz.sh 600 scenario answer
#
# New inputs the fuzzer finds go to build/fuzz/fuzz-runs/NAME/corpus (not into the repository).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-30}
shift || true

cmake --preset fuzz >/dev/null
cmake --build --preset fuzz -j "$(nproc)"

bin=build/fuzz/tests/fuzz
if [ $# -gt 0 ]; then
  names=("$@")
else
  names=()
  for f in "$bin"/fuzz_*; do [ -x "$f" ] && names+=("${f##*/fuzz_}"); done
fi
[ ${#names[@]} -gt 0 ] || { echo "fuzz: no harness built in $bin"; exit 1; }

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

run_one() {
  local name=$1 work=build/fuzz/fuzz-runs/$1
  rm -f "$work/rc"
  mkdir -p "$work/corpus"
  local dirs=("$work/corpus" "tests/fuzz/corpus/$name")
  [ -d "tests/fuzz/regressions/$name" ] && dirs+=("tests/fuzz/regressions/$name")
  "$bin/fuzz_$name" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$work/" "${dirs[@]}" >"$work/log" 2>&1 && echo 0 >"$work/rc" || echo $? >"$work/rc"
}

for name in "${names[@]}"; do
  [ -x "$bin/fuzz_$name" ] || { echo "fuzz: no harness $bin/fuzz_$name"; exit 1; }
  while [ "$(jobs -rp | wc -l)" -ge "$(nproc)" ]; do wait -n || true; done
  run_one "$name" &
done
wait
failed=()
for name in "${names[@]}"; do
  log=build/fuzz/fuzz-runs/$name/log
  if [ "$(cat "build/fuzz/fuzz-runs/$name/rc" 2>/dev/null)" = 0 ]; then
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
    cov=$(grep -o 'cov: [0-9]* ft: [0-9]*' "$log" | tail -1 || true)
    echo "fuzz_$name: ok, $runs runs in ${seconds} s, $cov"
  else
    failed+=("$name")
    echo "######## fuzz_$name FAILED; its log (build/fuzz/fuzz-runs/$name/log) ends:"
    tail -n 40 "$log"
    ls build/fuzz/fuzz-runs/"$name"/ | grep -E '^(crash|timeout|oom|leak|slow-unit)-' | sed "s|^|  input: build/fuzz/fuzz-runs/$name/|"
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: ${#failed[@]} harness(es) failed: ${failed[*]}; keep each input in tests/fuzz/regressions/<name>/ with its fix"
  exit 1
fi
echo "fuzz: ${#names[@]} harnesses ran ${seconds} s each without a finding"
