#!/usr/bin/env bash
# The agent split's cost (docs/benchmarks.md, docs/cluster.md): one run of tools/bench/mpi_agents.toml
# (a leader, 100 000 adaptive followers and 100 000 noise traders, 16 paths x 100 steps, price impact) run
#   1. as one process with T threads (the baseline, no MPI),
#   2. by mpirun with R ranks x T/R threads, --split agents,
# printing wall seconds for each and, from rank 0's summary line, the exchanges of the market's flow: their
# number, the bytes every rank receives per step and the wall time per step spent in them (MPI_Allgatherv
# of the flow's block sums, waiting for the slowest rank included).
#   tools/bench/mpi_agents.sh [HERDSIM] [RANKS] [THREADS] [SCENARIO]
#     (defaults: build/ci/tools/herdsim, 2, nproc, tools/bench/mpi_agents.toml)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
herdsim="$(realpath "${1:-$here/../../build/ci/tools/herdsim}")"
ranks="${2:-2}"
threads="${3:-$(nproc)}"
scenario="$(realpath "${4:-$here/mpi_agents.toml}")"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1  # harmless when not root
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

timed() {  # label, command...: runs it, prints wall seconds; its stdout is kept in $work/out
  local label="$1"; shift
  local t0 t1
  t0=$(date +%s.%N)
  "$@" >"$work/out" 2>"$work/err" || { cat "$work/err"; exit 1; }
  t1=$(date +%s.%N)
  python3 -c "import sys; print(f'{sys.argv[3]:<40} {float(sys.argv[2])-float(sys.argv[1]):7.2f} s')" \
    "$t0" "$t1" "$label"
}

echo "mpi_agents: $(basename "$scenario"), $(nproc) cores, $("$herdsim" --version)"
timed "one process, $threads threads" "$herdsim" run -q "$scenario" -o "$work/serial.h5" --threads "$threads"
per=$(( threads / ranks > 0 ? threads / ranks : 1 ))
timed "mpirun $ranks ranks x $per threads, by agents" mpirun --oversubscribe --bind-to none -np "$ranks" \
  "$herdsim" run -q "$scenario" -o "$work/dist.h5" --threads "$per" --split agents
sed -nE 's/.*(agent exchange on rank 0: [^;]*);.*/\1/p' "$work/out"
