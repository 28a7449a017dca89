#!/usr/bin/env bash
# Installs herdsim's build and test dependencies from Debian 12 packages.
# Then fetches the pinned llama.cpp source (tools/fetch_llama_cpp.sh) for the inference backend.
# Idempotent: when everything is present it only runs dpkg-query and one git rev-parse (about a second).
set -euo pipefail

packages=(
  build-essential cmake ninja-build git pkg-config
  libboost-dev          # Boost.Math: root finding, quadrature
  libtbb-dev            # oneTBB: parallel loops
  libeigen3-dev         # Eigen: linear algebra, SoA state
  libhdf5-dev           # HDF5: trajectories
  libfmt-dev            # fmt: formatting
  doctest-dev           # doctest: unit tests
  libcli11-dev          # CLI11: command-line parsing
  libtomlplusplus-dev   # toml++: scenario files
  librandom123-dev      # Random123: counter-based RNG (Philox)
  nlohmann-json3-dev    # JSON output and parsing
  libopenmpi-dev openmpi-bin   # Open MPI: distributed runs (mpirun; docs/cluster.md), built when found
  libcurl4-openssl-dev  # libcurl: the openai inference backend (HTTP to OpenAI-compatible servers)
  clang-format          # style check
  clang-14 libclang-rt-14-dev llvm-14   # libFuzzer harnesses: compiler, fuzzer/sanitizer runtimes, symbolizer (tools/fuzz.sh)
  python3-numpy python3-scipy python3-h5py python3-matplotlib   # round-trip tests, NumPy/SciPy baselines, plots
  python3-pandas        # tools/herdsim_load.py's to_pandas() and the export tests
  python3-xarray python3-h5netcdf   # run files opened as netCDF-4 by xarray (tests/tools/test_xarray.py, docs/python.md)
  netcdf-bin            # ncdump: the run files read by netCDF-C (test_xarray.py skips that check without it)
  npm                   # npm client: downloads the pinned llama.cpp source (tools/fetch_llama_cpp.sh)
)

# An npm already on PATH will do: NodeSource's nodejs bundles one and conflicts with Debian's npm,
# so asking apt for it would remove that Node.js.
present() {
  if [ "$1" = npm ] && command -v npm >/dev/null; then return 0; fi
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"
}

missing=()
for p in "${packages[@]}"; do
  present "$p" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages present"
else
  echo "setup: installing ${missing[*]}"
  sudo_cmd=()
  if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  echo "setup: packages installed"
fi

# The llama.cpp source (a no-op when it is already at the pinned commit).
echo "setup: llama.cpp source in $(bash "$(dirname "$0")/fetch_llama_cpp.sh")"
