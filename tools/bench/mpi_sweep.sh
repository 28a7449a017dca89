#!/usr/bin/env bash
# Distributed throughput (docs/benchmarks.md, docs/cluster.md): a scenario (the sweep of mpi_sweep.toml by
# default; mpi_paths.toml, one run, is split by paths) run
#   1. as one process with T threads (the baseline, no MPI),
#   2. by mpirun with 1 rank x T threads,
#   3. by mpirun with R ranks x T/R threads (ranks x threads = T, the cores of this machine by default),
# printing wall seconds and runs per second for each, and checking that the merged distributed file holds
# the baseline's data (h5py, every dataset).
#   tools/bench/mpi_sweep.sh [HERDSIM] [RANKS] [THREADS] [SCENARIO]
#     (defaults: build/ci/tools/herdsim, 2, nproc, tools/bench/mpi_sweep.toml)
#   tools/bench/mpi_sweep.sh build/release/tools/herdsim 2 2 tools/bench/mpi_paths.toml   # path split
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
herdsim="$(realpath "${1:-$here/../../build/ci/tools/herdsim}")"
ranks="${2:-2}"
threads="${3:-$(nproc)}"
scenario="$(realpath "${4:-$here/mpi_sweep.toml}")"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1  # harmless when not root
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
points=$("$herdsim" validate "$scenario" | sed -E 's/.*valid \(([0-9]+) runs?.*/\1/')

timed() {  # label, command...: runs it, prints wall seconds and points per second
  local label="$1"; shift
  local t0 t1
  t0=$(date +%s.%N)
  "$@" >/dev/null 2>"$work/err" || { cat "$work/err"; exit 1; }
  t1=$(date +%s.%N)
  python3 -c "import sys; s=float(sys.argv[2])-float(sys.argv[1]); print(f'{sys.argv[3]:<34} {s:7.2f} s  {int(sys.argv[4])/s:6.2f} runs/s')" \
    "$t0" "$t1" "$label" "$points"
}

echo "mpi_sweep: $(basename "$scenario"), $points runs, $(nproc) cores, $("$herdsim" --version)"
timed "one process, $threads threads" "$herdsim" run -q "$scenario" -o "$work/serial.h5" --threads "$threads"
timed "mpirun 1 rank x $threads threads" mpirun --oversubscribe --bind-to none -np 1 \
  "$herdsim" run -q "$scenario" -o "$work/one.h5" --threads "$threads"
per=$(( threads / ranks > 0 ? threads / ranks : 1 ))
timed "mpirun $ranks ranks x $per threads" mpirun --oversubscribe --bind-to none -np "$ranks" \
  "$herdsim" run -q "$scenario" -o "$work/dist.h5" --threads "$per"
"$herdsim" merge "$work/dist.h5" -o "$work/merged.h5" >/dev/null
/usr/bin/python3 - "$work/serial.h5" "$work/merged.h5" <<'PY'
import sys, h5py, numpy as np
names = []
with h5py.File(sys.argv[1], "r") as a, h5py.File(sys.argv[2], "r") as b:
    a.visit(lambda n: names.append(n) if isinstance(a[n], h5py.Dataset) else None)
    for n in names:
        x, y = a[n][()], b[n][()]
        if a[n].dtype.kind in "fiu":
            assert np.ascontiguousarray(x).tobytes() == np.ascontiguousarray(y).tobytes(), n
        else:  # strings (coordinates): by value
            assert np.array_equal(x, y), n
print(f"merged distributed file = one-process file: {len(names)} datasets equal")
PY
