#!/usr/bin/env python3
"""Tests of `herdsim export` (CSV) and of the Python loader tools/herdsim_load.py, against h5py.

Usage: test_export.py PATH_TO_HERDSIM SCENARIOS_DIR TOOLS_DIR
"""
import csv
import io
import math
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import h5py
import numpy as np

HERDSIM = SCENARIOS = TOOLS = None
_RUNS = {}  # run files shared by the test classes: (scenario, sets) -> path
FIXED = ["group", "step", "t", "path", "agent", "wealth", "amount", "theory_amount"]


def herdsim(*args, timeout=300):
    return subprocess.run([HERDSIM, *map(str, args)], capture_output=True, text=True, timeout=timeout)


def significant_digits(text):
    """'0.012300' -> '123', '1.5e-05' -> '15': the digits that a shortest representation minimises."""
    mantissa = text.lstrip("-").split("e")[0].replace(".", "")
    return mantissa.strip("0") or "0"


def same_number(test, text, value, where):
    """text parses to exactly value (NaN to NaN) and has no more digits than Python's shortest repr."""
    value = float(value)
    if math.isnan(value):
        test.assertEqual(text, "nan", where)
        return
    test.assertEqual(float(text), value, where)
    test.assertEqual(significant_digits(text), significant_digits(repr(value)), where)


def read_text(path):
    with open(path) as f:
        return f.read()


def read_csv(path_or_text):
    text = read_text(path_or_text) if os.path.exists(path_or_text) else path_or_text
    rows = list(csv.reader(io.StringIO(text)))
    return rows[0], rows[1:]


def expected_rows(f, group, name, quantity="all", paths=None, agents=None):
    """The export's rows, built independently from h5py: one list of values (None: empty) per line."""
    g = f[group]
    pop = g["populations"][name]
    steps, t, dsteps = g["time/step"][()], g["time/t"][()], g["time/decision_step"][()]
    axis = list(g.attrs["paths"])
    wealth, amount = pop["wealth"][()], pop["amount"][()]
    theory = pop["theory/amount"][()] if "theory" in pop else None
    params = {k: v[()] for k, v in pop["params"].items()}
    lo, hi = agents if agents else (0, wealth.shape[2])
    rows = []
    for r in range(len(steps) if quantity != "amount" else len(dsteps)):
        step = int(steps[r])
        for j, p in enumerate(axis):
            if paths is not None and p not in paths:
                continue
            for a in range(lo, hi):
                row = [group, step, t[r], p, a]
                if quantity != "amount":
                    row.append(wealth[r, j, a])
                if quantity != "wealth":
                    has = r < len(dsteps)
                    row.append(amount[r, j, a] if has else None)
                    row.append(theory[step, a] if has and theory is not None else None)
                row += [params[k][a] for k in sorted(params)]
                rows.append(row)
    header = FIXED[:5] + (["wealth"] if quantity != "amount" else []) + (
        ["amount", "theory_amount"] if quantity != "wealth" else []) + sorted(params)
    return header, rows


