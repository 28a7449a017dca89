#!/usr/bin/env python3
"""The research question of issue 15 answered end to end from one bundled scenario and one `compare` call:
"do followers with a higher dependence score herd more behind a Merton leader, how does that compare with
theory, and how much more does the adaptive rule stray from theory than the plan, by score?"

scenarios/score_herding.toml holds the same 66 investors three times, paired by `investors` (plan
followers, adaptive followers, rational Merton investors). The real `herdsim run` writes real HDF5, read
back here with h5py; `herdsim compare RUN --by score --format json` is the one analysis call. The test
checks the pairing in the file, recomputes the paired differences, the by-score table and its trend test
from the file's wealth rows with numpy/scipy, and then reads the answer off the JSON.

Usage: test_research_question.py PATH_TO_HERDSIM SCENARIO_DIR
"""
import json
import os
import sys
import tempfile
import unittest

import h5py
import numpy as np
from scipy import stats

import support


def by_name(run, name):
    return next(p for p in run["populations"] if p["name"] == name)


def measure(table, name):
    return next(m for m in table["measures"] if m["measure"] == name)


def t_interval(values, confidence=0.95):
    n = len(values)
    se = np.std(values, ddof=1) / np.sqrt(n)
    half = stats.t.ppf(0.5 + confidence / 2, n - 1) * se
    return np.mean(values) - half, np.mean(values) + half


def hc1_slope(x, y, confidence=0.95):
    X = np.column_stack([np.ones_like(x), x])
    b = np.linalg.lstsq(X, y, rcond=None)[0]
    e = y - X @ b
    xtx_inv = np.linalg.inv(X.T @ X)
    cov = xtx_inv @ ((X * e[:, None] ** 2).T @ X) @ xtx_inv * len(x) / (len(x) - 2)
    half = stats.t.ppf(0.5 + confidence / 2, len(x) - 2) * np.sqrt(cov[1, 1])
    return b[1], b[1] - half, b[1] + half


