#!/usr/bin/env python3
"""Every scenario of the library validates and runs to a complete HDF5 file.

Paths are reduced with --set to keep CI short (the full runs are timed in docs/benchmarks.md).
Usage: test_scenarios.py PATH_TO_HERDSIM SCENARIO_DIR
"""
import glob
import os
import subprocess
import sys
import tempfile
import unittest

import h5py

HERDSIM = None
SCENARIOS = None


class ScenarioLibrary(unittest.TestCase):
    def test_library_has_the_required_scenarios(self):
        names = {os.path.basename(p) for p in glob.glob(os.path.join(SCENARIOS, "*.toml"))}
        for required in ("quickstart.toml", "p3_absolute.toml", "p1_relative.toml", "p2_mutual.toml",
                         "emergent_peers.toml", "large.toml"):
            self.assertIn(required, names)

    def test_every_scenario_validates_and_runs(self):
        # The top level and market/ (several assets: schema 2, whose path axis is the last of market/).
        for path in sorted(glob.glob(os.path.join(SCENARIOS, "*.toml")) +
                           glob.glob(os.path.join(SCENARIOS, "market", "*.toml"))):
            with self.subTest(scenario=os.path.basename(path)):
                res = subprocess.run([HERDSIM, "validate", path], capture_output=True, text=True, timeout=120)
                self.assertEqual(res.returncode, 0, res.stderr)
                with tempfile.TemporaryDirectory() as d:
                    out = os.path.join(d, "out.h5")
                    args = [HERDSIM, "run", path, "-o", out, "-q", "--set", "run.paths=2"]
                    if os.path.basename(path) == "large.toml":
                        args += ["--set", "population.followers.count=20000"]
                    if os.path.basename(path) == "relative_peers.toml":
                        # The mutual relative game's full-system factorisation is slow in Debug builds.
                        args += ["--set", "population.game.count=12", "--set", "population.adaptive.count=12"]
                    res = subprocess.run(args, capture_output=True, text=True, timeout=600)
                    self.assertEqual(res.returncode, 0, res.stderr)
                    with h5py.File(out, "r") as f:
                        self.assertEqual(int(f.attrs["complete"]), 1)
                        groups = [f] if "populations" in f else [f[g] for g in f if g.startswith("sweep_")]
                        self.assertGreater(len(groups), 0)
                        for g in groups:
                            self.assertEqual(g["market/price"].shape[-1], 2)


if __name__ == "__main__":
    HERDSIM, SCENARIOS = sys.argv[1], sys.argv[2]
    unittest.main(argv=sys.argv[:1], verbosity=1)