class ExportBase(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.dir = cls.tmp.name
        if "dir" not in _RUNS:
            _RUNS["tmp"] = tempfile.TemporaryDirectory()  # removed at exit
            _RUNS["dir"] = _RUNS["tmp"].name
        cls.quick = cls.run_scenario("quickstart.toml", "quick.h5", "run.paths=3")
        cls.sweep = cls.run_scenario("p2_mutual.toml", "sweep.h5", "run.paths=2", "run.horizon=4")
        cls.subset = cls.run_scenario("quickstart.toml", "subset.h5", "run.paths=5", "record.every=3",
                                      "record.paths=[4, 1]", "record.max_agents=70")
        cls.summaries = cls.run_scenario("quickstart.toml", "summaries.h5", "run.paths=3",
                                         "record.trajectories=false")

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    @classmethod
    def run_scenario(cls, scenario, out, *sets):
        path = os.path.join(_RUNS["dir"], out)
        if path in _RUNS:
            return path
        _RUNS[path] = True
        args = ["run", os.path.join(SCENARIOS, scenario), "-o", path, "--threads", "2"]
        for s in sets:
            args += ["--set", s]
        r = herdsim(*args)
        assert r.returncode == 0, r.stderr
        return path

    def export(self, run, *args, ok=True):
        r = herdsim("export", run, *args)
        if ok:
            self.assertEqual(r.returncode, 0, r.stderr)
        return r

    def export_csv(self, run, *args):
        out = os.path.join(self.dir, "out.csv")
        self.export(run, "-o", out, *args)
        self.assertFalse(os.path.exists(out + ".partial"))
        return read_csv(out)

    def check_rows(self, header, rows, expected_header, expected):
        self.assertEqual(header, expected_header)
        self.assertEqual(len(rows), len(expected))
        for i, (got, want) in enumerate(zip(rows, expected)):
            self.assertEqual(len(got), len(want), f"line {i + 2}")
            self.assertEqual(got[0], want[0])
            for col, (text, value) in enumerate(zip(got[1:], want[1:]), start=1):
                where = f"line {i + 2} column {header[col]}"
                if value is None:
                    self.assertEqual(text, "", where)
                elif header[col] in ("step", "path", "agent"):
                    self.assertEqual(text, str(value), where)
                else:
                    same_number(self, text, value, where)


class CsvExport(ExportBase):
    def test_every_value_equals_h5py(self):
        with h5py.File(self.quick, "r") as f:
            for name in ("followers", "advisor", "noise"):
                with self.subTest(population=name):
                    header, rows = self.export_csv(self.quick, "--population", name)
                    self.check_rows(header, rows, *expected_rows(f, "/", name))
        # The final row n has no decision: amount and theory_amount are empty there only.
        last = [r for r in rows if r[1] == "10"]
        self.assertTrue(last and all(r[6] == "" and r[7] == "" for r in last))
        self.assertTrue(all(r[6] != "" for r in rows if r[1] != "10"))

    def test_theory_and_params_columns(self):
        header, rows = self.export_csv(self.quick, "--population", "followers", "--agents", "0:2")
        self.assertIn("alpha", header)
        self.assertIn("theta", header)
        self.assertNotEqual(rows[0][header.index("theory_amount")], "")
        header, rows = self.export_csv(self.quick, "--population", "noise", "--agents", "0:2")
        self.assertTrue(all(r[header.index("theory_amount")] == "" for r in rows))

    def test_quantity_paths_agents(self):
        with h5py.File(self.quick, "r") as f:
            for quantity in ("wealth", "amount"):
                with self.subTest(quantity=quantity):
                    header, rows = self.export_csv(self.quick, "--population", "followers", "--quantity", quantity,
                                                   "--paths", "2,0", "--agents", "5:17")
                    self.check_rows(header, rows,
                                    *expected_rows(f, "/", "followers", quantity, paths={0, 2}, agents=(5, 17)))
            header, rows = self.export_csv(self.quick, "--population", "followers", "--agents", "650:")
            self.check_rows(header, rows, *expected_rows(f, "/", "followers", agents=(650, 660)))
            header, rows = self.export_csv(self.quick, "--population", "followers", "--agents", "7")
            self.check_rows(header, rows, *expected_rows(f, "/", "followers", agents=(7, 8)))

    def test_every_path_subset_and_max_agents(self):
        with h5py.File(self.subset, "r") as f:
            self.assertEqual(list(f["time/step"][()]), [0, 3, 6, 9, 10])
            for name in ("followers", "adaptive"):
                header, rows = self.export_csv(self.subset, "--population", name)
                self.check_rows(header, rows, *expected_rows(f, "/", name))
            header, rows = self.export_csv(self.subset, "--population", "followers", "--paths", "4")
            self.check_rows(header, rows, *expected_rows(f, "/", "followers", paths={4}))

    def test_stdout_is_the_same_bytes(self):
        out = os.path.join(self.dir, "file.csv")
        self.export(self.quick, "--population", "adaptive", "-o", out)
        for flags in ([], ["-o", "-"]):
            r = self.export(self.quick, "--population", "adaptive", *flags)
            self.assertEqual(r.stdout, read_text(out))
            self.assertIn("rows", r.stderr)

    def test_sweep_groups(self):
        with h5py.File(self.sweep, "r") as f:
            groups = sorted(k for k in f if k.startswith("sweep_"))
            self.assertEqual(groups, ["sweep_000", "sweep_001", "sweep_002"])
            header, rows = self.export_csv(self.sweep, "--population", "game")
            want = []
            for g in groups:
                want_header, part = expected_rows(f, "/" + g, "game")
                want += part
            self.check_rows(header, rows, want_header, want)
            self.assertEqual(sorted({r[0] for r in rows}), ["/" + g for g in groups])
            for flag in ("/sweep_001", "sweep_001"):
                header, rows = self.export_csv(self.sweep, "--population", "game", "--group", flag)
                self.check_rows(header, rows, *expected_rows(f, "/sweep_001", "game"))

    def test_summaries_only_population(self):
        out = os.path.join(self.dir, "summary.csv")
        r = self.export(self.summaries, "--population", "followers", "-o", out)
        self.assertIn("without trajectories", r.stderr)
        header, rows = read_csv(out)
        with h5py.File(self.summaries, "r") as f:
            pop = f["populations/followers"]
            stats = pop["summary"].attrs["stats"].split(",")
            self.assertEqual(header, ["group", "step", "t", "quantity"] + stats)
            steps, t, dsteps = f["time/step"][()], f["time/t"][()], f["time/decision_step"][()]
            want = []
            for q in ("wealth", "amount", "proportion"):
                table = pop["summary/" + q][()]
                for r_, step in enumerate(steps if q == "wealth" else dsteps):
                    want.append(["/", int(step), t[r_], q] + list(table[r_]))
        self.assertEqual(len(rows), len(want))
        for i, (got, exp) in enumerate(zip(rows, want)):
            self.assertEqual(got[:2] + got[3:4], ["/", str(exp[1]), exp[3]])
            for text, value in zip([got[2]] + got[4:], [exp[2]] + exp[4:]):
                same_number(self, text, value, f"line {i + 2}")
        r = self.export(self.summaries, "--population", "followers", "--quantity", "wealth")
        self.assertEqual(len(r.stdout.splitlines()), 1 + len(steps))
        r = self.export(self.summaries, "--population", "followers", "--agents", "0:3", ok=False)
        self.assertEqual(r.returncode, 2)
        self.assertIn("--agents", r.stderr)


class Failures(ExportBase):
    def assert_error(self, r, *parts):
        self.assertEqual(r.returncode, 2, r.stderr)
        lines = r.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, r.stderr)
        self.assertTrue(lines[0].startswith("herdsim export: error: "), lines[0])
        for part in parts:
            self.assertIn(part, lines[0])

    def test_bad_input(self):
        missing = os.path.join(self.dir, "nothing.h5")
        self.assert_error(self.export(missing, "--population", "x", ok=False), "no such file")
        open(missing + ".partial", "w").close()
        self.assert_error(self.export(missing, "--population", "x", ok=False), ".partial")
        self.assert_error(self.export(self.quick, "--population", "leaders", ok=False),
                          "'leaders'", "advisor", "followers", "noise")
        for agents in ("5:2", "0:661", "660:", "a:b", "-1:3", "3:3"):
            with self.subTest(agents=agents):
                self.assert_error(self.export(self.quick, "--population", "followers", "--agents", agents, ok=False),
                                  "--agents")
        self.assert_error(self.export(self.quick, "--population", "followers", "--paths", "0,7", ok=False),
                          "path 7", "0, 1, 2")
        self.assert_error(self.export(self.quick, "--population", "followers", "--paths", "0,,1", ok=False), "--paths")
        self.assert_error(self.export(self.quick, "--population", "followers", "--quantity", "price", ok=False),
                          "--quantity")
        self.assert_error(self.export(self.quick, "--population", "followers", "--format", "parquet", ok=False),
                          "csv")
        self.assert_error(self.export(self.sweep, "--population", "game", "--group", "/sweep_009", ok=False),
                          "/sweep_000, /sweep_001, /sweep_002")
        text = os.path.join(self.dir, "text.h5")
        with open(text, "w") as f:
            f.write("not hdf5\n")
        self.assert_error(self.export(text, "--population", "x", ok=False), "not an HDF5 file")

    def test_incomplete_run_file_refused(self):
        partial = os.path.join(self.dir, "incomplete.h5.partial")
        shutil.copy(self.quick, partial)
        with h5py.File(partial, "r+") as f:
            f.attrs["complete"] = np.int32(0)
        self.assert_error(self.export(partial, "--population", "followers", ok=False), "incomplete")

    def test_no_file_that_looks_complete_after_a_failure(self):
        # An output directory that cannot exist (below a regular file): refused up front, not even FILE.partial.
        blocker = os.path.join(self.dir, "blocker")
        open(blocker, "w").close()
        out = os.path.join(blocker, "out.csv")
        self.assert_error(self.export(self.quick, "--population", "followers", "-o", out, ok=False),
                          "out.csv", "is not a folder")
        # FILE is a (non-empty) directory: refused before a row is read, FILE untouched, no partial.
        target = os.path.join(self.dir, "target.csv")
        os.makedirs(os.path.join(target, "inside"), exist_ok=True)
        self.assert_error(self.export(self.quick, "--population", "adaptive", "-o", target, ok=False),
                          "is a directory")
        self.assertFalse(os.path.exists(target + ".partial"))
        self.assertEqual(os.listdir(target), ["inside"])
        # A failed export leaves an existing FILE as it was; a successful one replaces it.
        old = os.path.join(self.dir, "old.csv")
        with open(old, "w") as f:
            f.write("previous\n")
        self.assert_error(self.export(self.quick, "--population", "nobody", "-o", old, ok=False), "nobody")
        self.assertEqual(read_text(old), "previous\n")
        self.assertFalse(os.path.exists(old + ".partial"))
        self.export(self.quick, "--population", "advisor", "-o", old)
        self.assertTrue(read_text(old).startswith("group,step,t,path,agent,"))


