#!/usr/bin/env bash
# Sets up, builds (warnings as errors) and runs every test. The README's test command; .ci/run calls it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
bash tools/check_format.sh
cmake --preset ci >/dev/null
cmake --build --preset ci -j "$(nproc)"
ctest --preset ci -j "$(nproc)"
