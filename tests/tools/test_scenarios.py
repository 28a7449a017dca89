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
import numpy as np

HERDSIM = None
SCENARIOS = None


class ScenarioLibrary(unittest.TestCase):
    def test_library_has_the_required_scenarios(self):
        names = {os.path.basename(p) for p in glob.glob(os.path.join(SCENARIOS, "*.toml"))}
        for required in ("quickstart.toml", "p3_absolute.toml", "p1_relative.toml", "p2_mutual.toml",
                         "emergent_peers.toml", "large.toml"):
            self.assertIn(required, names)

    def test_every_scenario_validates_and_runs(self):
        # The top level and market/ (several assets: schema 2, whose path axis is the last of market/). A
        # scenario with LLM agents needs a model and the plugin: test_investalign_scenarios.py runs it.
        for path in sorted(glob.glob(os.path.join(SCENARIOS, "*.toml")) +
                           glob.glob(os.path.join(SCENARIOS, "market", "*.toml"))):
            with open(path) as f:
                if 'kind = "investagent"' in f.read():
                    continue
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


class FeedbackScenario(unittest.TestCase):
    """scenarios/market/feedback.toml (docs/theory.md §7.4): noise traders, fundamentalists and chartists in
    the endogenous market. Switched on and off with --set on the same seed (the same fundamental and noise
    draws): fundamentalists shrink the mispricing |ln S/F| the noise traders' holdings leave, by about the
    linear factor 1 / (1 + lambda kappa W n / depth) = 1 / 1.5; strong chartists raise the volatility of the
    market price and, much more, of its gap to the fundamental."""

    def market(self, *sets):
        """Mispricing, log returns and mispricing increments of a market-only run (10 paths)."""
        path = os.path.join(SCENARIOS, "market", "feedback.toml")
        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, "out.h5")
            args = [HERDSIM, "run", path, "-o", out, "-q", "--set", "run.paths=10", "--set",
                    "record.trajectories=false", "--set", "record.summaries=false"]
            for s in sets:
                args += ["--set", s]
            res = subprocess.run(args, capture_output=True, text=True, timeout=600)
            self.assertEqual(res.returncode, 0, res.stderr)
            with h5py.File(out, "r") as f:
                price, fundamental = f["market/price"][()][:, 0, :], f["market/fundamental"][()][:, 0, :]
        gap = np.log(price / fundamental)
        return gap[1:], np.diff(np.log(price), axis=0), np.diff(gap, axis=0)

    def test_fundamentalists_shrink_the_mispricing(self):
        gap_none, _, _ = self.market("population.fundamentalists.kappa=0", "population.chartists.chi=0")
        gap_fund, _, _ = self.market("population.chartists.chi=0")
        self.assertGreater(np.abs(gap_none).mean(), 0.01)  # the noise traders' holdings leave a mispricing
        ratio = np.abs(gap_fund).mean() / np.abs(gap_none).mean()
        self.assertLess(ratio, 0.85)
        self.assertGreater(ratio, 0.5)  # the linear factor is 1 / 1.5; the noise is not linear

    def test_strong_chartists_raise_the_volatility(self):
        _, r_none, dg_none = self.market("population.fundamentalists.kappa=0", "population.chartists.chi=0")
        _, r_chart, dg_chart = self.market("population.fundamentalists.kappa=0", "population.chartists.chi=5")
        self.assertGreater(r_chart.std(), 1.08 * r_none.std())
        self.assertGreater(dg_chart.std(), 2.0 * dg_none.std())

    def test_bad_keys_exit_2_naming_the_key(self):
        path = os.path.join(SCENARIOS, "market", "feedback.toml")
        for key, message in (("population.fundamentalists.kappa=-1", "population[1].kappa: must be >= 0"),
                             ("population.chartists.trend_weight=0", "population[2].trend_weight: must lie in (0, 1]"),
                             ("population.chartists.max_proportion=0", "population[2].max_proportion: must be > 0")):
            with self.subTest(key=key):
                res = subprocess.run([HERDSIM, "validate", path, "--set", key], capture_output=True, text=True,
                                     timeout=120)
                self.assertEqual(res.returncode, 2, res.stderr)
                self.assertIn(message, res.stderr)


