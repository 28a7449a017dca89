#!/usr/bin/env python3
"""investagent populations end to end with a real model: `herdsim run` through the llama.cpp plugin with
the tiny test model (absolute, mutual and step protocols, a few agents, 2 paths, threads = 1), the transcripts
(one per request, every answer valid under the grammar), `herdsim compare` (a decision MSE for each
population), a replay run that reproduces the file bit for bit, and an investagent population paired with
a herd population by `investors` (the same investors; compare's paired differences recomputed from the file).

Usage: test_investagent.py PATH_TO_HERDSIM PLUGIN_DIR MODELS_DIR
"""
import json
import os
import subprocess
import sys
import tempfile
import unittest

import h5py
import numpy as np
from scipy import stats

HERDSIM = None
PLUGIN_DIR = None
MODELS_DIR = None

SCENARIO = """
[run]
seed = 3
paths = 2
horizon = 3
steps_per_year = 1

[[population]]
name = "advisor"
kind = "merton"
alpha = 0.2
wealth = 10.0

[[population]]
name = "planners"
kind = "investagent"
protocol = "absolute"
leader = "advisor"
count = 3
alpha = {{ lottery_prob = [0.6, 0.9] }}
theta = {{ score = [0, 10] }}
wealth = 10.0
[population.inference]
backend = "llama"
model = "{model}"
threads = 1
batch = 2
max_tokens = 1024

[[population]]
name = "pairs"
kind = "investagent"
protocol = "mutual"
leader = "advisor"
count = 2
alpha = {{ lottery_prob = [0.5, 0.9] }}
theta = {{ score = 10 }}
wealth = 10.0
[population.inference]
backend = "llama"
model = "{model}"
threads = 1
batch = 2
max_tokens = 1024

[[population]]
name = "steppers"
kind = "investagent"
protocol = "step"
leader = "advisor"
count = 2
alpha = {{ lottery_prob = 0.7 }}
theta = {{ score = 5 }}
wealth = 10.0
[population.inference]
backend = "llama"
model = "{model}"
threads = 1
batch = 4
max_tokens = 1024
"""

# Root attributes that say when and how a file was made, not what it holds.
PROVENANCE_ROOT = {"created", "command_line", "scenario", "herdsim_version"}
# Population attributes that name the backend or time it.
PROVENANCE_POPULATION = {"backend", "backend_description", "inference_seconds"}
# The dimension scales' links hold object references (file addresses, which differ with the provenance
# strings' lengths): which scale an axis has is its `dims` attribute and the scale's values.
REFERENCES = {"DIMENSION_LIST", "REFERENCE_LIST"}


def run(args, **kw):
    env = dict(os.environ, HERDSIM_PLUGIN_PATH=PLUGIN_DIR)
    return subprocess.run([HERDSIM] + args, capture_output=True, text=True, env=env, timeout=600, **kw)


def items(f):
    """Every dataset and group of a file with its attributes: {path: (kind, value, attrs)}."""
    out = {}

    def visit(name, obj):
        attrs = {k: obj.attrs[k] for k in obj.attrs}
        if isinstance(obj, h5py.Dataset):
            out[name] = ("dataset", obj[()], obj.dtype, attrs)
        else:
            out[name] = ("group", None, None, attrs)

    f.visititems(visit)
    out["/"] = ("group", None, None, {k: f.attrs[k] for k in f.attrs})
    return out


def same(a, b):
    if isinstance(a, np.ndarray) and a.dtype.kind == "f":
        return a.shape == b.shape and a.tobytes() == b.tobytes()  # bit for bit, NaN included
    if isinstance(a, np.ndarray):
        return a.shape == b.shape and (a == b).all()
    return a == b


