#!/usr/bin/env python3
"""`herdsim compare --at T1,T2`: each agent's opinion w at chosen times, as per-agent measures of the by-type
and paired tables (issue 15, "w(t) at chosen times").

A real `herdsim run` of scenarios/score_herding.toml (plan and adaptive followers of a Merton leader, paired
with rational Merton twins) writes real HDF5; the test recomputes each agent's w at the decision step nearest
each time from the file with h5py/numpy (w_i = sum_p (Pbar - P)(Pbar - P_alpha) / sum_p (Pbar - P_alpha)^2,
docs/analysis.md; P_alpha read off the paired Merton twins), then the by-score cells and the paired
differences, and checks that bad --at values exit 2 naming the option.

Usage: test_compare_at.py PATH_TO_HERDSIM SCENARIO_DIR
"""
import json
import os
import tempfile
import unittest

import h5py
import numpy as np

import support

TIMES = [2.5, 7.0, 10.0]  # 2.5 lies halfway between steps 2 and 3: the earlier is taken


def by_name(run, name):
    return next(p for p in run["populations"] if p["name"] == name)


def measure(measures, name):
    return next(m for m in measures if m["measure"] == name)


class CompareAt(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.run_file = os.path.join(cls.tmp.name, "score_herding.h5")
        res = support.herdsim("run", os.path.join(support.SCENARIOS, "score_herding.toml"), "-o", cls.run_file,
                              "-q")
        assert res.returncode == 0, res.stderr
        res = support.herdsim("compare", cls.run_file, "--by", "score", "--at", "2.5,7,10", "--format", "json",
                              "-q", "--no-sidecar")
        assert res.returncode == 0, res.stderr
        cls.doc = json.loads(res.stdout)
        cls.group = cls.doc["runs"][0]
        with h5py.File(cls.run_file, "r") as f:
            pops = f["populations"]
            cls.steps = pops["plan_followers/decision_step"][...]
            cls.dt = float(f["market/t"][1] - f["market/t"][0])
            cls.score = pops["plan_followers/theta"][...] / 1e-8
            cls.leader = pops["leader/amount"][:, :, 0]  # (decision, path)
            cls.leader_theory = pops["leader/theory/amount"][:, 0]
            cls.merton = pops["rational/amount"][...]  # the same investors with theta = 0: P_alpha
            cls.merton_theory = pops["rational/theory/amount"][...]
            cls.amount = {n: pops[n]["amount"][...] for n in ("plan_followers", "adaptive_followers")}
            cls.plan = {n: pops[n]["theory/amount"][...] for n in ("plan_followers", "adaptive_followers")}

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def row(self, t):
        return int(np.argmin(np.abs(self.steps * self.dt - t)))  # argmin takes the first of a tie

    def w_at(self, name, t):
        """Per-agent (simulated, theory) w at the decision row nearest t, from the file alone."""
        d = self.row(t)
        ref, own = self.leader[d][:, None], self.merton[d]  # (path, 1), (path, agent)
        num = ((ref - self.amount[name][d]) * (ref - own)).sum(axis=0)
        den = ((ref - own) ** 2).sum(axis=0)
        ref_t, own_t = self.leader_theory[d], self.merton_theory[d]
        with np.errstate(divide="ignore", invalid="ignore"):
            sim = np.where(den > 0, num / den, np.nan)
            theory = np.where((ref_t - own_t) ** 2 > 0, (ref_t - self.plan[name][d]) / (ref_t - own_t), np.nan)
        return sim, theory

    def test_the_pairing_the_recomputation_relies_on(self):
        with h5py.File(self.run_file, "r") as f:
            pops = f["populations"]
            for param in ("alpha", "wealth0"):
                np.testing.assert_array_equal(pops["rational/params"][param][...],
                                              pops["plan_followers/params"][param][...])
            alpha = pops["rational/params/alpha"][...]
        # The rational twins play their own Merton plans on every path: their amounts are P_alpha.
        np.testing.assert_array_equal(self.merton, np.broadcast_to(self.merton_theory[:, None, :], self.merton.shape))
        # Each score level differs in P_alpha across the three lottery probabilities (alpha drives it).
        self.assertEqual(len(np.unique(alpha)), 3)

    def test_the_chosen_steps_are_reported(self):
        for name in ("plan_followers", "adaptive_followers"):
            at = by_name(self.group, name)["opinion"]["at"]
            self.assertEqual([a["requested_t"] for a in at], TIMES)
            self.assertEqual([a["step"] for a in at], [2, 7, 9])  # 10 = the horizon: the last decision (9)
            self.assertEqual([a["t"] for a in at], [2.0, 7.0, 9.0])
            self.assertEqual(at[0]["measures"], ["w_simulated_at_t=2.5", "w_theory_at_t=2.5"])
        self.assertEqual(self.doc["options"]["at"], TIMES)

    def test_by_score_cells_are_recomputed_from_the_file(self):
        for name in ("plan_followers", "adaptive_followers"):
            table = by_name(self.group, name)["by_type"][0]
            self.assertEqual(table["param"], "score")
            for t in TIMES:
                for kind, values in zip(("w_simulated", "w_theory"), self.w_at(name, t)):
                    m = measure(table["measures"], f"{kind}_at_t={t:g}")
                    for level, cell in zip(table["levels"], m["levels"]):
                        want = values[np.isclose(self.score, level)]
                        self.assertAlmostEqual(cell["mean"], want.mean(), delta=1e-12)
                        self.assertEqual(cell["n"], 6)
        # The plan is the theory: its w at each time is theory's, and score 0 puts all weight on Merton.
        table = by_name(self.group, "plan_followers")["by_type"][0]
        sim = measure(table["measures"], "w_simulated_at_t=7")["levels"]
        theory = measure(table["measures"], "w_theory_at_t=7")["levels"]
        for a, b in zip(sim, theory):
            self.assertAlmostEqual(a["mean"], b["mean"], delta=1e-9)
        self.assertAlmostEqual(sim[0]["mean"], 1.0, delta=1e-12)
        # w depends on time: w(2) and w(7) differ for the herding agents.
        early = measure(table["measures"], "w_theory_at_t=2.5")["levels"]
        self.assertGreater(abs(early[10]["mean"] - theory[10]["mean"]), 1e-3)

    def test_paired_differences_are_recomputed_from_the_file(self):
        paired = by_name(self.group, "adaptive_followers")["paired"]
        self.assertEqual(paired["source"], "plan_followers")
        for t in TIMES:
            sim_a, _ = self.w_at("adaptive_followers", t)
            sim_p, _ = self.w_at("plan_followers", t)
            diff = sim_a - sim_p
            got = measure(paired["differences"], f"w_simulated_at_t={t:g}")
            ok = np.isfinite(diff)
            self.assertEqual(got["n"], int(ok.sum()))
            self.assertAlmostEqual(got["mean"], diff[ok].mean(), delta=1e-12)

    def test_markdown_names_the_step(self):
        res = support.herdsim("compare", self.run_file, "--by", "score", "--at", "2.5", "-q", "--no-sidecar")
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertIn("opinion w at t = 2.5 years (`w_simulated_at_t=2.5`", res.stdout)
        self.assertIn("decision step 2, t = 2 years", res.stdout)
        self.assertIn("| w_simulated_at_t=2.5 |", res.stdout)

    def test_bad_times_exit_2_naming_the_option(self):
        out = os.path.join(self.tmp.name, "bad.json")
        for bad in ("11", "-1", "abc", "1,nan"):
            res = support.herdsim("compare", self.run_file, f"--at={bad}", "-o", out, "-q", "--no-sidecar")
            self.assertEqual(res.returncode, 2, (bad, res.stderr))
            self.assertIn("--at", res.stderr)
            self.assertLessEqual(res.stderr.count("\n"), 2, res.stderr)
            self.assertFalse(os.path.exists(out), bad)
        res = support.herdsim("compare", self.run_file, "--at", "11", "-q", "--no-sidecar")
        self.assertIn("outside the horizon", res.stderr)
        self.assertIn("[0, 10] years", res.stderr)


if __name__ == "__main__":
    support.main(scenarios=True)
