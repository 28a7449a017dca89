#!/usr/bin/env python3
"""The small things a newcomer trips on (issue 15, item 7), each checked on the real executable: README
examples that run as written, counts in words ("1 agent", "10 steps of 1 year"), `validate` on a
directory, `--threads -1`, a [run] value hidden by a sweep, `report --no-sidecar` and a failed report
that leaves no output folder.

Usage: test_newcomer.py PATH_TO_HERDSIM REPO_ROOT
"""
import os
import re
import shlex
import sys

import support

ROOT = None  # the repository root: the second argument

ONE_AGENT = """
[run]
seed = 1
paths = 2
horizon = 10
steps_per_year = 1

[[population]]
name = "advisor"
kind = "merton"
alpha = 0.2
"""


def run(*args, cwd=None):
    return support.herdsim(*args, timeout=300, cwd=cwd)


class Newcomer(support.TempDirTest):

    def test_readme_theory_examples_run_as_written(self):
        with open(os.path.join(ROOT, "README.md")) as fh:
            readme = fh.read()
        commands = re.findall(r"^\s*(herdsim theory [^\n#]*)", readme, flags=re.M)
        self.assertGreaterEqual(len(commands), 4)
        for line in commands:
            args = shlex.split(line)[1:]
            if "--help" in args:
                continue
            with self.subTest(command=line):
                res = run(*args, cwd=ROOT)  # file names in the examples are relative to the repository
                self.assertEqual(res.returncode, 0, res.stderr)

    def test_counts_are_words(self):
        scenario = self.scenario(ONE_AGENT, "one.toml")
        out = os.path.join(self.dir, "one.h5")
        res = run("validate", scenario)
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertIn("(1 run, 1 agent)", res.stdout)
        res = run("run", scenario, "-o", out)
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertIn(": 1 run,", res.stdout)
        self.assertRegex(res.stderr, r"advisor +1 agent  final wealth")
        self.assertNotIn("1 agents", res.stderr + res.stdout)
        res = run("compare", out, "--no-sidecar", "-q")
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertIn("10 steps of 1 year, 2 paths,", res.stdout)
        self.assertIn("(merton; 1 agent, 1 analysed)", res.stdout)
        self.assertNotIn("1 years", res.stdout)

    def test_validate_on_a_directory_says_so(self):
        res = run("validate", self.dir)
        self.assertEqual(res.returncode, 2)
        self.assertIn("is a directory, not a scenario file", res.stderr)
        self.assertNotIn("population", res.stderr)

    def test_negative_threads_get_a_plain_message(self):
        res = run("run", self.scenario(ONE_AGENT, "one.toml"), "--threads", "-1", "-o", os.path.join(self.dir, "x.h5"))
        self.assertNotEqual(res.returncode, 0)
        self.assertIn("--threads: must be 0 (all cores) or a number of threads from 1 to 4096, got -1", res.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.dir, "x.h5")))

    def test_a_run_value_hidden_by_a_sweep_is_validated(self):
        scenario = self.scenario(ONE_AGENT.replace("paths = 2", "paths = -5") +
                                 '\n[sweep]\n"run.paths" = [2, 3]\n', "hidden.toml")
        res = run("validate", scenario)
        self.assertEqual(res.returncode, 2)
        self.assertIn("hidden.toml:4:9: run.paths: must be >= 1, got -5", res.stderr)
        self.assertIn("[sweep] replaces it", res.stderr)
        # The same file with a valid value written there validates, sweep and all.
        fine = self.scenario(ONE_AGENT + '\n[sweep]\n"run.paths" = [2, 3]\n', "fine.toml")
        res = run("validate", fine)
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertIn("(2 runs, 1 agent)", res.stdout)

    def test_report_without_side_file_and_no_folder_left_by_a_failure(self):
        scenario = self.scenario(ONE_AGENT, "one.toml")
        out = os.path.join(self.dir, "one.h5")
        self.assertEqual(run("run", scenario, "-o", out, "-q").returncode, 0)
        report = os.path.join(self.dir, "figures")
        res = run("report", out, "-o", report, "--no-sidecar")
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertTrue(os.path.isfile(os.path.join(report, "index.html")))
        self.assertFalse(os.path.exists(out[:-3] + ".analysis.json"), "--no-sidecar wrote the side file")
        # A report that fails (not a run file) leaves no folder behind, staged or final.
        bad = self.scenario("not HDF5", "bad.h5")
        failed = os.path.join(self.dir, "bad_report")
        res = run("report", bad, "-o", failed, "--no-sidecar")
        self.assertNotEqual(res.returncode, 0)
        self.assertEqual(sorted(n for n in os.listdir(self.dir) if n.startswith("bad_report")), [])


if __name__ == "__main__":
    ROOT = os.path.abspath(sys.argv.pop(2))
    support.main()