class Loader(ExportBase):
    def pandas(self):
        try:
            import pandas
        except ImportError:
            self.skipTest("pandas is not installed (tools/setup.sh installs python3-pandas)")
        return pandas

    def read_export(self, run, *args):
        pd = self.pandas()
        r = self.export(run, *args)
        # round_trip: pandas' default float parser is not exact to the last bit.
        return pd.read_csv(io.StringIO(r.stdout), float_precision="round_trip")

    def test_arrays_equal_h5py(self):
        with load_run(self.quick) as run, h5py.File(self.quick, "r") as f:
            self.assertEqual(run.groups, ["/"])
            self.assertEqual(int(run.attrs["schema_version"]), 1)
            self.assertEqual(run.attrs["scenario"], f.attrs["scenario"])
            np.testing.assert_array_equal(run.time()["t"], f["time/t"][()])
            np.testing.assert_array_equal(run.market()["price"], f["market/price"][()])
            self.assertEqual(sorted(run.populations()), ["adaptive", "advisor", "followers", "noise"])
            pop = run.population("followers")
            h = f["populations/followers"]
            np.testing.assert_array_equal(pop.wealth, h["wealth"][()])
            np.testing.assert_array_equal(pop.amount, h["amount"][()])
            np.testing.assert_array_equal(pop.theory_amount, h["theory/amount"][()])
            self.assertEqual(sorted(pop.params), sorted(h["params"]))
            np.testing.assert_array_equal(pop.params["alpha"], h["params/alpha"][()])
            stats = pop.summary("proportion")
            np.testing.assert_array_equal(stats["q0.5"], h["summary/proportion"][:, 6])
            self.assertIsNone(run.population("noise").theory_amount)
            with self.assertRaises(KeyError):
                run.population("nobody")

    def test_to_pandas_matches_the_csv(self):
        pd = self.pandas()
        with load_run(self.quick) as run:
            for name, quantity in (("followers", "all"), ("noise", "all"), ("adaptive", "wealth"),
                                   ("advisor", "amount")):
                with self.subTest(population=name, quantity=quantity):
                    csv_frame = self.read_export(self.quick, "--population", name, "--quantity", quantity)
                    pd.testing.assert_frame_equal(run.population(name).to_pandas(quantity), csv_frame,
                                                  check_exact=True)
            # Shortest round-trip numbers are Python's repr: pandas writes the very same bytes.
            text = run.population("followers").to_pandas().to_csv(index=False)
        self.assertEqual(text, self.export(self.quick, "--population", "followers").stdout)
        with load_run(self.summaries) as run:
            csv_frame = self.read_export(self.summaries, "--population", "adaptive")
            pd.testing.assert_frame_equal(run.population("adaptive").to_pandas(), csv_frame, check_exact=True)
        with load_run(self.subset) as run:
            csv_frame = self.read_export(self.subset, "--population", "followers")
            pd.testing.assert_frame_equal(run.population("followers").to_pandas(), csv_frame, check_exact=True)

    def test_sweep(self):
        pd = self.pandas()
        with load_run(self.sweep) as run:
            self.assertEqual(run.groups, ["/sweep_000", "/sweep_001", "/sweep_002"])
            with self.assertRaises(ValueError):
                run.population("game")
            frames = [run.population("game", g).to_pandas() for g in run.groups]
            self.assertIn("theta", run.group_attrs("sweep_002")["sweep_point"])
        csv_frame = self.read_export(self.sweep, "--population", "game")
        pd.testing.assert_frame_equal(pd.concat(frames, ignore_index=True), csv_frame, check_exact=True)
        with load_run(self.sweep, group="sweep_001") as run:
            with h5py.File(self.sweep, "r") as f:
                np.testing.assert_array_equal(run.population("game").wealth,
                                              f["sweep_001/populations/game/wealth"][()])

    def test_to_xarray(self):
        try:
            import xarray  # noqa: F401
        except ImportError:
            self.skipTest("xarray is not installed: to_xarray() not tested")
        with load_run(self.subset) as run:
            pop = run.population("followers")
            ds = pop.to_xarray()
            self.assertEqual(ds["wealth"].dims, ("step", "path", "agent"))
            self.assertEqual(ds["amount"].dims, ("decision_step", "path", "agent"))
            np.testing.assert_array_equal(ds["wealth"].sel(path=4).values, pop.wealth[:, 1, :])
            np.testing.assert_array_equal(ds["theory_amount"].sel(decision_step=3).values, pop.theory_amount[3])
            np.testing.assert_array_equal(ds["alpha"].values, pop.params["alpha"])
            np.testing.assert_array_equal(ds["t"].values, pop.t)

    def test_refuses_incomplete_and_unknown_files(self):
        partial = os.path.join(self.dir, "loader.h5.partial")
        shutil.copy(self.quick, partial)
        with h5py.File(partial, "r+") as f:
            f.attrs["complete"] = np.int32(0)
        with self.assertRaisesRegex(RunFileError, "incomplete"):
            load_run(partial)
        with load_run(partial, allow_incomplete=True) as run:
            self.assertEqual(run.population("advisor").wealth.shape[1], 3)
        with h5py.File(partial, "r+") as f:
            f.attrs["schema_version"] = np.int32(3)
        with self.assertRaisesRegex(RunFileError, "schema_version 3"):
            load_run(partial, allow_incomplete=True)
        with h5py.File(partial, "r+") as f:
            del f.attrs["schema_version"]
        with self.assertRaisesRegex(RunFileError, "not a herdsim run file"):
            load_run(partial, allow_incomplete=True)

    def test_summary_of_a_command_line(self):
        r = subprocess.run([sys.executable, os.path.join(TOOLS, "herdsim_load.py"), self.sweep],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("/sweep_002", r.stdout)
        self.assertIn("game", r.stdout)


if __name__ == "__main__":
    HERDSIM, SCENARIOS, TOOLS = sys.argv[1:4]
    sys.path.insert(0, TOOLS)
    from herdsim_load import RunFileError, load_run  # noqa: E402
    unittest.main(argv=sys.argv[:1] + sys.argv[4:])
