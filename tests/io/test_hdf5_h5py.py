#!/usr/bin/env python3
"""Round trip of the HDF5 recorder through h5py: write_sample_h5 writes a known run, this test
recomputes every value from the same formulas (numpy for the summaries) and checks the file
against docs/hdf5-schema.md.

Usage: test_hdf5_h5py.py PATH_TO_write_sample_h5 TMP_DIR
"""
import os
import subprocess
import sys
import unittest

import h5py
import numpy as np

WRITER = None
TMP = None

# Keep in step with write_sample_h5.cpp.
PATHS, STEPS, DT, EVERY = 4, 7, 0.5, 3
COUNTS = [5, 3]
NAMES = ["rational", "noisy"]
RECORDED_PATHS = [1, 3]
MAX_AGENTS = 4
QUANTILES = [0.05, 0.25, 0.5, 0.75, 0.95]
WEALTH_STEPS = [0, 3, 6, 7]
DECISION_STEPS = [0, 3, 6]
GROUP = "/sweep_000"


def wealth_at(i, a, p, s):
    return 50.0 * (i + 1) + 3 * a + 0.7 * p + 0.1 * s * s + (a * 5 + p + s * 2) % 4


def amount_at(i, a, p, k):
    return 1.0 + 0.5 * a - 0.2 * p + 0.05 * k * (i + 1) + (a + p + k) % 3


def price_at(p, s):
    return 2.0 + 0.3 * p + 0.01 * s


def shock_at(p, k):
    return 0.1 * (p + 1) * (k - 3)


def grid(fn, i, steps, paths, agents):
    """(step, path, agent) array of fn(i, a, p, step)."""
    return np.array([[[fn(i, a, p, s) for a in agents] for p in paths] for s in steps])


def stats(values):
    v = values.ravel()
    return np.concatenate([[v.mean(), v.std(), v.min(), v.max()], np.quantile(v, QUANTILES)])


