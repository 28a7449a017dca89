#!/usr/bin/env python3
"""End-to-end tests of `herdsim run`: a real HDF5 file read back with h5py.

Usage: test_run.py PATH_TO_HERDSIM
"""
import os
import json
import signal
import subprocess
import sys
import tempfile
import time
import unittest

import h5py
import numpy as np

import support
from support import herdsim

LOADER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools", "herdsim_load.py")

SCENARIO = """
[run]
seed = 5
paths = 6
horizon = 4
steps_per_year = 2

[market]
r = 0.04
mu = 0.07
sigma = 0.17

[[population]]
name = "advisor"
kind = "merton"
alpha = 0.2
wealth = 10.0

[[population]]
name = "followers"
kind = "herd"
leader = "advisor"
policy = "plan"
count = 12
alpha = { lottery_prob = [0.5, 0.9] }
theta = { score = [0, 5, 10] }
wealth = 10.0

[[population]]
name = "adaptive"
kind = "herd"
influence = "peers"
network = { kind = "ring", k = 2 }
policy = "adaptive"
count = 20
alpha = { lottery_prob = { dist = "uniform", low = 0.4, high = 0.9 } }
theta = 1e-6
wealth = 10.0

[[population]]
name = "noise"
kind = "noise"
count = 15
proportion = { dist = "uniform", low = 0.0, high = 1.0 }
wealth = 10.0
"""


