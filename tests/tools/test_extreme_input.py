#!/usr/bin/env python3
"""End-to-end reliability of herdsim under extreme input (issue 12, items 1, 2, 3 and 7): no exception
escapes any subcommand (bad input exits 2, a failed computation 1, each with one clear message), sizes
are checked before they are allocated, solver time does not grow with a parameter's magnitude, set-up
answers Ctrl-C, and non-finite results never pass silently.

Usage: test_extreme_input.py PATH_TO_HERDSIM SCENARIO_DIR
"""
import os
import signal
import time

import h5py
import numpy as np

import support
from support import herdsim

SMALL = """
[run]
seed = 5
paths = 4
horizon = 2
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
count = 6
alpha = { lottery_prob = [0.5, 0.9] }
theta = { score = [1, 5, 10] }
wealth = 10.0

[[population]]
name = "noise"
kind = "noise"
count = 10
proportion = 0.5
wealth = 10.0
"""


class ExtremeInput(support.TempDirTest):
    def assert_clean_failure(self, res, code, *needles):
        """Exit `code`, no escaped exception, no crash, and the message says what is wrong."""
        self.assertEqual(res.returncode, code, f"stdout: {res.stdout}\nstderr: {res.stderr}")
        for bad in ("terminate called", "what():", "Segmentation", "Aborted", "Traceback"):
            self.assertNotIn(bad, res.stderr)
        for needle in needles:
            self.assertIn(needle, res.stderr)

    # --- 1. No exception escapes --------------------------------------------------------------------------

    def test_theory_extreme_alphas_are_rejected_with_the_reason(self):
        # Boost's TOMS 748 "do not bracket the root" used to abort (`terminate called`, exit 134).
        for args, flag in ((["--alpha", "1e300"], "--alpha"), (["--leader-alpha", "1e-300"], "--leader-alpha"),
                           (["--time", "annual", "--alpha", "1e300"], "--alpha"),
                           (["--time", "annual", "--leader-alpha", "1e-300"], "--leader-alpha")):
            with self.subTest(args=args):
                self.assert_clean_failure(herdsim("theory", *args), 2, flag, "CARA alpha")

    def test_scenario_extreme_alphas_are_rejected_by_validate_and_run(self):
        quickstart = os.path.join(support.SCENARIOS, "quickstart.toml")
        for override, key in (("population[1].alpha=1e300", "population[1].alpha"),
                              ("population[0].alpha=1e-300", "population[0].alpha"),
                              ("population.followers.alpha={lottery_prob=0.30000000000000004}",
                               "maps to CARA alpha")):
            with self.subTest(override=override):
                for command in (["validate"], ["run", "-q", "-o", self.path("q.h5")]):
                    res = herdsim(*command, quickstart, "--set", override)
                    self.assert_clean_failure(res, 2, key, "CARA alpha")
                self.assertFalse(os.path.exists(self.path("q.h5")))

    def test_solver_failure_names_the_population_and_the_agent(self):
        # An untruncated distribution is not checked value by value: an agent drawn far outside the
        # model's range fails at set-up with a SolverError naming its population and parameters (exit 1).
        text = SMALL.replace('alpha = { lottery_prob = [0.5, 0.9] }',
                             'alpha = { dist = "lognormal", mu = 700, sigma = 0.1 }')
        path = self.scenario(text)
        self.assertEqual(herdsim("validate", path).returncode, 0)
        res = herdsim("run", "-q", path, "-o", self.path("s.h5"))
        self.assert_clean_failure(res, 1, "population 'followers'", "alpha=", "leader alpha=", "theta=")
        self.assertFalse(os.path.exists(self.path("s.h5")))
        self.assertFalse(os.path.exists(self.path("s.h5.partial")))

    def test_set_population_index_out_of_any_range(self):
        quickstart = os.path.join(support.SCENARIOS, "quickstart.toml")
        for index in ("99999999999999999999", "18446744073709551616", "4", "x", "-1"):
            with self.subTest(index=index):
                for command in ("validate", "run"):
                    res = herdsim(command, quickstart, "--set", f"population[{index}].alpha=1",
                                  *(["-o", self.path("q.h5")] if command == "run" else []))
                    self.assert_clean_failure(res, 2, f"population[{index}]")

    def test_every_subcommand_fails_cleanly_on_garbage(self):
        garbage = self.path("garbage.h5")
        with open(garbage, "wb") as f:
            f.write(b"\x89HDF\r\n\x1a\n" + os.urandom(2000))
        bad_toml = self.scenario("[run]\npaths = 1e400\n", "bad.toml")
        cases = [
            ["run", bad_toml], ["validate", bad_toml], ["theory", "--horizon", "1e308"],
            ["theory", "--sigma", "1e-300"], ["theory", "--problem", "mutual", "--agents", garbage],
            ["compare", garbage, "--no-sidecar"], ["export", garbage, "--population", "x"],
            ["report", garbage, "-o", self.path("r")],
            ["dataset", "-o", self.path("d"), "--budgets", "1e308", "--samples", "1"],  # null in the JSON
        ]
        for args in cases:
            with self.subTest(args=args):
                res = herdsim(*args)
                self.assertIn(res.returncode, (1, 2), res.stderr)
                self.assert_clean_failure(res, res.returncode)
                self.assertTrue(res.stderr.strip(), "no message")

    # --- 2. Sizes are checked before they are allocated ------------------------------------------------------

    def test_step_count_overflow(self):
        # 10 * 214748365 = 2^31 + 2: used to exit 0 with a header and no rows.
        res = herdsim("theory", "--time", "annual", "--steps-per-year", "214748365")
        self.assert_clean_failure(res, 2, "--steps-per-year", "exceeds the limit")
        path = self.scenario(SMALL.replace("horizon = 2", "horizon = 1000").replace(
            "steps_per_year = 1", "steps_per_year = 2147483647"))
        self.assert_clean_failure(herdsim("validate", path), 2, "run.horizon", "exceeds the limit")

    def test_absurd_thread_count(self):
        # --threads 1073741824 used to segfault inside TBB.
        path = self.scenario(SMALL)
        res = herdsim("run", "-q", path, "-o", self.path("s.h5"), "--threads", "1073741824")
        self.assert_clean_failure(res, 2, "--threads")
        self.assertFalse(os.path.exists(self.path("s.h5")))

    def test_memory_estimate_refuses_before_allocating(self):
        huge = self.scenario(SMALL.replace("paths = 4", "paths = 2000000000").replace("count = 10", "count = 2000000000"))
        start = time.monotonic()
        res = herdsim("run", "-q", huge, "-o", self.path("h.h5"))
        self.assert_clean_failure(res, 2, "needs about", "--memory-limit")
        self.assertLess(time.monotonic() - start, 30)
        self.assertFalse(os.path.exists(self.path("h.h5")))
        # A limit below the estimate refuses a small run too; the option raises it.
        small = self.scenario(SMALL, "small.toml")
        res = herdsim("run", "-q", small, "-o", self.path("m.h5"), "--memory-limit", "1e-9")
        self.assert_clean_failure(res, 2, "needs about", "allowed")
        res = herdsim("run", "-q", small, "-o", self.path("m.h5"), "--memory-limit", "1")
        self.assertEqual(res.returncode, 0, res.stderr)
        # export and dataset estimate too.
        res = herdsim("export", self.path("m.h5"), "--population", "noise", "-o", self.path("m.csv"),
                      "--memory-limit", "1e-7")
        self.assert_clean_failure(res, 2, "this export needs about")
        self.assertFalse(os.path.exists(self.path("m.csv")))
        res = herdsim("dataset", "-o", self.path("ds"), "--samples", "2000000000")
        self.assert_clean_failure(res, 2, "this dataset needs about")
        self.assertFalse(os.path.exists(self.path("ds")))

    # --- 3. No hangs ------------------------------------------------------------------------------------

    def test_solver_time_does_not_grow_with_magnitude(self):
        # --r 7.25e7 used to spin for minutes (the plan's quadrature grew with |r| T).
        for args in (["--r", "7.25e7"], ["--r", "-7.25e7"], ["--mu", "1e300"], ["--rho", "1e12"],
                     ["--rho", "-1e300"], ["--horizon", "1e9"]):
            with self.subTest(args=args):
                start = time.monotonic()
                res = herdsim("theory", *args, timeout=60)
                self.assertLess(time.monotonic() - start, 10)
                self.assert_clean_failure(res, 2)
        path = self.scenario(SMALL.replace("[run]", "[market]\nr = 7.25e7\n\n[run]"))
        self.assert_clean_failure(herdsim("validate", path, timeout=60), 2, "market.r")

    def test_set_up_answers_ctrl_c_and_its_time_is_reported(self):
        # Thousands of distinct relative-herding plans: seconds of set-up before the first step.
        alphas = ", ".join(f"{0.1 + 1e-5 * i:.7f}" for i in range(40000))
        text = SMALL.replace('alpha = { lottery_prob = [0.5, 0.9] }', f"alpha = [{alphas}]").replace(
            "count = 6", "count = 40000").replace('herd = "absolute"', 'herd = "relative"')
        path = self.scenario(text)
        out = self.path("slow.h5")
        proc = support.start("run", path, "-o", out)
        time.sleep(1.5)
        self.assertIsNone(proc.poll(), "set-up finished too fast to test Ctrl-C")
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
        self.assertLess(time.monotonic() - sent, 1.5, err)
        self.assertEqual(proc.returncode, 128 + signal.SIGINT, err)
        self.assertIn("setting up", err)
        self.assertFalse(os.path.exists(out))
        self.assertFalse(os.path.exists(out + ".partial"))
        # A run's summary reports its set-up time apart from stepping.
        res = herdsim("run", self.scenario(SMALL, "small.toml"), "-o", self.path("small.h5"))
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertIn("set-up", res.stdout)
        self.assertIn("set-up", res.stderr)

    # --- 7. Non-finite results never pass silently ---------------------------------------------------------

    def test_market_sigma_overflow_is_rejected(self):
        quickstart = os.path.join(support.SCENARIOS, "quickstart.toml")
        for command in (["validate"], ["run", "-q", "-o", self.path("q.h5")]):
            res = herdsim(*command, quickstart, "--set", "market.sigma=1e308")
            self.assert_clean_failure(res, 2, "market.sigma")
        self.assertFalse(os.path.exists(self.path("q.h5")))

    def test_wealth_overflow_stops_the_run_naming_population_step_and_path(self):
        # Valid input whose wealth overflows in the first step: both engines (the step loop when recording,
        # the fused kernel when not) stop with exit 1, and no file looks complete.
        text = SMALL.replace('proportion = 0.5\nwealth = 10.0', 'proportion = 0.5\nwealth = 1.7e308')
        for record in ("", "\n[record]\nenabled = false\n"):
            with self.subTest(recording=not record):
                path = self.scenario(text + record)
                out = self.path("inf.h5")
                res = herdsim("run", "-q", path, "-o", out)
                self.assert_clean_failure(res, 1, "population 'noise'", "step", "path 0", "infinite")
                self.assertFalse(os.path.exists(out))

    def test_compare_refuses_non_finite_values(self):
        path = self.scenario(SMALL)
        out = self.path("good.h5")
        self.assertEqual(herdsim("run", "-q", path, "-o", out).returncode, 0)
        self.assertEqual(herdsim("compare", out, "--no-sidecar").returncode, 0)
        with h5py.File(out, "r+") as f:
            wealth = f["populations/noise/wealth"]
            data = wealth[()]
            data[1, 2, 0] = np.inf
            wealth[...] = data
        res = herdsim("compare", out, "--no-sidecar")
        self.assert_clean_failure(res, 2, "non-finite", "noise")


if __name__ == "__main__":
    support.main(scenarios=True)