class ResearchQuestion(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.run_file = os.path.join(cls.tmp.name, "score_herding.h5")
        scenario = os.path.join(support.SCENARIOS, "score_herding.toml")
        res = support.herdsim("run", scenario, "-o", cls.run_file, "-q")
        assert res.returncode == 0, res.stderr
        # The one analysis call.
        # The rational counterfactual is on by default (issue 15, item 3).
        res = support.herdsim("compare", cls.run_file, "--by", "score", "--format", "json", "-q", "--no-sidecar")
        assert res.returncode == 0, res.stderr
        cls.doc = json.loads(res.stdout)
        cls.group = cls.doc["runs"][0]

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_the_file_holds_the_same_investors_three_times(self):
        with h5py.File(self.run_file, "r") as f:
            pops = f["populations"]
            plan = pops["plan_followers/params"]
            for name in ("adaptive_followers", "rational"):
                self.assertEqual(pops[name].attrs["investors"], "plan_followers")
                for param in ("alpha", "wealth0"):
                    np.testing.assert_array_equal(pops[name]["params"][param][...], plan[param][...])
            np.testing.assert_array_equal(pops["adaptive_followers/params/theta"][...], plan["theta"][...])
            self.assertNotIn("investors", pops["plan_followers"].attrs)
            # Drawn wealth: pairing is visible (66 different values, the same in each population).
            self.assertEqual(len(np.unique(plan["wealth0"][...])), 66)
        # The Python loader says it too.
        sys.path.insert(0, os.path.join(support.SCENARIOS, os.pardir, "tools"))
        import herdsim_load
        run = herdsim_load.load_run(self.run_file)
        self.assertEqual(run.population("adaptive_followers").investors, "plan_followers")
        self.assertIsNone(run.population("plan_followers").investors)

    def test_the_file_records_the_scores_and_lottery_probabilities_the_investors_were_given(self):
        # Issue 15, item 2: beside alpha and theta, the questionnaire values and the lottery convention.
        with h5py.File(self.run_file, "r") as f:
            params = f["populations/plan_followers/params"]
            prob = params["lottery_prob"]
            # 66 agents: the grid of 3 probabilities (slowest) x 11 scores, cycled.
            np.testing.assert_array_equal(prob[...], np.repeat([0.7, 0.8, 0.9], 11)[np.arange(66) % 33])
            np.testing.assert_array_equal(params["score"][...], np.tile(np.arange(11.0), 6))
            self.assertEqual(prob.attrs["lottery"], "win10_sure3")
            np.testing.assert_array_equal(prob.attrs["lottery_amounts"], [10.0, 3.0])
            # alpha is their image under the convention: p = (1 - e^{-3 alpha}) / (1 - e^{-10 alpha}).
            alpha = params["alpha"][...]
            np.testing.assert_allclose(np.expm1(-3 * alpha) / np.expm1(-10 * alpha), prob[...], rtol=1e-12)
            np.testing.assert_allclose(params["theta"][...], params["score"][...] * 1e-8, rtol=1e-15)
            # The paired populations were specified by their source; the leader by alpha itself.
            for name in ("adaptive_followers", "rational", "leader"):
                self.assertNotIn("lottery_prob", f["populations"][name]["params"])
                self.assertNotIn("score", f["populations"][name]["params"])

    def wealth_outcome(self, name):
        """Per-agent mean over paths of X_T / X_0 - 1, from the file's wealth rows."""
        with h5py.File(self.run_file, "r") as f:
            w = f["populations"][name]["wealth"][...]  # (step, path, agent)
        return (w[-1] / w[0] - 1.0).mean(axis=0)

    def test_paired_differences_and_their_table_are_recomputed_from_the_file(self):
        adaptive = by_name(self.group, "adaptive_followers")
        self.assertEqual(adaptive["investors"], "plan_followers")
        paired = adaptive["paired"]
        self.assertEqual(paired["source"], "plan_followers")
        self.assertEqual(paired["agents"], 66)
        diff = self.wealth_outcome("adaptive_followers") - self.wealth_outcome("plan_followers")
        got = next(d for d in paired["differences"] if d["measure"] == "cumulative_return")
        lo, hi = t_interval(diff)
        self.assertAlmostEqual(got["mean"], diff.mean(), delta=1e-12)
        self.assertAlmostEqual(got["ci_low"], lo, delta=1e-10)
        self.assertAlmostEqual(got["ci_high"], hi, delta=1e-10)
        self.assertEqual(got["n"], 66)
        # The same differences by score, and their trend.
        with h5py.File(self.run_file, "r") as f:
            score = f["populations/plan_followers/params/theta"][...] / 1e-8
        table = paired["by_type"][0]
        self.assertEqual(table["param"], "score")
        np.testing.assert_allclose(table["levels"], np.arange(11), atol=1e-9)
        self.assertEqual(table["agents"], [6] * 11)
        m = measure(table, "cumulative_return")
        for level, cell in zip(table["levels"], m["levels"]):
            self.assertAlmostEqual(cell["mean"], diff[np.isclose(score, level)].mean(), delta=1e-12)
        slope, lo, hi = hc1_slope(score, diff)
        self.assertAlmostEqual(m["trend"]["slope"], slope, delta=1e-12)
        self.assertAlmostEqual(m["trend"]["ci_low"], lo, delta=1e-10)
        self.assertAlmostEqual(m["trend"]["ci_high"], hi, delta=1e-10)

    def test_the_answer(self):
        plan = by_name(self.group, "plan_followers")
        table = plan["by_type"][0]
        self.assertEqual(table["param"], "score")
        h = measure(table, "h_simulated")
        h_theory = measure(table, "h_theory")
        # Score 0 is a rational investor: no herding distance.
        self.assertAlmostEqual(h["levels"][0]["mean"], 0.0, delta=1e-12)
        # Higher scores herd more: a positive trend whose interval excludes 0...
        self.assertGreater(h["trend"]["ci_low"], 0.0)
        self.assertLess(h["trend"]["p"], 0.05)
        # ... exactly as theory says for the plan (the plan is the theory) ...
        self.assertAlmostEqual(h["trend"]["slope"], h_theory["trend"]["slope"], delta=1e-9)
        # ... and the adaptive followers herd at a rate whose interval covers theory's.
        adaptive = by_name(self.group, "adaptive_followers")
        h_adaptive = measure(adaptive["by_type"][0], "h_simulated")["trend"]
        self.assertLess(h_adaptive["ci_low"], h_theory["trend"]["slope"])
        self.assertGreater(h_adaptive["ci_high"], h_theory["trend"]["slope"])
        # Their opinion w (the weight on their own Merton plan) falls as the score rises, as theory says.
        w, w_theory = measure(table, "w_simulated"), measure(table, "w_theory")
        self.assertLess(w["trend"]["ci_high"], 0.0)
        self.assertAlmostEqual(w["levels"][0]["mean"], 1.0, delta=1e-12)  # score 0: all weight on Merton
        for got, want in zip(w["levels"], w_theory["levels"]):
            self.assertAlmostEqual(got["mean"], want["mean"], delta=1e-9)
        # Plan agents make no decision error; the adaptive rule strays from theory more as the score rises.
        self.assertEqual(measure(table, "decision_mse_pp")["trend"]["slope"], 0.0)
        mse = measure(adaptive["paired"]["by_type"][0], "decision_mse_pp")
        self.assertGreater(mse["trend"]["ci_low"], 0.0)
        self.assertAlmostEqual(mse["levels"][0]["mean"], 0.0, delta=1e-20)  # score 0 adapts to nothing

    def test_the_rational_counterfactual_is_the_simulated_merton_twin(self):
        # compare computes each herd population's counterfactual (the same investors with theta = 0 on the
        # same paths) from theory; the scenario also simulates it as the paired merton population.
        rational = by_name(self.group, "rational")
        self.assertNotIn("counterfactual", rational)  # a merton population is its own counterfactual
        for name in ("plan_followers", "adaptive_followers"):
            cf = by_name(self.group, name)["counterfactual"]
            self.assertAlmostEqual(cf["lsv"]["mean"], rational["lsv"]["mean"], delta=1e-12)
            for model in ("cssd", "csad"):
                for got, want in zip(cf[model]["coefficients"], rational[model]["coefficients"]):
                    self.assertAlmostEqual(got["estimate"], want["estimate"], delta=1e-9)
            lsv = next(a for a in cf["attributed"] if a["statistic"] == "lsv_mean_h")
            population = by_name(self.group, name)["lsv"]["mean"]
            self.assertAlmostEqual(lsv["difference"], population - rational["lsv"]["mean"], delta=1e-12)
            # Rational investors trade in step too: LSV alone would call that herding; the verdict speaks of
            # the difference.
            self.assertIn("theta = 0", lsv["verdict"])
            self.assertIn("correlated trading", lsv["verdict"])

    def test_lsv_speaks_of_correlated_trading(self):
        # Rational investors trade in step (H = 0.437): LSV measures correlated trading, not herding.
        verdict = by_name(self.group, "rational")["lsv"]["verdict"]
        self.assertTrue(verdict.startswith("significant correlated trading (mean H = "), verdict)
        self.assertNotIn("herding", verdict)

    def test_no_counterfactual_and_where_it_cannot_be_computed(self):
        res = support.herdsim("compare", self.run_file, "--no-counterfactual", "--format", "json", "-q",
                              "--no-sidecar")
        self.assertEqual(res.returncode, 0, res.stderr)
        run = json.loads(res.stdout)["runs"][0]
        self.assertNotIn("counterfactual", by_name(run, "plan_followers"))
        self.assertEqual(by_name(run, "plan_followers")["lsv"], by_name(self.group, "plan_followers")["lsv"])
        # Recorded every other step: compare succeeds and a note says why there is no counterfactual.
        sparse = os.path.join(self.tmp.name, "every2.h5")
        res = support.herdsim("run", os.path.join(support.SCENARIOS, "score_herding.toml"), "-o", sparse, "-q",
                              "--set", "record.every=2", "--set", "run.paths=20")
        self.assertEqual(res.returncode, 0, res.stderr)
        res = support.herdsim("compare", sparse, "--format", "json", "-q", "--no-sidecar")
        self.assertEqual(res.returncode, 0, res.stderr)
        plan = by_name(json.loads(res.stdout)["runs"][0], "plan_followers")
        self.assertNotIn("counterfactual", plan)
        self.assertIn("rational counterfactual not computed: it settles every step's wealth, so it needs "
                      "record.every = 1", plan["notes"])

    def test_markdown_says_the_same(self):
        res = support.herdsim("compare", self.run_file, "--by", "score", "-q", "--no-sidecar")
        self.assertEqual(res.returncode, 0, res.stderr)
        md = res.stdout
        self.assertIn("Per-agent measures by score", md)
        self.assertIn("Paired with `plan_followers` (the same investors, agent for agent; 66 agents compared)", md)
        self.assertIn("| h_simulated |", md)


if __name__ == "__main__":
    support.main(scenarios=True)
