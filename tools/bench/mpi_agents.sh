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
source "$(dirname "$0")/mpi_common.sh"
mpi_setup mpi_agents.toml "$@"

echo "mpi_agents: $(basename "$scenario"), $(nproc) cores, $("$herdsim" --version)"
timed "one process, $threads threads" "$herdsim" run -q "$scenario" -o "$work/serial.h5" --threads "$threads"
timed "mpirun $ranks ranks x $per threads, by agents" mpirun_n "$ranks" \
  "$herdsim" run -q "$scenario" -o "$work/dist.h5" --threads "$per" --split agents
sed -nE 's/.*(agent exchange on rank 0: [^;]*);.*/\1/p' "$work/out"
