#!/usr/bin/env python3
"""End-to-end tests of `herdsim report`: real runs, the analysis, PNG figures and index.html.

Usage: test_report.py PATH_TO_HERDSIM SCENARIOS_DIR
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

import matplotlib

matplotlib.use("Agg")
import matplotlib.image as mpimg  # noqa: E402

HERDSIM = None
SCENARIOS = None
SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools", "report",
                      "herdsim_report.py")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SAFE_NAME = re.compile(r"[A-Za-z0-9._-]+")


def herdsim(*args, env=None, timeout=600):
    return subprocess.run([HERDSIM, *args], capture_output=True, text=True, timeout=timeout, env=env)


def run_and_report(tmp, name, scenario, *sets):
    """Runs a scenario into tmp/name.h5 and reports it into tmp/name; returns (run file, dir, result)."""
    run_file = os.path.join(tmp, f"{name}.h5")
    out_dir = os.path.join(tmp, name)
    overrides = [arg for s in sets for arg in ("--set", s)]
    res = herdsim("run", os.path.join(SCENARIOS, scenario), "-o", run_file, "-q", *overrides)
    assert res.returncode == 0, res.stderr
    return run_file, out_dir, herdsim("report", run_file, "-o", out_dir)


def pngs(out_dir):
    return sorted(f for f in os.listdir(out_dir) if f.endswith(".png"))


class ReportChecks(unittest.TestCase):
    """Checks shared by the report tests."""

    def check_report_dir(self, out_dir, min_figures):
        index = os.path.join(out_dir, "index.html")
        self.assertTrue(os.path.isfile(index))
        with open(index, encoding="utf-8") as f:
            page = f.read()
        figures = pngs(out_dir)
        self.assertGreaterEqual(len(figures), min_figures)
        linked = set(re.findall(r'<img src="([^"]+)"', page))
        self.assertEqual(linked, set(figures), "index.html must link every PNG, and only existing ones")
        for name in figures:
            self.assertTrue(SAFE_NAME.fullmatch(name), name)
            self.check_png(os.path.join(out_dir, name))
        return page

    def check_png(self, path):
        with open(path, "rb") as f:
            self.assertEqual(f.read(8), PNG_SIGNATURE, path)
        self.assertGreater(os.path.getsize(path), 5000, f"{path} is suspiciously small")
        pixels = mpimg.imread(path)[..., :3]
        self.assertGreater(float(pixels.std()), 0.02, f"{path} looks blank")


class QuickstartReport(ReportChecks):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.run_file, cls.out_dir, cls.res = run_and_report(cls.tmp.name, "quick", "quickstart.toml",
                                                            "run.paths=20")

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_report_succeeds_and_says_what_it_wrote(self):
        self.assertEqual(self.res.returncode, 0, self.res.stderr)
        self.assertIn("index.html", self.res.stdout)
        self.assertRegex(self.res.stdout, r"\(\d+ figures\)")
        self.assertTrue(os.path.isfile(os.path.join(self.out_dir, "analysis.json")))

    def test_every_png_is_linked_valid_and_not_blank(self):
        self.assertEqual(self.res.returncode, 0, self.res.stderr)
        self.check_report_dir(self.out_dir, min_figures=10)

    def test_trivial_panels_are_a_sentence_and_formulas_have_one_sign(self):
        figures = set(pngs(self.out_dir))
        # Plan agents play the theory exactly: their all-zero MSE panels are replaced by a sentence.
        self.assertNotIn("g0_followers_mse_heatmap.png", figures)
        self.assertNotIn("g0_followers_mse_steps.png", figures)
        self.assertIn("g0_adaptive_mse_steps.png", figures)
        # The one-agent advisor has no histogram over agents: its values in a sentence instead.
        self.assertNotIn("g0_advisor_investor.png", figures)
        self.assertIn("g0_followers_investor.png", figures)
        with open(os.path.join(self.out_dir, "index.html"), encoding="utf-8") as f:
            page = f.read()
        self.assertIn("these agents play the theoretical plan exactly, so there is nothing to draw", page)
        self.assertIn("a histogram over agents needs agents that differ", page)
        # The CCK curve's label writes a negative coefficient as "− 0.231", never "+ -0.231".
        import importlib.util
        spec = importlib.util.spec_from_file_location("herdsim_report", SCRIPT)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        self.assertEqual(module.signed_term(-0.231, "|R|"), " − 0.231|R|")
        self.assertEqual(module.signed_term(3.48, "R²"), " + 3.48R²")

    def test_figures_from_the_run_file_exist_for_every_population(self):
        figures = set(pngs(self.out_dir))
        for pop in ("advisor", "followers", "adaptive", "noise"):
            self.assertIn(f"g0_{pop}_decisions.png", figures)
            self.assertIn(f"g0_{pop}_wealth.png", figures)

    def test_page_has_provenance_headline_and_reading_guides(self):
        with open(os.path.join(self.out_dir, "index.html"), encoding="utf-8") as f:
            page = f.read()
        self.assertIn("<details>", page)
        self.assertIn("steps_per_year", page)  # the scenario text
        self.assertRegex(page, r"<td>seed</td><td>42</td>")
        self.assertIn("herdsim version", page)
        self.assertIn("Headline", page)
        self.assertIn("Wealth fan chart.", page)
        self.assertIn("How to read", page)


class SweepReport(ReportChecks):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.run_file, cls.out_dir, cls.res = run_and_report(cls.tmp.name, "sweep", "p2_mutual.toml",
                                                            "run.paths=8")

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_one_set_of_figures_per_sweep_point(self):
        self.assertEqual(self.res.returncode, 0, self.res.stderr)
        page = self.check_report_dir(self.out_dir, min_figures=12)
        figures = set(pngs(self.out_dir))
        for g in range(3):
            for pop in ("game", "adaptive"):
                self.assertIn(f"g{g}_{pop}_wealth.png", figures)
        self.assertIn("population.game.theta=", page)
        for g in ("sweep_000", "sweep_001", "sweep_002"):
            self.assertIn(g, page)


class ReportErrors(ReportChecks):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.run_file = os.path.join(cls.tmp.name, "small.h5")
        res = herdsim("run", os.path.join(SCENARIOS, "quickstart.toml"), "-o", cls.run_file, "-q",
                      "--set", "run.paths=4", "--set", "record.trajectories=false")
        assert res.returncode == 0, res.stderr

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def out(self, name):
        return os.path.join(self.tmp.name, name)

    def test_missing_run_file_exits_2_and_writes_nothing(self):
        res = herdsim("report", self.out("nope.h5"), "-o", self.out("nope"))
        self.assertEqual(res.returncode, 2, res.stderr)
        self.assertIn("herdsim report: error:", res.stderr)
        self.assertIn("nope.h5", res.stderr)
        self.assertFalse(os.path.exists(self.out("nope")))

    def test_a_missing_python_package_exits_3_and_names_it(self):
        # A fake h5py that fails to import, first on PYTHONPATH of Debian's interpreter.
        fake = self.out("fake_site")
        os.makedirs(fake, exist_ok=True)
        with open(os.path.join(fake, "h5py.py"), "w") as f:
            f.write("raise ImportError('No module named h5py (test stand-in)')\n")
        env = dict(os.environ, PYTHONPATH=fake)
        res = herdsim("report", self.run_file, "-o", self.out("fake_h5py"), env=env)
        self.assertEqual(res.returncode, 3, res.stdout + res.stderr)
        self.assertIn("h5py", res.stderr)
        self.assertIn("python3-h5py", res.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.out("fake_h5py"), "index.html")))

    def test_an_interpreter_without_numpy_exits_3_and_names_it(self):
        other = shutil.which("python3")
        if other is None or os.path.realpath(other) == os.path.realpath("/usr/bin/python3"):
            self.skipTest("no second python3 on PATH")
        if subprocess.run([other, "-c", "import numpy"], capture_output=True).returncode == 0:
            self.skipTest(f"{other} has numpy")
        res = herdsim("report", self.run_file, "-o", self.out("no_numpy"), "--python", other)
        self.assertEqual(res.returncode, 3, res.stdout + res.stderr)
        self.assertIn("python3-numpy", res.stderr)

    def test_a_missing_interpreter_exits_3(self):
        res = herdsim("report", self.run_file, "-o", self.out("no_python"), "--python",
                      self.out("no/such/python3"))
        self.assertEqual(res.returncode, 3, res.stderr)
        self.assertIn("Python interpreter", res.stderr)

    def test_without_trajectories_the_page_says_why_figures_are_missing(self):
        res = herdsim("report", self.run_file, "-o", self.out("no_traj"))
        self.assertEqual(res.returncode, 0, res.stderr)
        page = self.check_report_dir(self.out("no_traj"), min_figures=4)
        self.assertIn("trajectories were not recorded", page)
        figures = set(pngs(self.out("no_traj")))
        self.assertIn("g0_followers_wealth.png", figures)  # from the summaries
        self.assertNotIn("g0_followers_decisions.png", figures)

    def test_the_script_alone_draws_the_run_file_figures_without_an_analysis(self):
        run_file = self.out("traj.h5")
        res = herdsim("run", os.path.join(SCENARIOS, "quickstart.toml"), "-o", run_file, "-q",
                      "--set", "run.paths=4", "--set", "record.summaries=false")
        self.assertEqual(res.returncode, 0, res.stderr)
        res = subprocess.run([sys.executable, SCRIPT, run_file, "-o", self.out("script_only")],
                             capture_output=True, text=True, timeout=600)
        self.assertEqual(res.returncode, 0, res.stderr)
        page = self.check_report_dir(self.out("script_only"), min_figures=8)
        self.assertIn("no analysis file was given", page)
        self.assertIn("summaries were not recorded", page)  # the fan chart from the trajectories

    def test_the_script_rejects_a_file_that_is_not_an_analysis(self):
        bad = self.out("bad.json")
        with open(bad, "w") as f:
            f.write('{"schema": "something-else", "schema_version": 1}')
        res = subprocess.run([sys.executable, SCRIPT, self.run_file, "-o", self.out("bad"),
                              "--analysis", bad], capture_output=True, text=True, timeout=600)
        self.assertEqual(res.returncode, 2, res.stderr)
        self.assertIn("not a herdsim analysis file", res.stderr)


if __name__ == "__main__":
    HERDSIM = os.path.abspath(sys.argv.pop(1))
    SCENARIOS = os.path.abspath(sys.argv.pop(1))
    unittest.main()
