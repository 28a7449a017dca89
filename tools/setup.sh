#!/usr/bin/env bash
# Installs herdsim's build and test dependencies from Debian 12 packages.
# Idempotent: when every package is already installed it only runs dpkg-query (well under a second).
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
  clang-format          # style check
  python3-numpy python3-scipy python3-h5py python3-matplotlib   # round-trip tests, NumPy/SciPy baselines, plots
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages present"
  exit 0
fi

echo "setup: installing ${missing[*]}"
sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup: done"