class RunOutput(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.scenario = support.write_scenario(cls.tmp.name, "small.toml", SCENARIO)
        cls.out1 = os.path.join(cls.tmp.name, "one.h5")
        cls.out2 = os.path.join(cls.tmp.name, "two.h5")
        for out, threads in ((cls.out1, "1"), (cls.out2, "2")):
            res = herdsim("run", cls.scenario, "-o", out, "--threads", threads)
            assert res.returncode == 0, res.stderr

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_root_attributes_and_completion(self):
        with h5py.File(self.out1, "r") as f:
            self.assertEqual(int(f.attrs["schema_version"]), 1)
            self.assertEqual(int(f.attrs["complete"]), 1)
            self.assertEqual(int(f.attrs["seed"]), 5)
            self.assertIn("followers", str(f.attrs["scenario"]))
            self.assertTrue(str(f.attrs["herdsim_version"]))
        self.assertFalse(os.path.exists(self.out1 + ".partial"))

    def test_shapes_and_dims(self):
        n, paths = 8, 6
        with h5py.File(self.out1, "r") as f:
            self.assertEqual(f["market/price"].shape, (n + 1, paths))
            self.assertEqual(f["market/return"].shape, (n, paths))
            self.assertEqual(f["market/price"].attrs["dims"], "step,path")
            pop = f["populations/followers"]
            self.assertEqual(pop["wealth"].shape, (n + 1, paths, 12))
            self.assertEqual(pop["amount"].shape, (n, paths, 12))
            self.assertEqual(pop["wealth"].attrs["dims"], "step,path,agent")
            self.assertEqual(pop["params/alpha"].shape, (12,))
            self.assertEqual(pop["theory/amount"].shape, (n, 12))
            self.assertEqual(f["populations/noise/wealth"].shape, (n + 1, paths, 15))
            self.assertIn("summary", pop)

    def test_plan_followers_play_the_theory_amount_on_every_path(self):
        with h5py.File(self.out1, "r") as f:
            pop = f["populations/followers"]
            amount = pop["amount"][...]
            theory = pop["theory/amount"][...]
            for p in range(amount.shape[1]):
                np.testing.assert_array_equal(amount[:, p, :], theory)
            # theta = 0 agents (every third) play their own Merton amount: v / (alpha sigma^2 G_k).
            alpha = pop["params/alpha"][...]
            n, dt, r = 8, 0.5, 0.04
            growth = (1 + r * dt) ** (n - 1 - np.arange(n))
            merton = 0.03 / (alpha[0] * 0.17 ** 2 * growth)
            np.testing.assert_allclose(theory[:, 0], merton, rtol=1e-13)

    def test_wealth_follows_the_arithmetic_update_with_the_recorded_shocks(self):
        with h5py.File(self.out1, "r") as f:
            eps = f["market/shock"][...]
            for name in ("advisor", "followers", "adaptive", "noise"):
                w = f[f"populations/{name}/wealth"][...]
                a = f[f"populations/{name}/amount"][...]
                dt = 0.5
                excess = 0.03 * dt + 0.17 * np.sqrt(dt) * eps
                predicted = w[:-1] * (1 + 0.04 * dt) + a * excess[:, :, None]
                np.testing.assert_allclose(w[1:], predicted, rtol=1e-13, atol=1e-13)

    def test_common_shocks_across_populations_and_price_moves_by_the_same_shock(self):
        with h5py.File(self.out1, "r") as f:
            price = f["market/price"][...]
            eps = f["market/shock"][...]
            np.testing.assert_allclose(price[1:] / price[:-1] - 1, 0.07 * 0.5 + 0.17 * np.sqrt(0.5) * eps, rtol=1e-12)

    def test_params_record_the_lottery_probabilities_and_scores_given(self):
        # Issue 15, item 2: the values a population was specified with, beside alpha and theta.
        with h5py.File(self.out1, "r") as f:
            pops = f["populations"]
            followers = pops["followers/params"]
            grid = np.repeat([0.5, 0.9], 3)[np.arange(12) % 6]  # 2 probabilities (slowest) x 3 scores, cycled
            np.testing.assert_array_equal(followers["lottery_prob"][...], grid)
            np.testing.assert_array_equal(followers["score"][...], np.tile([0.0, 5.0, 10.0], 4))
            # A distribution: the draws themselves (alpha is their image under the convention).
            adaptive = pops["adaptive/params"]
            prob, alpha = adaptive["lottery_prob"][...], adaptive["alpha"][...]
            self.assertTrue(np.all((prob > 0.4) & (prob < 0.9)))
            self.assertEqual(len(np.unique(prob)), 20)
            np.testing.assert_allclose(np.expm1(-3 * alpha) / np.expm1(-10 * alpha), prob, rtol=1e-12)
            self.assertNotIn("score", adaptive)  # theta was given directly
            for params in (followers, adaptive):
                self.assertEqual(params["lottery_prob"].attrs["lottery"], "win10_sure3")
                np.testing.assert_array_equal(params["lottery_prob"].attrs["lottery_amounts"], [10.0, 3.0])
            self.assertEqual(sorted(pops["advisor/params"]), ["alpha", "wealth0"])  # alpha given directly

    def test_bitwise_identical_for_one_and_two_threads(self):
        with h5py.File(self.out1, "r") as a, h5py.File(self.out2, "r") as b:
            names = []
            a.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
            self.assertGreater(len(names), 20)
            for name in names:
                np.testing.assert_array_equal(a[name][...], b[name][...], err_msg=name)

    def test_summaries_can_be_switched_off_and_trajectories_stay(self):
        out = os.path.join(self.tmp.name, "nosummary.h5")
        res = herdsim("run", self.scenario, "-o", out, "--set", "record.summaries=false")
        self.assertEqual(res.returncode, 0, res.stderr)
        with h5py.File(out, "r") as f, h5py.File(self.out1, "r") as full:
            self.assertNotIn("summary", f["populations/followers"])
            np.testing.assert_array_equal(f["populations/followers/wealth"][...],
                                          full["populations/followers/wealth"][...])

    def test_noise_traders_hold_proportions_inside_their_distribution(self):
        with h5py.File(self.out1, "r") as f:
            w = f["populations/noise/wealth"][:-1]
            a = f["populations/noise/amount"][...]
            prop = a / w
            self.assertGreaterEqual(prop.min(), 0.0)
            self.assertLessEqual(prop.max(), 1.0)
            self.assertGreater(prop.std(), 0.2)  # uniform(0, 1): std 0.29


class RunFailures(support.TempDirTest):
    def test_invalid_scenario_lists_every_problem_and_writes_nothing(self):
        path = self.scenario(SCENARIO.replace("paths = 6", "paths = -6").replace("alpha = 0.2", "alpha = -0.2"),
                             "bad.toml")
        out = self.path("bad.h5")
        res = herdsim("run", path, "-o", out)
        self.assertEqual(res.returncode, 2)
        # Every problem at once, each with file:line:column and its key path.
        self.assertIn("bad.toml:4:9: run.paths", res.stderr)
        self.assertIn("bad.toml:16:9: population[0].alpha", res.stderr)
        self.assertFalse(os.path.exists(out))
        self.assertFalse(os.path.exists(out + ".partial"))

    def test_interrupted_run_leaves_only_a_partial_file_marked_incomplete(self):
        path = self.scenario(SCENARIO.replace("paths = 6", "paths = 400").replace("steps_per_year = 2", "steps_per_year = 250")
                             .replace('policy = "plan"', 'policy = "replan"'), "long.toml")
        out = self.path("long.h5")
        proc = support.start("run", path, "-o", out, "--threads", "1")
        deadline = time.time() + 60
        while not os.path.exists(out + ".partial") and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
        self.assertEqual(proc.returncode, 130, err)
        self.assertFalse(os.path.exists(out))
        with h5py.File(out + ".partial", "r") as f:
            self.assertEqual(int(f.attrs["complete"]), 0)

    def test_a_merton_population_records_its_lottery_and_convention(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "merton.toml")
            with open(path, "w") as f:
                f.write(SCENARIO.replace('alpha = 0.2\n', 'count = 4\nlottery = "win20_sure6"\n'
                                         'alpha = { lottery_prob = [0.4, 0.6] }\n', 1))
            out = os.path.join(d, "merton.h5")
            res = herdsim("run", path, "-o", out, "--set", "run.paths=2")
            self.assertEqual(res.returncode, 0, res.stderr)
            with h5py.File(out, "r") as f:
                params = f["populations/advisor/params"]
                prob, alpha = params["lottery_prob"][...], params["alpha"][...]
                np.testing.assert_array_equal(prob, [0.4, 0.6, 0.4, 0.6])
                self.assertEqual(params["lottery_prob"].attrs["lottery"], "win20_sure6")
                np.testing.assert_array_equal(params["lottery_prob"].attrs["lottery_amounts"], [20.0, 6.0])
                np.testing.assert_allclose(np.expm1(-6 * alpha) / np.expm1(-20 * alpha), prob, rtol=1e-12)

    def test_set_overrides_and_sweep_groups(self):
        path = self.scenario(SCENARIO + '\n[sweep]\n"market.sigma" = [0.1, 0.2]\n', "sweep.toml")
        out = self.path("sweep.h5")
        res = herdsim("run", path, "-o", out, "--set", "run.paths=3")
        self.assertEqual(res.returncode, 0, res.stderr)
        with h5py.File(out, "r") as f:
            self.assertIn("sweep_000", f)
            self.assertIn("sweep_001", f)
            self.assertEqual(f["sweep_001/market/price"].shape, (9, 3))
            self.assertIn("0.2", str(f["sweep_001"].attrs["sweep_point"]))
            self.assertIn("paths = 3", str(f.attrs["scenario"]))


# Plans in an exogenous market: the fused kernel runs between the recorded steps.
PLANS = """
[run]
seed = 7
paths = 5
horizon = 3
steps_per_year = 4

[[population]]
name = "investors"
kind = "merton"
count = 40
alpha = { dist = "uniform", low = 0.1, high = 0.9 }
wealth = 10.0
"""

MARKET_ONLY = ["--set", "record.trajectories=false", "--set", "record.summaries=false", "--set", "record.every=5"]


class MarketOnly(support.TempDirTest):
    """record.trajectories = false and record.summaries = false: the market at the recorded rows and the
    populations' attributes (docs/hdf5-schema.md), on the fused path and on the step loop; every reader
    says what is missing instead of failing."""

    def run_pair(self, text):
        """The market-only file and the same run with every trajectory, both recorded every 5th step."""
        path = self.scenario(text)
        only, full = self.path("only.h5"), self.path("full.h5")
        res = herdsim("run", path, "-o", only, "-q", *MARKET_ONLY)
        self.assertEqual(res.returncode, 0, res.stderr)
        res = herdsim("run", path, "-o", full, "-q", "--set", "record.every=5")
        self.assertEqual(res.returncode, 0, res.stderr)
        return only, full

    def check_file(self, only, full):
        with h5py.File(only, "r") as f, h5py.File(full, "r") as g:
            self.assertEqual(int(f.attrs["complete"]), 1)
            for name in ("time/step", "time/t", "time/decision_step", "market/price", "market/return",
                         "market/shock"):
                self.assertTrue(np.array_equal(f[name][()], g[name][()]), name)  # the same run, bit for bit
            self.assertEqual(list(f["time/step"][()]), [0, 5, 10, 12])
            for name, pop in f["populations"].items():
                self.assertEqual(int(pop.attrs["recorded_agents"]), 0, name)
                self.assertEqual(int(pop.attrs["count"]), int(g["populations"][name].attrs["count"]))
                self.assertEqual(sorted(pop.keys()), [], name)  # no wealth, amount, params, theory, summary

    def check_readers(self, only, population):
        res = herdsim("compare", only, "--format", "json", "-q", "--no-sidecar")
        self.assertEqual(res.returncode, 0, res.stderr)
        doc = json.loads(res.stdout)
        pop = next(p for p in doc["runs"][0]["populations"] if p["name"] == population)
        self.assertEqual(pop["analysed_agents"], 0)
        self.assertTrue(any("neither trajectories nor summaries" in n for n in pop["notes"]), pop["notes"])
        res = herdsim("compare", only, "-q", "--no-sidecar")
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertIn("the file holds the market only", res.stdout)
        self.assertNotIn("| measure | value |", res.stdout)  # no empty table
        res = herdsim("export", only, "--population", population, "-o", self.path("x.csv"))
        self.assertEqual(res.returncode, 2, res.stderr)
        self.assertIn("neither trajectories nor summaries", res.stderr)
        self.assertEqual(res.stderr.count("\n"), 1, res.stderr)  # one line, no trace
        self.assertFalse(os.path.exists(self.path("x.csv")))
        res = herdsim("report", only, "-o", self.path("report"), "--no-sidecar")
        self.assertEqual(res.returncode, 0, res.stderr)
        with open(os.path.join(self.path("report"), "index.html")) as f:
            self.assertIn("neither summaries nor trajectories of wealth were recorded", f.read())
        res = subprocess.run([sys.executable, LOADER, only], capture_output=True, text=True, timeout=60)
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertIn(f"{population}", res.stdout)
        sys.path.insert(0, os.path.dirname(LOADER))
        try:
            import herdsim_load
        finally:
            sys.path.pop(0)
        with herdsim_load.load_run(only) as run:
            pop = run.population(population)
            self.assertFalse(pop.has_trajectories or pop.has_summary)
            self.assertEqual(run.market()["price"].shape[0], 4)
            for read in (lambda: pop.wealth, lambda: pop.summary("wealth"), lambda: pop.to_pandas()):
                with self.assertRaisesRegex(KeyError, "neither trajectories nor summaries"):
                    read()

    def test_fused_path(self):
        only, full = self.run_pair(PLANS)
        self.check_file(only, full)
        self.check_readers(only, "investors")

    def test_step_loop(self):
        only, full = self.run_pair(SCENARIO.replace("horizon = 4", "horizon = 6"))
        self.check_file(only, full)
        self.check_readers(only, "adaptive")


if __name__ == "__main__":
    support.main()