class Hdf5RoundTrip(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.path = os.path.join(TMP, "h5py_sample.h5")
        for p in (cls.path, cls.path + ".partial"):
            if os.path.exists(p):
                os.remove(p)
        out = subprocess.run([WRITER, cls.path], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        cls.bytes_written = int(out.stdout.strip())
        cls.f = h5py.File(cls.path, "r")

    @classmethod
    def tearDownClass(cls):
        cls.f.close()

    def test_committed_file_and_root_attributes(self):
        self.assertFalse(os.path.exists(self.path + ".partial"))
        self.assertEqual(self.bytes_written, os.path.getsize(self.path))
        a = self.f.attrs
        self.assertEqual(a["schema_version"], 1)
        self.assertEqual(a["complete"], 1)
        self.assertEqual(a["seed"], 7)
        self.assertEqual(a["seed"].dtype, np.uint64)
        self.assertEqual(a["herdsim_version"], "0.1.0-sample")
        self.assertEqual(a["scenario"], "[run]\nhorizon = 3.5\n")
        self.assertEqual(a["command_line"], "write_sample_h5 OUTPUT.h5")
        self.assertRegex(a["created"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")

    def test_group_attributes(self):
        g = self.f[GROUP]
        self.assertEqual(g.attrs["sweep_point"], "market.sigma=0.2")
        self.assertEqual(list(g.attrs["paths"]), RECORDED_PATHS)
        self.assertEqual(g.attrs["every"], EVERY)
        self.assertEqual(g.attrs["steps"], STEPS)
        self.assertEqual(g.attrs["dt"], DT)

    def test_time(self):
        g = self.f[GROUP + "/time"]
        self.assertEqual(g["step"].dtype, np.int32)
        np.testing.assert_array_equal(g["step"][()], WEALTH_STEPS)
        np.testing.assert_allclose(g["t"][()], np.array(WEALTH_STEPS) * DT)
        np.testing.assert_array_equal(g["decision_step"][()], DECISION_STEPS)
        self.assertEqual(g["t"].attrs["units"], "years")
        self.assertEqual(g["t"].attrs["dims"], "step")

    def test_market(self):
        g = self.f[GROUP + "/market"]
        price = np.array([[price_at(p, s) for p in RECORDED_PATHS] for s in WEALTH_STEPS])
        np.testing.assert_array_equal(g["price"][()], price)
        ret = np.array([[price_at(p, k + 1) / price_at(p, k) - 1 for p in RECORDED_PATHS] for k in DECISION_STEPS])
        np.testing.assert_allclose(g["return"][()], ret, rtol=1e-14)
        shock = np.array([[shock_at(p, k) for p in RECORDED_PATHS] for k in DECISION_STEPS])
        np.testing.assert_array_equal(g["shock"][()], shock)
        self.assertEqual(g["price"].attrs["dims"], "step,path")
        self.assertEqual(g["return"].attrs["dims"], "decision_step,path")
        self.assertEqual(g["shock"].maxshape, (None, 2))

    def test_populations(self):
        for i, name in enumerate(NAMES):
            with self.subTest(population=name):
                g = self.f[f"{GROUP}/populations/{name}"]
                m = min(MAX_AGENTS, COUNTS[i])
                agents = range(m)
                self.assertEqual(g.attrs["kind"], ["merton", "noise"][i])
                self.assertEqual(g.attrs["count"], COUNTS[i])
                self.assertEqual(g.attrs["recorded_agents"], m)
                wealth = g["wealth"]
                self.assertEqual(wealth.shape, (len(WEALTH_STEPS), 2, m))
                self.assertEqual(wealth.attrs["dims"], "step,path,agent")
                self.assertEqual(wealth.attrs["units"], "currency units")
                self.assertEqual(wealth.compression, "gzip")
                self.assertEqual(wealth.chunks, (1, 2, m))
                np.testing.assert_array_equal(wealth[()], grid(wealth_at, i, WEALTH_STEPS, RECORDED_PATHS, agents))
                amount = g["amount"]
                self.assertEqual(amount.attrs["dims"], "decision_step,path,agent")
                np.testing.assert_array_equal(amount[()], grid(amount_at, i, DECISION_STEPS, RECORDED_PATHS, agents))
                np.testing.assert_array_equal(g["params/alpha"][()], [0.5 + 0.1 * a + i for a in agents])
                self.assertEqual(g["params/alpha"].attrs["dims"], "agent")
        theory = self.f[f"{GROUP}/populations/rational/theory/amount"]
        self.assertEqual(theory.attrs["dims"], "decision_step,agent")
        np.testing.assert_array_equal(theory[()], [[10.0 * k + 0.5 * a for a in range(4)] for k in range(STEPS)])
        self.assertNotIn("theory", self.f[f"{GROUP}/populations/noisy"])

    def test_summaries_match_numpy(self):
        for i, name in enumerate(NAMES):
            with self.subTest(population=name):
                s = self.f[f"{GROUP}/populations/{name}/summary"]
                self.assertEqual(s.attrs["stats"], "mean,std,min,max,q0.05,q0.25,q0.5,q0.75,q0.95")
                agents = range(COUNTS[i])  # summaries cover every agent, not only the recorded ones
                wealth = grid(wealth_at, i, WEALTH_STEPS, RECORDED_PATHS, agents)
                amount = grid(amount_at, i, DECISION_STEPS, RECORDED_PATHS, agents)
                proportion = amount / grid(wealth_at, i, DECISION_STEPS, RECORDED_PATHS, agents)
                np.testing.assert_allclose(s["wealth"][()], [stats(w) for w in wealth], rtol=1e-12)
                np.testing.assert_allclose(s["amount"][()], [stats(x) for x in amount], rtol=1e-12, atol=1e-15)
                np.testing.assert_allclose(s["proportion"][()], [stats(x) for x in proportion], rtol=1e-12,
                                           atol=1e-15)
                self.assertEqual(s["wealth"].attrs["dims"], "step,stat")
                self.assertEqual(s["amount"].attrs["dims"], "decision_step,stat")


if __name__ == "__main__":
    WRITER, TMP = sys.argv[1], sys.argv[2]
    unittest.main(argv=sys.argv[:1], verbosity=2)
