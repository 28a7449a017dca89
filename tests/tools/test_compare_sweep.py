#!/usr/bin/env python3
"""`herdsim compare` and `herdsim report` across sweep points and run files (issue 15 item 4;
docs/analysis.md, "Across sweep points and files"), end to end: a real small sweep run by the real
`herdsim run`, compare's tables checked against values recomputed here from the HDF5 file with h5py and
numpy, several files side by side, and the report's figures opened and looked at (sizes, non-empty panels).

Usage: test_compare_sweep.py PATH_TO_HERDSIM
"""
import importlib.util
import json
import os
import re
import shutil
import tempfile
import unittest

import h5py
import numpy as np
from scipy import stats

import support

REPORT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools", "report")

# Plan followers behind a Merton leader, and adaptive followers who are the same investors; the
# volatility is swept.
SCENARIO = """
[run]
seed = 42
paths = 24
horizon = 8
steps_per_year = 1
[market]
r = 0.04
mu = 0.07
sigma = 0.17
[[population]]
name = "advisor"
kind = "merton"
count = 1
alpha = 0.2
wealth = 10.0
[[population]]
name = "followers"
kind = "herd"
herd = "absolute"
influence = "leader"
leader = "advisor"
policy = "plan"
count = 18
alpha = { lottery_prob = [0.4, 0.6, 0.8] }
theta = { score = [0, 5, 10] }
wealth = 10.0
[[population]]
name = "adaptive"
kind = "herd"
herd = "absolute"
influence = "leader"
leader = "advisor"
policy = "adaptive"
count = 18
investors = "followers"
[record]
every = 1
"""
SWEEP = '\n[sweep]\n"market.sigma" = [0.1, 0.17, 0.25]\n'
SIGMAS = [0.1, 0.17, 0.25]


