#!/usr/bin/env python3
"""End-to-end tests of the `herdsim theory` command: formats, golden values, and bad input.

Usage: test_cli.py PATH_TO_HERDSIM GOLDEN_DIR
"""
import csv
import io
import json
import math
import os
import subprocess
import sys
import tempfile
import unittest

HERDSIM = None
GOLDEN = None


def run(*args):
    return subprocess.run([HERDSIM, *args], capture_output=True, text=True, timeout=120)


def golden(name):
    with open(os.path.join(GOLDEN, name)) as f:
        return list(csv.DictReader(f))


def rel(a, b):
    return abs(a - b) / abs(b) if b != 0 else abs(a)


class TheoryOutput(unittest.TestCase):
    def test_default_is_the_papers_worked_example_in_json(self):
        res = run("theory", "--format", "json")
        self.assertEqual(res.returncode, 0, res.stderr)
        doc = json.loads(res.stdout)
        self.assertLess(rel(doc["eta"], 9.99124e-6), 1e-5)
        self.assertEqual(len(doc["amount"]), 11)
        self.assertLess(rel(doc["amount"][0], 1.34230), 1e-5)
        self.assertLess(rel(doc["amount"][10], 2.54898), 1e-5)
        self.assertLess(rel(doc["opinion"][0], 0.83117), 1e-5)

    def test_absolute_csv_matches_golden(self):
        rows = [r for r in golden("absolute_herd_p3.csv")
                if r["alpha_label"] == "P0.60_w10s3" and r["theta_score"] == "7"]
        res = run("theory", "--problem", "absolute", "--lottery-prob", "0.6", "--theta-score", "7", "--format", "csv")
        self.assertEqual(res.returncode, 0, res.stderr)
        out = list(csv.DictReader(io.StringIO(res.stdout)))
        for col in ("t", "amount", "own_merton", "leader_merton", "opinion"):
            self.assertIn(col, out[0])
        self.assertEqual([float(r["t"]) for r in out], list(range(11)))
        for got, want in zip(out, rows):
            self.assertLess(rel(float(got["amount"]), float(want["P_star"])), 1e-10)
            self.assertLess(rel(float(got["opinion"]), float(want["opinion_w"])), 1e-10)

    def test_annual_csv_has_steps_0_to_T_minus_1_and_matches_golden(self):
        rows = [r for r in golden("absolute_herd_discrete.csv")
                if r["alpha_label"] == "P0.90_w10s3" and r["theta_score"] == "10"]
        res = run("theory", "--time", "annual", "--format", "csv")
        self.assertEqual(res.returncode, 0, res.stderr)
        out = list(csv.DictReader(io.StringIO(res.stdout)))
        self.assertEqual([int(float(r["t"])) for r in out], list(range(10)))
        for got, want in zip(out, rows):
            self.assertLess(rel(float(got["amount"]), float(want["P_star_k"])), 1e-10)

    def test_win20_convention_halves_alpha(self):
        a = json.loads(run("theory", "--problem", "merton", "--lottery-prob", "0.7", "--format", "json").stdout)
        b = json.loads(run("theory", "--problem", "merton", "--lottery-prob", "0.7", "--lottery-win", "20",
                           "--lottery-sure", "6", "--format", "json").stdout)
        self.assertLess(rel(b["alpha"], a["alpha"] / 2), 1e-12)

    def test_merton_csv_matches_golden(self):
        rows = [r for r in golden("merton.csv") if r["alpha_label"] == "leader"]
        res = run("theory", "--problem", "merton", "--alpha", "0.2", "--format", "csv")
        self.assertEqual(res.returncode, 0, res.stderr)
        out = list(csv.DictReader(io.StringIO(res.stdout)))
        for got, want in zip(out, rows):
            self.assertLess(rel(float(got["amount"]), float(want["merton_amount"])), 1e-12)

    def test_relative_csv_matches_golden(self):
        rows = [r for r in golden("relative_herd.csv")
                if r["alpha_label"] == "P0.90_w10s3" and r["theta"] == "0.0001" and r["bc"] == "natural"]
        res = run("theory", "--problem", "relative", "--lottery-prob", "0.9", "--theta", "1e-4", "--bc", "natural",
                  "--format", "csv")
        self.assertEqual(res.returncode, 0, res.stderr)
        out = list(csv.DictReader(io.StringIO(res.stdout)))
        self.assertEqual(len(out), 11)
        for got, want in zip(out, rows):
            self.assertLess(rel(float(got["amount"]), float(want["P_star"])), 1e-5)

    def test_mutual_game_from_agents_file_matches_golden(self):
        rows = [r for r in golden("mutual_influence_reconstructed.csv") if r["example"] == "unilateral_limit"]
        agents = sorted({int(r["agent"]) for r in rows})
        with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False) as f:
            f.write("alpha,x0," + ",".join(f"theta_{j}" for j in agents) + "\n")
            for i in agents:
                r = next(r for r in rows if int(r["agent"]) == i)
                f.write(f"{r['alpha']},{r['x0']}," + ",".join(r["theta_row"].split()) + "\n")
            path = f.name
        try:
            res = run("theory", "--problem", "mutual", "--agents", path, "--format", "csv")
            self.assertEqual(res.returncode, 0, res.stderr)
            out = list(csv.DictReader(io.StringIO(res.stdout)))
            for want in rows:
                got = next(g for g in out if int(float(g["agent"])) == int(want["agent"])
                           and float(g["t"]) == float(want["t"]))
                self.assertLess(rel(float(got["amount"]), float(want["P_star"])), 1e-9)
            doc = json.loads(run("theory", "--problem", "mutual", "--agents", path, "--format", "json").stdout)
            self.assertEqual(len(doc["eta"]), len(agents))
            self.assertLessEqual(doc["residual"], 1e-10)
        finally:
            os.unlink(path)

    def test_relative_mutual_game_with_a_zero_leader_row_matches_problem_relative(self):
        with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False) as f:
            f.write("alpha,x0,theta_0,theta_1\n0.2,10,0,0\n0.766119,10,1e-4,0\n")
            path = f.name
        try:
            for bc in ("pinned", "natural"):
                res = run("theory", "--problem", "mutual", "--herd", "relative", "--bc", bc, "--agents", path,
                          "--format", "json")
                self.assertEqual(res.returncode, 0, res.stderr)
                doc = json.loads(res.stdout)
                self.assertLessEqual(doc["residual"], 1e-10)
                p1 = json.loads(run("theory", "--problem", "relative", "--alpha", "0.766119", "--theta", "1e-4",
                                    "--bc", bc, "--format", "json").stdout)
                follower = [a for a, i in zip(doc["amount"], doc["agent"]) if i == 1]
                gap = abs(p1["own_merton"][0] - p1["leader_merton"][0])
                for got, want in zip(follower, p1["amount"]):
                    self.assertLess(abs(got - want), 1e-5 * gap)
            res = run("theory", "--problem", "relative", "--herd", "relative")
            self.assertEqual(res.returncode, 2)
            self.assertIn("--herd is only used with --problem mutual", res.stderr)
        finally:
            os.unlink(path)

    def test_table_is_readable(self):
        res = run("theory")
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertIn("eta", res.stdout)
        self.assertIn("amount", res.stdout)


