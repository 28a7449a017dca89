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
source "$(dirname "$0")/mpi_common.sh"
mpi_setup mpi_sweep.toml "$@"
points=$("$herdsim" validate "$scenario" | sed -E 's/.*valid \(([0-9]+) runs?.*/\1/')
rate_count=$points rate_unit=runs

echo "mpi_sweep: $(basename "$scenario"), $points runs, $(nproc) cores, $("$herdsim" --version)"
timed "one process, $threads threads" "$herdsim" run -q "$scenario" -o "$work/serial.h5" --threads "$threads"
timed "mpirun 1 rank x $threads threads" mpirun_n 1 "$herdsim" run -q "$scenario" -o "$work/one.h5" --threads "$threads"
timed "mpirun $ranks ranks x $per threads" mpirun_n "$ranks" \
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