def load_module(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(REPORT_DIR, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def t_interval(values, confidence=0.95):
    """Mean of the finite values and its Student-t interval, recomputed with scipy."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    half = stats.t.ppf(0.5 + confidence / 2, v.size - 1) * v.std(ddof=1) / np.sqrt(v.size)
    return v.mean(), v.mean() - half, v.mean() + half


def agent_mse_amount(f, group, population):
    """Each agent's decision MSE in amounts, from the file: mean over decisions and paths of (P - P*)^2."""
    pop = f[group]["populations"][population]
    amount = pop["amount"][()]                      # (D, P, M)
    steps = pop["decision_step"][()]
    theory = pop["theory"]["amount"][()][steps, :]  # (D, M): the plan at each recorded decision
    return ((amount - theory[:, None, :]) ** 2).mean(axis=(0, 1))


def cell(table, point, across, population):
    return table["values"][point][across["populations"].index(population)]


def measure(across, name):
    return next(t for t in across["measures"] if t["measure"] == name)


class SweepTables(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        d = cls.tmp.name
        cls.run_file = os.path.join(d, "sweep.h5")
        path = support.write_scenario(d, "sweep.toml", SCENARIO + SWEEP)
        res = support.herdsim("run", path, "-o", cls.run_file, "-q")
        assert res.returncode == 0, res.stderr
        res = support.herdsim("compare", cls.run_file, "--format", "json", "--no-sidecar", "-q")
        assert res.returncode == 0, res.stderr
        cls.analysis = json.loads(res.stdout)
        cls.across = cls.analysis["across"]
        res = support.herdsim("compare", cls.run_file, "--no-sidecar", "-q")
        assert res.returncode == 0, res.stderr
        cls.markdown = res.stdout

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_a_row_per_sweep_point_with_the_swept_parameter_as_column(self):
        a = self.across
        self.assertEqual(a["over"], "sweep points")
        self.assertEqual(a["params"], ["market.sigma"])
        self.assertEqual([p["label"] for p in a["points"]], ["sweep_000", "sweep_001", "sweep_002"])
        self.assertEqual([p["values"] for p in a["points"]], [[s] for s in SIGMAS])
        self.assertEqual([p["group"] for p in a["points"]], ["/sweep_000", "/sweep_001", "/sweep_002"])
        self.assertEqual(sorted(a["populations"]), ["adaptive", "advisor", "followers"])
        names = [t["measure"] for t in a["measures"]]
        for name in ("decision_mse_pp", "decision_mse_amount", "ce_gap", "h_simulated", "lsv_mean_h",
                     "cssd_beta_l", "csad_gamma2", "cumulative_return", "sharpe", "max_drawdown"):
            self.assertIn(name, names)
        for t in a["measures"]:
            self.assertEqual(len(t["values"]), 3, t["measure"])
            self.assertTrue(t["interval"], t["measure"])

    def test_decision_mse_recomputed_from_the_hdf5_file(self):
        table = measure(self.across, "decision_mse_amount")
        with h5py.File(self.run_file, "r") as f:
            for k in range(3):
                group = f"sweep_{k:03d}"
                self.assertTrue(str(f[group].attrs["sweep_point"]).startswith("market.sigma="), group)
                mean, low, high = t_interval(agent_mse_amount(f, group, "adaptive"))
                got = cell(table, k, self.across, "adaptive")
                self.assertGreater(mean, 0.0)
                np.testing.assert_allclose([got["mean"], got["ci_low"], got["ci_high"]], [mean, low, high],
                                           rtol=1e-9, err_msg=group)
                self.assertEqual(got["n"], 18)
                # Plan followers play the theory: exactly 0 with a zero-width interval.
                zero = cell(table, k, self.across, "followers")
                self.assertEqual((zero["mean"], zero["ci_low"], zero["ci_high"]), (0.0, 0.0, 0.0))

    def test_herding_statistics_and_ce_gap_match_each_run_groups_analysis(self):
        lsv, ce = measure(self.across, "lsv_mean_h"), measure(self.across, "ce_gap")
        for k, run in enumerate(self.analysis["runs"]):
            pops = {p["name"]: p for p in run["populations"]}
            own = pops["adaptive"]["lsv"]
            got = cell(lsv, k, self.across, "adaptive")
            half = stats.t.ppf(0.975, own["observations"] - 1) * own["se"]
            np.testing.assert_allclose([got["mean"], got["ci_low"], got["ci_high"]],
                                       [own["mean"], own["mean"] - half, own["mean"] + half], rtol=1e-9)
            gap = pops["followers"]["certainty_equivalent"]
            got = cell(ce, k, self.across, "followers")
            self.assertEqual([got["mean"], got["ci_low"], got["ci_high"]],
                             [gap["gap"], gap["ci_low"], gap["ci_high"]])
            # The advisor has no herding distance: null, not 0.
            self.assertIsNone(cell(measure(self.across, "h_simulated"), k, self.across, "advisor"))

    def test_markdown_has_one_table_per_measure(self):
        md = self.markdown
        self.assertIn("## Across sweep points", md)
        self.assertIn("### decision MSE, amount (currency^2)", md)
        self.assertIn("| sweep point | `market.sigma` | adaptive | advisor | followers |", md)
        for k, s in enumerate(SIGMAS):
            self.assertIn(f"| sweep_{k:03d} | {s:g} |", md)

    def test_a_single_run_has_no_across_tables(self):
        path = support.write_scenario(self.tmp.name, "one.toml", SCENARIO)
        run_file = os.path.join(self.tmp.name, "one.h5")
        self.assertEqual(support.herdsim("run", path, "-o", run_file, "-q").returncode, 0)
        res = support.herdsim("compare", run_file, "--format", "json", "--no-sidecar", "-q")
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertNotIn("across", json.loads(res.stdout))


class SeveralFiles(support.TempDirTest):
    def run_file(self, name, *sets):
        path = self.scenario(SCENARIO, f"{name}.toml")
        out = self.path(f"{name}.h5")
        overrides = [a for s in sets for a in ("--set", s)]
        res = support.herdsim("run", path, "-o", out, "-q", *overrides)
        self.assertEqual(res.returncode, 0, res.stderr)
        return out

    def test_the_differing_scenario_values_are_the_columns(self):
        a = self.run_file("calm", "market.sigma=0.12")
        b = self.run_file("wild", "market.sigma=0.3", "run.seed=7")
        res = support.herdsim("compare", a, b, "--format", "json", "--no-sidecar", "-q")
        self.assertEqual(res.returncode, 0, res.stderr)
        doc = json.loads(res.stdout)
        self.assertEqual(doc["schema"], "herdsim-analysis-set")
        across = doc["across"]
        self.assertEqual(across["over"], "files")
        self.assertEqual(across["params"], ["market.sigma", "run.seed"])
        self.assertEqual([p["label"] for p in across["points"]], ["calm.h5", "wild.h5"])
        self.assertEqual([p["values"] for p in across["points"]], [[0.12, 42], [0.3, 7]])
        # Each cell is that file's own per-agent herding distance, averaged over agents.
        table = measure(across, "h_simulated")
        for k, analysis in enumerate(doc["analyses"]):
            pop = next(p for p in analysis["runs"][0]["populations"] if p["name"] == "adaptive")
            mean, low, high = t_interval(pop["herding_distance"]["per_agent"]["simulated"])
            got = cell(table, k, across, "adaptive")
            np.testing.assert_allclose([got["mean"], got["ci_low"], got["ci_high"]], [mean, low, high], rtol=1e-9)
        res = support.herdsim("compare", a, b, "--no-sidecar", "-q")
        self.assertIn("## Across files", res.stdout)
        self.assertIn("| file | `market.sigma` | `run.seed` |", res.stdout)

    def test_a_sweep_file_beside_a_single_run(self):
        single = self.run_file("single")
        sweep = self.path("sweep.h5")
        res = support.herdsim("run", self.scenario(SCENARIO + SWEEP, "sweep.toml"), "-o", sweep, "-q")
        self.assertEqual(res.returncode, 0, res.stderr)
        res = support.herdsim("compare", single, sweep, "--format", "json", "--no-sidecar", "-q")
        self.assertEqual(res.returncode, 0, res.stderr)
        across = json.loads(res.stdout)["across"]
        self.assertEqual(across["params"], ["market.sigma"])
        self.assertEqual([p["label"] for p in across["points"]],
                         ["single.h5", "sweep.h5:sweep_000", "sweep.h5:sweep_001", "sweep.h5:sweep_002"])
        self.assertEqual([p["values"][0] for p in across["points"]], [0.17] + SIGMAS)

    def test_identical_scenarios_have_no_columns_but_the_file_names(self):
        a = self.run_file("a")
        b = self.run_file("b")
        res = support.herdsim("compare", a, b, "--format", "json", "--no-sidecar", "-q")
        self.assertEqual(res.returncode, 0, res.stderr)
        across = json.loads(res.stdout)["across"]
        self.assertEqual(across["params"], [])
        self.assertEqual([p["label"] for p in across["points"]], ["a.h5", "b.h5"])


class SweepReport(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        import matplotlib
        matplotlib.use("Agg")
        cls.tmp = tempfile.TemporaryDirectory()
        d = cls.tmp.name
        cls.run_file = os.path.join(d, "sweep.h5")
        path = support.write_scenario(d, "sweep.toml", SCENARIO + SWEEP)
        assert support.herdsim("run", path, "-o", cls.run_file, "-q").returncode == 0
        cls.out = os.path.join(d, "report")
        cls.res = support.herdsim("report", cls.run_file, "-o", cls.out)
        with open(os.path.join(cls.out, "index.html"), encoding="utf-8") as f:
            cls.page = f.read()
        with open(os.path.join(cls.out, "analysis.json"), encoding="utf-8") as f:
            cls.analysis = json.load(f)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def check_figure(self, name):
        import matplotlib.image as mpimg
        path = os.path.join(self.out, name)
        self.assertTrue(os.path.isfile(path), name)
        self.assertGreater(os.path.getsize(path), 5000, name)
        pixels = mpimg.imread(path)[..., :3]
        self.assertGreater(pixels.shape[0], 300, name)
        self.assertGreater(pixels.shape[1], 500, name)
        # Not blank: the drawn area holds lines and bands of several colours.
        self.assertGreater(float(pixels.std()), 0.02, name)
        coloured = np.abs(pixels - pixels.mean(axis=2, keepdims=True)).max(axis=2) > 0.1
        self.assertGreater(int(coloured.sum()), 500, f"{name} has almost no coloured pixels")

    def test_a_figure_of_each_measure_against_the_swept_parameter(self):
        self.assertEqual(self.res.returncode, 0, self.res.stderr)
        self.assertIn('<li><a href="#across">Across sweep points</a></li>', self.page)
        self.assertIn('<h2 id="across">Across sweep points</h2>', self.page)
        for m in ("decision_mse_pp", "decision_mse_amount", "ce_gap", "h_simulated", "lsv_mean_h",
                  "csad_gamma2", "cumulative_return", "sharpe", "max_drawdown"):
            self.check_figure(f"sweep_{m}.png")
            self.assertIn(f'<img src="sweep_{m}.png"', self.page)
        self.assertIn("market.sigma (volatility σ (per √year))", self.page)
        # Plan followers' MSE is exactly 0 at every point: left out of the figure with a sentence.
        self.assertIn("Not drawn: advisor, followers, exactly 0 at every point: these agents play the "
                      "theoretical plan", self.page)

    def test_a_trivial_panel_is_a_sentence(self):
        figures = load_module("sweep_figures")
        across = json.loads(json.dumps(self.analysis["across"]))
        table = next(t for t in across["measures"] if t["measure"] == "decision_mse_pp")
        for row in table["values"]:
            for c in row:
                if c is not None:
                    c.update(mean=0.0, ci_low=0.0, ci_high=0.0)
        across["measures"] = [table]
        out = os.path.join(self.tmp.name, "trivial")
        os.makedirs(out)
        drawn, skipped = figures.render(across, out, "sweep", lambda fig, path: fig.savefig(path))
        self.assertEqual(drawn, [])
        self.assertEqual(len(skipped), 1)
        self.assertIn("exactly 0 at every point: these agents play the theoretical plan", skipped[0])
        self.assertEqual(os.listdir(out), [])

    def test_the_csad_curve_is_fitted_on_the_points_it_draws(self):
        # The right panel's points are the (path, step) pairs; an OLS fit on them gives the analysis's
        # coefficients, so the curve passes through them.
        report = load_module("herdsim_report")
        run = self.analysis["runs"][1]
        pop_json = next(p for p in run["populations"] if p["name"] == "adaptive")
        with h5py.File(self.run_file, "r") as f:
            class Data:
                def dataset(self, name):
                    return f["sweep_001"]["populations"]["adaptive"][name]

            class Pop:
                data = Data()
            x, y = report.csad_pairs(Pop(), pop_json["analysed_agents"])
        self.assertEqual(x.size, pop_json["csad"]["observations"])
        design = np.column_stack([np.ones_like(x), x, x * x])
        coef = np.linalg.lstsq(design, y, rcond=None)[0]
        want = [c["estimate"] for c in pop_json["csad"]["coefficients"]]
        np.testing.assert_allclose(coef, want, rtol=1e-7, atol=1e-12)
        self.check_figure("g1_adaptive_csad.png")


class FilesReport(unittest.TestCase):
    """`herdsim report A B C`: three real runs that differ in the volatility; one analysis set, the figures
    across files against σ, and one section per file."""

    @classmethod
    def setUpClass(cls):
        import matplotlib
        matplotlib.use("Agg")
        cls.tmp = tempfile.TemporaryDirectory()
        d = cls.tmp.name
        path = support.write_scenario(d, "s.toml", SCENARIO)
        cls.files = []
        for sigma in SIGMAS:
            out = os.path.join(d, f"sigma_{sigma}.h5")
            res = support.herdsim("run", path, "-o", out, "-q", "--set", f"market.sigma={sigma}")
            assert res.returncode == 0, res.stderr
            cls.files.append(out)
        cls.out = os.path.join(d, "report")
        cls.res = support.herdsim("report", *cls.files, "-o", cls.out, "--no-sidecar")
        with open(os.path.join(cls.out, "index.html"), encoding="utf-8") as f:
            cls.page = f.read()
        with open(os.path.join(cls.out, "analysis.json"), encoding="utf-8") as f:
            cls.analysis = json.load(f)
        cls.across = cls.analysis["across"]

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    check_figure = SweepReport.check_figure

    def test_one_analysis_set_with_the_volatility_as_column(self):
        self.assertEqual(self.res.returncode, 0, self.res.stderr)
        self.assertEqual(self.analysis["schema"], "herdsim-analysis-set")
        self.assertEqual(len(self.analysis["analyses"]), 3)
        self.assertEqual(self.across["over"], "files")
        self.assertEqual(self.across["params"], ["market.sigma"])
        self.assertEqual([p["values"] for p in self.across["points"]], [[s] for s in SIGMAS])
        # --no-sidecar: nothing written next to the run files.
        for f in self.files:
            self.assertFalse(os.path.exists(f + ".analysis.json"))

    def test_across_values_are_each_files_own_analysis(self):
        h, ce = measure(self.across, "h_simulated"), measure(self.across, "ce_gap")
        for k, path in enumerate(self.files):
            # The set's analysis of file k is the analysis of that file alone.
            res = support.herdsim("compare", path, "--format", "json", "--no-sidecar", "-q")
            self.assertEqual(res.returncode, 0, res.stderr)
            alone = {p["name"]: p for p in json.loads(res.stdout)["runs"][0]["populations"]}
            in_set = {p["name"]: p for p in self.analysis["analyses"][k]["runs"][0]["populations"]}
            for name in ("followers", "adaptive"):
                self.assertEqual(in_set[name]["herding_distance"], alone[name]["herding_distance"])
                self.assertEqual(in_set[name]["certainty_equivalent"], alone[name]["certainty_equivalent"])
                mean, low, high = t_interval(alone[name]["herding_distance"]["per_agent"]["simulated"])
                got = cell(h, k, self.across, name)
                np.testing.assert_allclose([got["mean"], got["ci_low"], got["ci_high"]], [mean, low, high],
                                           rtol=1e-9)
                gap = alone[name]["certainty_equivalent"]
                got = cell(ce, k, self.across, name)
                self.assertEqual([got["mean"], got["ci_low"], got["ci_high"]],
                                 [gap["gap"], gap["ci_low"], gap["ci_high"]])
            # Decision MSE in amounts recomputed from the HDF5 file.
            with h5py.File(path, "r") as f:
                mean, low, high = t_interval(agent_mse_amount(f, "/", "adaptive"))
            got = cell(measure(self.across, "decision_mse_amount"), k, self.across, "adaptive")
            np.testing.assert_allclose([got["mean"], got["ci_low"], got["ci_high"]], [mean, low, high], rtol=1e-9)

    def test_figures_across_files_against_the_volatility(self):
        self.assertEqual(self.res.returncode, 0, self.res.stderr)
        self.assertIn('<h2 id="across">Across files</h2>', self.page)
        self.assertIn('<li><a href="#across">Across files</a></li>', self.page)
        self.assertIn("the x axis is market.sigma (volatility σ (per √year))", self.page)
        for m in ("decision_mse_pp", "decision_mse_amount", "ce_gap", "h_simulated", "lsv_mean_h",
                  "csad_gamma2", "cumulative_return", "sharpe", "max_drawdown"):
            self.check_figure(f"across_{m}.png")
            self.assertIn(f'<img src="across_{m}.png"', self.page)
        self.assertIn("Not drawn: advisor, followers, exactly 0 at every point: these agents play the "
                      "theoretical plan", self.page)
        self.assertFalse([n for n in os.listdir(self.out) if n.startswith("sweep_")])

    def test_one_section_per_file(self):
        self.assertEqual(self.res.returncode, 0, self.res.stderr)
        for k, path in enumerate(self.files):
            name = os.path.basename(path)
            self.assertIn(f'<h1 id="f{k}" class="file">Run file {k + 1} of 3: {name}</h1>', self.page)
            self.assertIn(f'<li><a href="#f{k}">Run file {k + 1}: {name}</a></li>', self.page)
            self.assertIn(f'<h2 id="f{k}_g0">Run</h2>', self.page)
            self.check_figure(f"f{k}_g0_adaptive_decisions.png")
            self.check_figure(f"f{k}_g0_adaptive_herding_distance.png")
        # Every figure the page links is there, and no figure is left unlinked.
        linked = set(re.findall(r'<img src="([^"]+)"', self.page))
        pngs = {n for n in os.listdir(self.out) if n.endswith(".png")}
        self.assertEqual(linked, pngs)
        self.assertIn(f"({len(pngs)} figures)", self.res.stdout)

    def test_a_bad_second_file_exits_2_and_leaves_no_folder(self):
        for second, reason in ((os.path.join(self.tmp.name, "missing.h5"), "does not exist"),
                               (os.path.join(self.tmp.name, "README.h5"), "is not an HDF5 file")):
            if not second.endswith("missing.h5"):
                with open(second, "w") as f:
                    f.write("not a run file\n")
            out = os.path.join(self.tmp.name, "bad_report")
            res = support.herdsim("report", self.files[0], second, "-o", out, "--no-sidecar")
            self.assertEqual(res.returncode, 2, res.stderr)
            self.assertIn(reason, res.stderr)
            self.assertFalse(os.path.exists(out))
            self.assertFalse(os.path.exists(out + ".partial"))

    def test_files_with_equal_scenarios_are_points_labelled_by_file_name(self):
        twin = os.path.join(self.tmp.name, "twin.h5")
        shutil.copyfile(self.files[0], twin)
        out = os.path.join(self.tmp.name, "twins")
        res = support.herdsim("report", self.files[0], twin, "-o", out, "--no-sidecar")
        self.assertEqual(res.returncode, 0, res.stderr)
        with open(os.path.join(out, "index.html"), encoding="utf-8") as f:
            page = f.read()
        with open(os.path.join(out, "analysis.json"), encoding="utf-8") as f:
            across = json.load(f)["across"]
        self.assertEqual(across["params"], [])
        self.assertEqual([p["label"] for p in across["points"]], ["sigma_0.1.h5", "twin.h5"])
        self.assertIn("the x axis lists the run files by name", page)
        old_out, self.out = self.out, out
        try:
            self.check_figure("across_h_simulated.png")
        finally:
            self.out = old_out

    def test_the_default_folder_names_the_first_file_and_the_count(self):
        res = support.herdsim("report", self.files[0], self.files[1], "--no-sidecar", cwd=self.tmp.name)
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertTrue(os.path.isfile(os.path.join(self.tmp.name, "sigma_0.1_and_1_more_report", "index.html")))


if __name__ == "__main__":
    support.main()
