#!/usr/bin/env bash
# Weak scaling of the path and the agent split (docs/benchmarks.md, docs/cluster.md): the work per rank
# fixed, run by mpirun with 1 rank and with R ranks, 1 thread each (ranks x threads = R: the cores of
# this machine with the default R = 2), printing wall seconds, agent-steps per second and the weak-scaling
# efficiency T(1 rank) / T(R ranks) (1 is ideal: R times the work in the same time).
#   * path split: tools/bench/mpi_paths.toml (a leader and 20 000 adaptive followers, 50 steps) with 400
#     paths per rank, summaries off (the simulation) and on (the exact summaries, gathered each row);
#   * agent split: tools/bench/mpi_agents.toml (price impact: the flow's block sums exchanged every step)
#     with 100 000 followers and 100 000 noise traders per rank, 16 paths x 100 steps.
#   tools/bench/mpi_weak.sh [HERDSIM] [RANKS]
set -euo pipefail
source "$(dirname "$0")/mpi_common.sh"
mpi_setup mpi_paths.toml "${1:-}" "${2:-2}" "${2:-2}"
rate_unit="agent-steps"

efficiency() {  # T(1 rank), T(R ranks)
  python3 -c "import sys; print(f'  weak-scaling efficiency {float(sys.argv[1]) / float(sys.argv[2]):.2f} (1.00 ideal)')" "$1" "$2"
}

echo "mpi_weak: $ranks ranks x 1 thread against 1 rank x 1 thread, $(nproc) cores, $("$herdsim" --version)"
paths_toml="$bench_dir/mpi_paths.toml"
for summaries in false true; do
  rate_count=$((20000 * 400 * 50))
  timed "paths, 1 rank, 400 paths, summaries $summaries" mpirun_n 1 "$herdsim" run -q "$paths_toml" \
    -o "$work/p1.h5" --threads 1 --set run.paths=400 --set record.summaries=$summaries
  one=$seconds
  rate_count=$((20000 * 400 * 50 * ranks))
  timed "paths, $ranks ranks, $((400 * ranks)) paths, summaries $summaries" mpirun_n "$ranks" "$herdsim" run -q \
    "$paths_toml" -o "$work/pr.h5" --threads 1 --set run.paths=$((400 * ranks)) \
    --set record.summaries=$summaries --split paths
  efficiency "$one" "$seconds"
done

agents_toml="$bench_dir/mpi_agents.toml"
rate_count=$((200000 * 16 * 100))
timed "agents, 1 rank, 2 x 100 000 agents" mpirun_n 1 "$herdsim" run -q "$agents_toml" -o "$work/a1.h5" \
  --threads 1
one=$seconds
rate_count=$((200000 * 16 * 100 * ranks))
timed "agents, $ranks ranks, 2 x $((100000 * ranks)) agents" mpirun_n "$ranks" "$herdsim" run -q "$agents_toml" \
  -o "$work/ar.h5" --threads 1 --split agents --set population.followers.count=$((100000 * ranks)) \
  --set population.noise.count=$((100000 * ranks))
efficiency "$one" "$seconds"
sed -nE 's/.*(agent exchange on rank 0: [^;]*);.*/\1/p' "$work/out"
