#!/usr/bin/env python3
"""Endogenous prices (docs/theory.md §7.2) end to end: scenarios/market/impact.toml run by the real
executable and read back with h5py. Every dataset is the same bits with 1, 2 and 3 threads (the flow is a
reduction over more agents than one block); the fundamental follows the GBM written out here from the
recorded shocks; lambda 0 writes the exogenous market's file; bad [market.impact] input exits 2 naming the
key; the stability condition's violation is a warning line, not an error.

Usage: test_impact.py PATH_TO_HERDSIM SCENARIO_DIR
"""
import os

import h5py
import numpy as np

import support

# Reduced: 2 paths; 9000 noise traders span three blocks of the flow reduction (PriceImpact::kFlowBlock),
# in a market deep enough for their flow (wealth-proportional buyers feed back on a shallow one).
DEPTH = 1e6
SMALL = ["--set", "run.paths=2", "--set", "population.noise.count=9000", "--set", "run.horizon=2", "--set",
         f"market.impact.depth={DEPTH}"]


def datasets(path):
    """Every dataset of an HDF5 file by name, as numpy arrays."""
    out = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return out


class Impact(support.TempDirTest):
    def scenario_path(self):
        return os.path.join(support.SCENARIOS, "market", "impact.toml")

    def run_impact(self, name, *args):
        out = self.path(name)
        res = support.herdsim("run", self.scenario_path(), "-o", out, "-q", *SMALL, *args)
        self.assertEqual(res.returncode, 0, res.stderr)
        return out

    def test_every_dataset_is_the_same_bits_for_any_thread_count(self):
        one = datasets(self.run_impact("t1.h5", "--threads", "1"))
        self.assertIn("market/flow", one)
        for threads in ("2", "3"):
            other = datasets(self.run_impact(f"t{threads}.h5", "--threads", threads))
            self.assertEqual(sorted(one), sorted(other))
            for name, values in one.items():
                with self.subTest(threads=threads, dataset=name):
                    if values.dtype.kind == "f":
                        self.assertEqual(values.tobytes(), other[name].tobytes())
                    else:
                        np.testing.assert_array_equal(values, other[name])

    def test_price_fundamental_and_flow(self):
        with h5py.File(self.run_impact("a.h5"), "r") as f:
            self.assertEqual(int(f.attrs["schema_version"]), 2)
            price, fundamental = f["market/price"][()], f["market/fundamental"][()]
            shock, ret, flow = f["market/shock"][()], f["market/return"][()], f["market/flow"][()]
            steps = shock.shape[0]
            self.assertEqual(price.shape, (steps + 1, 1, 2))
            self.assertEqual(flow.shape, (steps, 1, 2))
            # The fundamental: the exogenous arithmetic GBM of the scenario, from the recorded shocks.
            mu, sigma, dt = 0.07, 0.17, 1.0 / 12
            expected = np.cumprod(np.concatenate([np.ones((1, 1, 2)), 1 + mu * dt + sigma * np.sqrt(dt) * shock]),
                                  axis=0)
            np.testing.assert_allclose(fundamental, expected, rtol=1e-12)
            # The market price is moved apart from it by the flow, and its returns are its own.
            self.assertGreater(np.max(np.abs(np.log(price / fundamental))), 1e-3)
            np.testing.assert_allclose(ret, price[1:] / price[:-1] - 1, rtol=1e-12, atol=1e-15)
            self.assertTrue(np.all(price >= 0.01))
            # Post-impact execution: ln S_{k+1} - ln F_{k+1} - (ln S_k - ln F_k) = lambda flow_k / depth
            # while the floor does not bind (lambda = 1 in the scenario).
            gap = np.diff(np.log(price / fundamental), axis=0)
            np.testing.assert_allclose(gap, flow / DEPTH, rtol=1e-9, atol=1e-12)

    def test_lambda_zero_writes_the_exogenous_market(self):
        zero = datasets(self.run_impact("zero.h5", "--set", "market.impact.lambda=0"))
        with open(self.scenario_path()) as f:
            text = f.read()
        start = text.index("[market.impact]")
        without = self.scenario(text[:start] + text[text.index("[[population]]"):], "plain.toml")
        out = self.path("plain.h5")
        res = support.herdsim("run", without, "-o", out, "-q", *SMALL[:-2])  # no [market.impact] to set
        self.assertEqual(res.returncode, 0, res.stderr)
        plain = datasets(out)
        self.assertNotIn("market/fundamental", plain)
        self.assertEqual(sorted(zero), sorted(plain))
        for name in ("market/price", "market/return", "populations/rational/wealth", "populations/noise/amount"):
            self.assertEqual(zero[name].tobytes(), plain[name].tobytes(), name)

    def test_bad_input_exits_2_naming_the_key(self):
        for setting, key, reason in (("market.impact.depth=-1", "market.impact.depth", "must be > 0"),
                                     ('market.impact.execution="sideways"', "market.impact.execution",
                                      "pre_impact"),
                                     ("market.impact.floor=2", "market.impact.floor", "below the initial price"),
                                     ("market.impact.lambda=[1, 2]", "market.impact.lambda", "1 assets")):
            with self.subTest(setting=setting):
                res = support.herdsim("validate", self.scenario_path(), "--set", setting)
                self.assertEqual(res.returncode, 2, res.stderr)
                self.assertIn(key, res.stderr)
                self.assertIn(reason, res.stderr)
                res = support.herdsim("run", self.scenario_path(), "-o", self.path("bad.h5"), "-q", "--set", setting)
                self.assertEqual(res.returncode, 2, res.stderr)

    def test_stability_warning_is_a_line_not_an_error(self):
        res = support.herdsim("validate", self.scenario_path())
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertNotIn("warning", res.stderr)
        res = support.herdsim("validate", self.scenario_path(), "--set", "market.impact.lambda=100")
        self.assertEqual(res.returncode, 0, res.stderr)
        lines = [line for line in res.stderr.splitlines() if "warning" in line]
        self.assertEqual(len(lines), 1, res.stderr)
        self.assertIn("spectral radius", lines[0])
        # The planned holdings (about 519) against a depth of 1e6: lambda 5000 makes the radius about 2.6.
        res = support.herdsim("run", self.scenario_path(), "-o", self.path("w.h5"), "-q", *SMALL, "--set",
                              "market.impact.lambda=5000", "--set", "population.noise.count=1")
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertIn("herdsim run: warning: market.impact", res.stderr)


if __name__ == "__main__":
    support.main(scenarios=True)