class PeersAssetsScenario(unittest.TestCase):
    """scenarios/market/peers_assets.toml: the mutual games in three correlated assets. Herding on the network
    (theta as in the file) against none (theta = 0): the spread of the players' asset mixes at t = 0 shrinks,
    and without herding gold, with its negative excess return, is short for everybody."""

    def first_amounts(self, *sets):
        """The game's amounts at the first decision on the first path: (asset, agent)."""
        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, "out.h5")
            args = [HERDSIM, "run", os.path.join(SCENARIOS, "market", "peers_assets.toml"), "-o", out, "-q",
                    "--set", "run.paths=2"]
            for s in sets:
                args += ["--set", s]
            res = subprocess.run(args, capture_output=True, text=True, timeout=600)
            self.assertEqual(res.returncode, 0, res.stderr)
            with h5py.File(out, "r") as f:
                return f["populations/game/amount"][0, :, 0, :]

    def test_herding_compresses_the_asset_mixes(self):
        herd = self.first_amounts()
        alone = self.first_amounts("population.game.theta=0")
        spread = lambda a: np.linalg.norm(a - a.mean(axis=1, keepdims=True))
        self.assertLess(spread(herd), 0.8 * spread(alone))
        self.assertTrue(np.all(alone[2] < 0.0))


class HerdOnChartistScenario(unittest.TestCase):
    """scenarios/market/herd_on_chartist.toml: adaptive herd followers of a chartist leader. Herding (theta as
    in the file) against none (theta = 0) on the same seed: the followers' crowding behind the trend raises
    the volatility of the market price and of its gap to the fundamental, and the volatility clusters."""

    def market(self, *sets):
        """Log returns (after the opening month) and mispricing increments of a market-only run (40 paths)."""
        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, "out.h5")
            args = [HERDSIM, "run", os.path.join(SCENARIOS, "market", "herd_on_chartist.toml"), "-o", out, "-q",
                    "--set", "run.paths=40", "--set", "record.trajectories=false", "--set",
                    "record.summaries=false"]
            for s in sets:
                args += ["--set", s]
            res = subprocess.run(args, capture_output=True, text=True, timeout=600)
            self.assertEqual(res.returncode, 0, res.stderr)
            with h5py.File(out, "r") as f:
                price, fundamental = f["market/price"][()][:, 0, :], f["market/fundamental"][()][:, 0, :]
        return np.diff(np.log(price), axis=0)[1:], np.diff(np.log(price / fundamental), axis=0)[1:]

    def test_crowding_behind_the_chartists(self):
        r_herd, dg_herd = self.market()
        r_none, dg_none = self.market("population.followers.theta=0")
        self.assertGreater(r_herd.std(), 1.08 * r_none.std())
        self.assertGreater(dg_herd.std(), 1.5 * dg_none.std())

        def acf_abs(r, lag):
            a = np.abs(r - r.mean())
            a = a - a.mean()
            return (a[lag:] * a[:-lag]).sum() / (a * a).sum()
        self.assertGreater(acf_abs(r_herd, 1), acf_abs(r_none, 1) + 0.02)  # volatility clusters (0.046 vs 0.014)

    def test_plan_needs_a_merton_leader(self):
        path = os.path.join(SCENARIOS, "market", "herd_on_chartist.toml")
        res = subprocess.run([HERDSIM, "validate", path, "--set", 'population.followers.policy="plan"'],
                             capture_output=True, text=True, timeout=120)
        self.assertEqual(res.returncode, 2, res.stderr)
        self.assertIn("population[0].policy: policy = \"plan\" (the default) needs the leader's amounts", res.stderr)


if __name__ == "__main__":
    HERDSIM, SCENARIOS = sys.argv[1], sys.argv[2]
    unittest.main(argv=sys.argv[:1], verbosity=1)
