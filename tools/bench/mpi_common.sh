# What the distributed benchmarks share (mpi_sweep.sh, mpi_agents.sh, mpi_weak.sh): sourced, not run.
# Reads the common arguments [HERDSIM] [RANKS] [THREADS] [SCENARIO] (defaults: build/ci/tools/herdsim, 2,
# nproc, $1 of mpi_setup), lets mpirun run as root, makes a work folder removed on exit, and gives
# timed LABEL COMMAND...: runs COMMAND (stdout kept in $work/out, stderr shown on failure) and prints the
# label and its wall seconds (and rate_count/seconds in rate_unit per second where the caller set both),
# leaving the seconds in $seconds.
# Usage: source mpi_common.sh; mpi_setup DEFAULT_SCENARIO "$@"
mpi_setup() {
  local default_scenario="$1"; shift
  bench_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
  herdsim="$(realpath "${1:-$bench_dir/../../build/ci/tools/herdsim}")"
  ranks="${2:-2}"
  threads="${3:-$(nproc)}"
  scenario="$(realpath "${4:-$bench_dir/$default_scenario}")"
  per=$(( threads / ranks > 0 ? threads / ranks : 1 ))  # threads per rank
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1  # harmless when not root
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
}

timed() {
  local label="$1"; shift
  local t0 t1
  t0=$(date +%s.%N)
  "$@" >"$work/out" 2>"$work/err" || { cat "$work/err"; exit 1; }
  t1=$(date +%s.%N)
  seconds=$(python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.2f}')" "$t0" "$t1")
  printf '%-46s %7.2f s' "$label" "$seconds"
  if [ -n "${rate_count:-}" ]; then
    python3 -c "import sys; print(f'  {float(sys.argv[1]) / float(sys.argv[2]):9.3g} {sys.argv[3]}/s', end='')" \
      "$rate_count" "$seconds" "$rate_unit"
  fi
  echo
}

# mpirun as the benchmarks start it: any number of ranks on this machine, no core binding.
mpirun_n() {
  local n="$1"; shift
  mpirun --oversubscribe --bind-to none -np "$n" "$@"
}