class BadInput(unittest.TestCase):
    cases = [
        (["--alpha", "-1"], "--alpha", "-1"),
        (["--alpha", "0"], "--alpha", "0"),
        (["--sigma", "0"], "--sigma", "0"),
        (["--horizon", "-3"], "--horizon", "-3"),
        (["--x0", "0"], "--x0", "0"),
        (["--leader-alpha", "-0.2"], "--leader-alpha", "-0.2"),
        (["--theta", "-1e-8"], "--theta", "-1e-08"),
        (["--theta-score", "-2"], "--theta-score", "-2"),
        (["--lottery-prob", "0.2"], "--lottery-prob", "0.2"),
        (["--lottery-prob", "1.5"], "--lottery-prob", "1.5"),
        (["--alpha", "abc"], "--alpha", "abc"),
        (["--bogus", "3"], "--bogus", ""),
        (["--format", "xml"], "--format", "xml"),
        (["--problem", "mutual"], "--agents", ""),
    ]

    def test_each_bad_input_names_the_flag_and_value_and_exits_nonzero(self):
        for args, flag, value in self.cases:
            with self.subTest(args=args):
                res = run("theory", *args)
                self.assertNotEqual(res.returncode, 0)
                first = res.stderr.strip().splitlines()[0]
                self.assertIn(flag, first)
                self.assertIn(value, first)
                self.assertEqual(res.stdout, "")

    def test_several_problems_are_all_reported(self):
        res = run("theory", "--sigma", "-1", "--x0", "0")
        self.assertNotEqual(res.returncode, 0)
        self.assertIn("--sigma", res.stderr)
        self.assertIn("--x0", res.stderr)

    def test_bad_agents_file_lists_every_problem_with_lines(self):
        with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False) as f:
            f.write("alpha,x0,theta_0,theta_1\n-1,10,0,1e-8\n0.3,0,1e-8,0\n")
            path = f.name
        try:
            res = run("theory", "--problem", "mutual", "--agents", path)
            self.assertNotEqual(res.returncode, 0)
            self.assertIn("line 2", res.stderr)
            self.assertIn("alpha", res.stderr)
            self.assertIn("line 3", res.stderr)
            self.assertIn("x0", res.stderr)
        finally:
            os.unlink(path)


if __name__ == "__main__":
    HERDSIM, GOLDEN = sys.argv[1], sys.argv[2]
    unittest.main(argv=sys.argv[:1], verbosity=1)