class InvestAgentRun(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        model = os.path.join(MODELS_DIR, "tiny-qwen2.gguf")
        cls.scenario = os.path.join(cls.tmp.name, "llm.toml")
        with open(cls.scenario, "w") as fh:
            fh.write(SCENARIO.format(model=model))
        cls.original = os.path.join(cls.tmp.name, "llm.h5")
        cls.res = run(["run", cls.scenario, "-o", cls.original, "--threads", "1"])

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_run_and_summary(self):
        self.assertEqual(self.res.returncode, 0, self.res.stderr)
        self.assertIn("inference: 17 requests (0 invalid)", self.res.stdout)

    def test_transcripts_complete_and_valid(self):
        self.assertEqual(self.res.returncode, 0, self.res.stderr)
        with h5py.File(self.original, "r") as f:
            self.assertEqual(f.attrs["complete"], 1)
            for name, expected, width in (("planners", {(0, -1, a) for a in range(3)}, 3),
                                          ("pairs", {(0, -1, a) for a in range(2)}, 3),
                                          ("steppers", {(k, p, a) for k in range(3) for p in range(2)
                                                        for a in range(2)}, 1)):
                pop = f["populations"][name]
                self.assertEqual(pop.attrs["kind"], "investagent")
                self.assertTrue(pop.attrs["backend"])
                json.loads(pop.attrs["backend_description"])
                t = pop["transcripts"]
                keys = list(zip(t["step"][()].tolist(), t["path"][()].tolist(), t["agent"][()].tolist()))
                self.assertEqual(len(keys), len(expected), name)
                self.assertEqual(set(keys), expected, name)
                self.assertTrue((t["valid"][()] == 1).all(), [s for s in t["status"].asstr()[()]])
                self.assertEqual(set(t["status"].asstr()[()]), {"ok"})
                self.assertEqual(t["values"].shape, (len(expected), width))
                self.assertTrue(np.isfinite(t["values"][()]).all())
                self.assertTrue((t["completion_tokens"][()] > 0).all())
                self.assertTrue((t["prompt_tokens"][()] > t["cached_tokens"][()]).all())
                self.assertEqual(t["prompt_hash"].dtype, np.uint64)
                self.assertEqual(len(set(t["seed"][()].tolist())), len(expected))  # one seed per request
                for text in t["output"].asstr()[()]:
                    json.loads(text)  # the grammar admits only JSON objects
                self.assertEqual(pop.attrs["inference_requests"], len(expected))
                self.assertEqual(pop.attrs["inference_invalid"], 0)
                self.assertEqual(pop["theory/amount"].shape, (3, pop.attrs["count"]))
            # Two mutual investors are each other's peer; each prompt quotes the other's profile.
            self.assertEqual(f["populations/pairs/params/peer"][()].tolist(), [1.0, 0.0])
            self.assertEqual(f["populations/pairs"].attrs["protocol"], "mutual")

    def test_compare_reports_decision_mse(self):
        self.assertEqual(self.res.returncode, 0, self.res.stderr)
        res = run(["compare", self.original, "--format", "json", "-q", "--no-sidecar"])
        self.assertEqual(res.returncode, 0, res.stderr)
        doc = json.loads(res.stdout)
        pops = {p["name"]: p for p in doc["runs"][0]["populations"]}
        for name, problem in (("planners", "P3"), ("pairs", "P2"), ("steppers", "P3")):
            self.assertEqual(pops[name]["problem"], problem)
            de = pops[name]["decision_error"]
            self.assertIsNotNone(de, pops[name]["notes"])
            self.assertIsInstance(de["amount"]["mse"], float)
            self.assertGreaterEqual(de["amount"]["mse"], 0.0)

    def test_replay_reproduces_bit_for_bit(self):
        self.assertEqual(self.res.returncode, 0, self.res.stderr)
        replayed = os.path.join(self.tmp.name, "replayed.h5")
        sets = []
        for name in ("planners", "pairs", "steppers"):
            sets += ["--set", f"population.{name}.inference.backend=replay",
                     "--set", f"population.{name}.inference.replay={self.original}"]
        res = run(["run", self.scenario, "-o", replayed, "--threads", "1"] + sets)
        self.assertEqual(res.returncode, 0, res.stderr)
        with h5py.File(self.original, "r") as fa, h5py.File(replayed, "r") as fb:
            a, b = items(fa), items(fb)
        self.assertEqual(set(a), set(b))
        for path in sorted(a):
            kind_a, value_a, dtype_a, attrs_a = a[path]
            kind_b, value_b, dtype_b, attrs_b = b[path]
            self.assertEqual(kind_a, kind_b, path)
            if kind_a == "dataset":
                self.assertEqual(dtype_a, dtype_b, path)
                self.assertTrue(same(value_a, value_b), path)
            skip = PROVENANCE_ROOT if path == "/" else PROVENANCE_POPULATION
            for key in set(attrs_a) | set(attrs_b):
                if key in skip or key in REFERENCES:
                    continue
                self.assertIn(key, attrs_a, f"{path}@{key}")
                self.assertIn(key, attrs_b, f"{path}@{key}")
                self.assertTrue(same(attrs_a[key], attrs_b[key]), f"{path}@{key}")
            if path.startswith("populations/") and path.count("/") == 1 and "backend" in attrs_b:
                self.assertEqual(attrs_b["backend"], "replay")

    def test_bad_input_is_refused_before_the_run(self):
        missing = os.path.join(self.tmp.name, "missing.h5")
        out = os.path.join(self.tmp.name, "never.h5")
        res = run(["run", self.scenario, "-o", out, "--set", "population.planners.inference.backend=replay",
                   "--set", f"population.planners.inference.replay={missing}"])
        self.assertEqual(res.returncode, 2, res.stderr)
        self.assertIn("missing.h5", res.stderr)
        self.assertFalse(os.path.exists(out) or os.path.exists(out + ".partial"))
        res = run(["run", self.scenario, "-o", out, "--set",
                   "population.steppers.inference.model=" + os.path.join(self.tmp.name, "nope.gguf")])
        self.assertEqual(res.returncode, 2, res.stderr)
        self.assertIn("nope.gguf", res.stderr)
        res = run(["run", self.scenario, "-o", out, "--set", "population.steppers.inference.backend=nosuchplugin"])
        self.assertEqual(res.returncode, 2, res.stderr)
        self.assertIn("nosuchplugin", res.stderr)
        self.assertFalse(os.path.exists(out) or os.path.exists(out + ".partial"))


PAIRED_SCENARIO = """
[run]
seed = 5
paths = 2
horizon = 3
steps_per_year = 1

[[population]]
name = "advisor"
kind = "merton"
alpha = 0.2
wealth = 10.0

[[population]]
name = "followers"
kind = "herd"
herd = "absolute"
influence = "leader"
leader = "advisor"
policy = "plan"
count = 4
alpha = {{ lottery_prob = [0.6, 0.9] }}
theta = {{ score = [0, 10] }}
wealth = {{ dist = "lognormal", mu = 2.3, sigma = 0.2 }}

[[population]]
name = "agents"
kind = "investagent"
protocol = "absolute"
leader = "advisor"
count = 4
investors = "followers"
[population.inference]
backend = "llama"
model = "{model}"
threads = 1
batch = 4
max_tokens = 1024
"""


class PairedInvestAgents(unittest.TestCase):
    """An investagent population that takes its investors from a herd population (`investors`,
    docs/scenarios.md): the same alpha, theta and wealth agent for agent, and compare's paired differences
    equal to the means of the per-agent differences recomputed from the file."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        scenario = os.path.join(cls.tmp.name, "paired.toml")
        with open(scenario, "w") as fh:
            fh.write(PAIRED_SCENARIO.format(model=os.path.join(MODELS_DIR, "tiny-qwen2.gguf")))
        cls.file = os.path.join(cls.tmp.name, "paired.h5")
        res = run(["run", scenario, "-o", cls.file, "--threads", "1", "-q"])
        assert res.returncode == 0, res.stderr
        res = run(["compare", cls.file, "--format", "json", "-q", "--no-sidecar"])
        assert res.returncode == 0, res.stderr
        cls.agents = next(p for p in json.loads(res.stdout)["runs"][0]["populations"] if p["name"] == "agents")

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_the_same_investors(self):
        with h5py.File(self.file, "r") as f:
            pops = f["populations"]
            self.assertEqual(pops["agents"].attrs["investors"], "followers")
            for param in ("alpha", "theta", "wealth0"):
                np.testing.assert_array_equal(pops["agents/params"][param][...], pops["followers/params"][param][...])
            # Drawn wealth: four different investors, the same four in both populations.
            self.assertEqual(len(np.unique(pops["followers/params/wealth0"][...])), 4)
            np.testing.assert_array_equal(pops["agents/wealth"][0], pops["followers/wealth"][0])

    def per_agent(self, name):
        """Per agent, from the file: mean over paths of X_T / X_0 - 1, and the decision MSE in currency^2."""
        with h5py.File(self.file, "r") as f:
            pop = f["populations"][name]
            wealth = pop["wealth"][...]  # (step, path, agent)
            amount = pop["amount"][...]  # (decision, path, agent)
            theory = pop["theory/amount"][...]  # (decision, agent)
        return (wealth[-1] / wealth[0] - 1.0).mean(axis=0), ((amount - theory[:, None, :]) ** 2).mean(axis=(0, 1))

    def test_paired_differences_are_the_means_of_per_agent_differences(self):
        paired = self.agents["paired"]
        self.assertEqual(paired["source"], "followers")
        self.assertEqual(paired["agents"], 4)
        (ret_a, mse_a), (ret_f, mse_f) = self.per_agent("agents"), self.per_agent("followers")
        for measure, diff in (("cumulative_return", ret_a - ret_f), ("decision_mse_amount", mse_a - mse_f)):
            got = next(d for d in paired["differences"] if d["measure"] == measure)
            self.assertEqual(got["n"], 4)
            self.assertAlmostEqual(got["mean"], diff.mean(), delta=1e-12 * max(1.0, abs(diff.mean())))
            half = stats.t.ppf(0.975, 3) * np.std(diff, ddof=1) / 2.0
            self.assertAlmostEqual(got["ci_low"], diff.mean() - half, delta=1e-9 * max(1.0, half))
        # The plan followers make no decision error: the difference is the InvestAgents' own error.
        np.testing.assert_allclose(mse_f, 0.0, atol=1e-20)
        self.assertGreater(mse_a.max(), 0.0)


if __name__ == "__main__":
    HERDSIM, PLUGIN_DIR, MODELS_DIR = sys.argv[1:4]
    unittest.main(argv=sys.argv[:1])
