"""Distributed runs (docs/cluster.md) with a real `mpirun`: a sweep split across 1, 2 and 3 ranks x 1 and 2
threads gives, dataset for dataset, the single-process file (read through the master file's links and from
`herdsim merge`'s copy); so does one run whose paths are split across the ranks (read through the master
file's virtual datasets, summaries included, and from the merged copy), and a missing or unfinished part is
refused; compare, report, export and the Python loader read the master file; a failing sweep point
stops every rank with one message, exit 1 and no complete-looking master file. LLM populations (reference
answerers; the tiny model with a shared decision cache where the llama.cpp plugin is built) under the path
and sweep splits give the one-process file, each request decided on one rank; `herdsim evaluate` hands its
runs to the ranks and writes the one-process report.

Usage: test_mpi.py PATH_TO_HERDSIM PATH_TO_MPIRUN TOOLS_DIR   (registered only in an MPI build; see
tests/CMakeLists.txt)
"""
import json
import os
import re
import signal
import subprocess
import sys
import time
import unittest

import h5py
import numpy as np

import support

MPIRUN = None
TOOLS = None

# Small on purpose (CI time): four sweep points of a leader, herd followers and noise traders.
SWEEP = """
[run]
seed = 5
paths = 6
horizon = 3
steps_per_year = 2

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

[record]
every = 1

[sweep]
"run.seed" = [1, 2]
"population.followers.theta" = [1e-5, 1e-4]
"""

# One run (no sweep) split by paths: 7 paths (3 ranks get blocks of 2, 2 and 3), the herd and noise traders
# of SWEEP, with quantiles of every kind (order statistics and interpolated ones).
PATHS = SWEEP.split("[sweep]")[0].replace("paths = 6", "paths = 7") + "quantiles = [0.1, 0.5, 0.9]\n"

# Schema 2 by paths: two correlated assets (the (row, asset, path) and (row, asset, path, agent) layouts)
# with Merton investors and noise traders drawing per asset; a small two-point sweep, forced to split its
# paths.
ASSETS = """
[run]
seed = 11
paths = 5
horizon = 1
steps_per_year = 6

[market]
r = 0.04
names = ["stock", "bond"]
mu = [0.07, 0.045]
sigma = [0.17, 0.06]
correlation = [[1.0, 0.3], [0.3, 1.0]]

[[population]]
name = "rational"
kind = "merton"
count = 2
alpha = [0.1, 0.4]
wealth = 10.0

[[population]]
name = "noise"
kind = "noise"
count = 8
proportion = { dist = "uniform", low = 0.0, high = 1.0 }
wealth = 10.0

[record]
every = 2

[sweep]
"run.seed" = [11, 12]
"""

# Split by agents: a Merton leader (replicated on every rank), herd followers (adaptive and plan) and noise traders
# drawing every step, each large enough for 3 blocks of 4096 agents (2 ranks: blocks of 1 and 2, uneven; 3 ranks:
# the last block short), with price impact: the market's flow is exchanged every step.
AGENTS = """
[run]
seed = 3
paths = 2
horizon = 1
steps_per_year = 3

[market.impact]
lambda = 0.5
depth = 200000.0

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
policy = "adaptive"
count = 9000
alpha = { lottery_prob = [0.5, 0.9] }
theta = { score = [1, 5, 10] }
wealth = 10.0

[[population]]
name = "planners"
kind = "herd"
herd = "absolute"
influence = "leader"
leader = "advisor"
policy = "plan"
count = 8200
alpha = { lottery_prob = [0.5, 0.9] }
theta = { score = [1, 5, 10] }
wealth = 10.0

[[population]]
name = "noise"
kind = "noise"
count = 8193
proportion = { dist = "uniform", low = 0.0, high = 1.0 }
wealth = { dist = "uniform", low = 5.0, high = 15.0 }

[record]
every = 1
quantiles = [0.1, 0.5, 0.9]
"""
# The followers herding with their peers on a network instead of the advisor.
PEERS = AGENTS.replace('influence = "leader"\nleader = "advisor"\npolicy = "adaptive"',
                       'influence = "peers"\npolicy = "adaptive"\nnetwork = { kind = "erdos_renyi", p = 0.001 }')
# The same without price impact (an exogenous market: nothing crosses the agents).
AGENTS_EXOGENOUS = AGENTS.replace("[market.impact]\nlambda = 0.5\ndepth = 200000.0\n", "")

# Attributes that say when and how a file was made, not what it holds.
PROVENANCE = {"created", "command_line"}
# Attributes holding object references (dimension scales): their values are addresses inside one file, so
# they differ between files; the scales they attach are compared by name instead.
REFERENCES = {"DIMENSION_LIST", "REFERENCE_LIST"}


def scales(dataset):
    """The names of the dimension scales attached to each axis of a dataset."""
    return [[scale.name for scale in axis.values()] for axis in dataset.dims]


def mpirun_command(ranks, *args):
    """`mpirun -np RANKS herdsim ARGS` (oversubscribed: ranks x threads may exceed the cores) and its
    environment (Open MPI refuses to run as root, as in containers, without these two variables)."""
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    return [MPIRUN, "--oversubscribe", "--bind-to", "none", "-np", str(ranks), support.HERDSIM, *args], env


def mpirun(ranks, *args, timeout=120):
    """The job to completion: its CompletedProcess, stdout and stderr as text."""
    command, env = mpirun_command(ranks, *args)
    return subprocess.run(command, capture_output=True, text=True, errors="replace", timeout=timeout, env=env)


def start_mpirun(ranks, *args):
    """The job in the background, stdout and stderr piped as text."""
    command, env = mpirun_command(ranks, *args)
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def running_with(argument):
    """Pids of the processes whose command line has `argument` (ranks left behind)."""
    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if argument.encode() in f.read().split(b"\0"):
                    pids.append(int(pid))
        except OSError:
            pass
    return pids


def objects(f):
    """{name: h5py object} of every group and dataset, following links (external ones included)."""
    out = {}

    def walk(group, prefix):
        for name in group:
            obj = group[name]
            path = f"{prefix}/{name}"
            out[path] = obj
            if isinstance(obj, h5py.Group):
                walk(obj, path)

    walk(f, "")
    return out


class SameFileTest(support.TempDirTest):
    def compare_text(self, path):
        """`herdsim compare`'s report of a file, run from another working directory, with the time it ran
        and the file's name taken out."""
        res = support.herdsim("compare", "-q", path, "--no-sidecar", cwd="/")
        self.assertEqual(res.returncode, 0, res.stderr)
        text = re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", "TIME", res.stdout)
        return text.replace(path, "FILE").replace(os.path.basename(path), "FILE")

    def assert_same_file(self, expected_path, actual_path, min_datasets=40):
        """Every group and dataset of one file is in the other, with the same attributes and the same
        bytes (dtype, shape, values; NaN equal to NaN)."""
        with h5py.File(expected_path, "r") as e, h5py.File(actual_path, "r") as a:
            self.assertEqual(int(a.attrs["complete"]), 1)
            for key in set(e.attrs) - PROVENANCE:
                self.assertEqual(str(e.attrs[key]), str(a.attrs[key]), f"root attribute {key}")
            eo, ao = objects(e), objects(a)
            self.assertEqual(sorted(eo), sorted(ao), actual_path)
            datasets = 0
            for name, obj in eo.items():
                other = ao[name]
                self.assertEqual(type(obj), type(other), name)
                self.assertEqual(sorted(obj.attrs), sorted(other.attrs), name)
                for key in set(obj.attrs) - REFERENCES:
                    np.testing.assert_array_equal(obj.attrs[key], other.attrs[key], f"{name} attribute {key}")
                if isinstance(obj, h5py.Dataset):
                    datasets += 1
                    self.assertEqual(scales(obj), scales(other), name)
                    self.assertEqual(obj.dtype, other.dtype, name)
                    self.assertEqual(obj.shape, other.shape, name)
                    x, y = obj[()], other[()]
                    if obj.dtype.kind in "fiu":
                        self.assertEqual(np.ascontiguousarray(x).tobytes(), np.ascontiguousarray(y).tobytes(), name)
                    else:
                        np.testing.assert_array_equal(x, y, name)
            self.assertGreater(datasets, min_datasets)


class MpiSweepTest(SameFileTest):

    def test_every_rank_and_thread_count_gives_the_single_process_file(self):
        scenario = self.scenario(SWEEP)
        serial = self.path("serial.h5")
        res = support.herdsim("run", "-q", scenario, "-o", serial, "--threads", "1")
        self.assertEqual(res.returncode, 0, res.stderr)
        for ranks in (1, 2, 3):
            for threads in (1, 2):
                with self.subTest(ranks=ranks, threads=threads):
                    master = self.path(f"dist-{ranks}-{threads}.h5")
                    res = mpirun(ranks, "run", scenario, "-o", master, "--threads", str(threads))
                    self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
                    if ranks > 1:
                        self.assertIn(f"on {ranks} ranks", res.stdout)
                        self.assertTrue(os.path.isdir(master + ".parts"))
                        with h5py.File(master, "r") as f:  # links, not copies
                            for group in ("sweep_000", "sweep_003"):
                                link = f.get(group, getlink=True)
                                self.assertIsInstance(link, h5py.ExternalLink)
                                self.assertTrue(link.filename.startswith(os.path.basename(master) + ".parts/run-"))
                    self.assert_same_file(serial, master)
                    merged = self.path(f"one-{ranks}-{threads}.h5")
                    res = support.herdsim("merge", master, "-o", merged)
                    self.assertEqual(res.returncode, 0, res.stderr)
                    self.assert_same_file(serial, merged)
                    with h5py.File(merged, "r") as f:  # self-contained: no link left
                        self.assertIsInstance(f.get("sweep_000", getlink=True), h5py.HardLink)

    def test_merge_keeps_dimension_scales_inside_the_copied_groups(self):
        # The writer attaches dimension scales (object references inside a run group): merge makes them
        # references to the copies in the merged file, the same attachments as in the parts.
        scenario = self.scenario(SWEEP)
        master = self.path("dist.h5")
        self.assertEqual(mpirun(2, "run", "-q", scenario, "-o", master).returncode, 0)
        expected = {}
        with h5py.File(master, "r") as f:  # read through the links: the parts' own attachments
            for group in ("sweep_000", "sweep_003"):
                for name in ("market/price", "populations/followers/wealth"):
                    expected[f"{group}/{name}"] = scales(f[f"{group}/{name}"])
        self.assertTrue(all(expected["sweep_000/market/price"]), expected)  # every axis has a scale
        merged = self.path("one.h5")
        res = support.herdsim("merge", master, "-o", merged)
        self.assertEqual(res.returncode, 0, res.stderr)
        for root, _, files in os.walk(master + ".parts"):  # the merged file needs no part
            for name in files:
                os.remove(os.path.join(root, name))
        with h5py.File(merged, "r") as f:
            for path, want in expected.items():
                self.assertEqual(scales(f[path]), want, path)
                for axis in f[path].dims:
                    for scale in axis.values():  # the copies' values, not a dangling reference
                        np.testing.assert_array_equal(scale[()], f[scale.name][()])
        # A plain one-process file (one run) merges the same way.
        single = self.path("single.h5")
        self.assertEqual(support.herdsim("run", "-q", self.scenario(SWEEP.split("[sweep]")[0], "one.toml"), "-o",
                                         single).returncode, 0)
        with h5py.File(single, "r") as f:
            want = scales(f["market/price"])
        self.assertTrue(all(want), want)
        copy = self.path("single_copy.h5")
        res = support.herdsim("merge", single, "-o", copy)
        self.assertEqual(res.returncode, 0, res.stderr)
        with h5py.File(copy, "r") as f:
            self.assertEqual(scales(f["market/price"]), want)

    def test_analysis_reads_the_master_file(self):
        scenario = self.scenario(SWEEP)
        master = self.path("dist.h5")
        res = mpirun(2, "run", "-q", scenario, "-o", master)
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        serial = self.path("serial.h5")
        self.assertEqual(support.herdsim("run", "-q", scenario, "-o", serial).returncode, 0)
        # compare and export read the master from another working directory (links resolve beside the file).
        self.assertEqual(self.compare_text(master), self.compare_text(serial))
        csv = self.path("export.csv")
        res = support.herdsim("export", master, "--population", "followers", "--group", "/sweep_001", "-o", csv,
                              cwd="/")
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertGreater(os.path.getsize(csv), 100)
        report = self.path("report")
        res = support.herdsim("report", master, "-o", report, cwd="/")
        self.assertEqual(res.returncode, 0, res.stderr)
        figures = [name for name in os.listdir(report) if name.endswith(".png")]
        for g in range(4):  # one set of figures per sweep point, read through the links
            self.assertTrue(any(name.startswith(f"g{g}_followers") for name in figures), figures)
        sys.path.insert(0, TOOLS)
        import herdsim_load
        with herdsim_load.load_run(master, group="/sweep_003") as run, h5py.File(serial, "r") as f:
            np.testing.assert_array_equal(run.population("followers").wealth,
                                          f["sweep_003/populations/followers/wealth"][()])

    def test_a_second_run_into_the_same_output_keeps_the_first_until_it_commits(self):
        scenario = self.scenario(SWEEP)
        master = self.path("dist.h5")
        self.assertEqual(mpirun(2, "run", "-q", scenario, "-o", master).returncode, 0)
        first = os.listdir(master + ".parts")
        self.assertEqual(len(first), 1)
        # A failing second run leaves the first master and its parts as they were.
        failing = self.scenario(SWEEP.replace("wealth = 10.0\n\n[record]", "wealth = 1.7e308\n\n[record]"), "f.toml")
        self.assertEqual(mpirun(2, "run", "-q", failing, "-o", master, timeout=60).returncode, 1)
        with h5py.File(master, "r") as f:
            self.assertEqual(int(f.attrs["complete"]), 1)
            self.assertEqual(f["sweep_001/populations/noise/wealth"].shape[0], 7)
        # A successful one replaces them: one parts folder, the new one.
        self.assertEqual(mpirun(3, "run", "-q", scenario, "-o", master).returncode, 0)
        second = os.listdir(master + ".parts")
        self.assertEqual(len(second), 1)
        self.assertNotEqual(first, second)
        self.assertEqual(sorted(os.listdir(os.path.join(master + ".parts", second[0]))),
                         ["rank-0.h5", "rank-1.h5", "rank-2.h5"])

    def test_a_failing_sweep_point_stops_every_rank(self):
        # Point 1's wealth overflows in its first step (a failed computation, exit 1 on one process).
        text = SWEEP.split("[sweep]")[0] + '[sweep]\n"population.noise.wealth" = [10.0, 1.7e308, 10.0, 10.0]\n'

        scenario = self.scenario(text)
        for ranks in (2, 3):
            with self.subTest(ranks=ranks):
                master = self.path(f"fail-{ranks}.h5")
                res = mpirun(ranks, "run", "-q", scenario, "-o", master, timeout=60)
                self.assertEqual(res.returncode, 1, res.stdout + res.stderr)
                self.assertIn("herdsim run: failed", res.stderr)
                self.assertIn("infinite", res.stderr)
                self.assertEqual(res.stderr.count("herdsim run: failed"), 1, res.stderr)
                self.assertIn("failed; stopping every rank", res.stderr)
                self.assertFalse(os.path.exists(master))  # no master file, complete-looking or not

    def test_sigterm_to_mpirun_stops_every_rank_without_a_master_file(self):
        # Points long enough (minutes) that the signal always comes first; the test waits until both ranks
        # are recording, then stops the job.
        long = (SWEEP.replace("horizon = 3", "horizon = 1000").replace("steps_per_year = 2", "steps_per_year = 1")
                .replace("count = 10\n", "count = 1000000\n").replace("every = 1", "every = 1000"))
        scenario = self.scenario(long)
        master = self.path("term.h5")
        proc = start_mpirun(2, "run", "-q", scenario, "-o", master, "--threads", "1")
        try:
            for _ in range(600):
                partials = [name for root, _, files in os.walk(master + ".parts") for name in files
                            if name.endswith(".h5.partial")]
                if len(partials) == 2 or proc.poll() is not None:
                    break
                time.sleep(0.1)
            self.assertEqual(len(partials), 2)
            time.sleep(0.5)
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        self.assertNotEqual(proc.returncode, 0, err)
        # What the ranks said ("interrupted at step ...; rank K of 2 was stopped") may be lost with mpirun's
        # output forwarding as it stops; what must hold: no rank left running, no master file, parts incomplete.
        time.sleep(1)
        self.assertEqual(running_with(scenario), [])
        self.assertFalse(os.path.exists(master))
        for root, _, files in os.walk(master + ".parts"):
            for name in files:
                self.assertTrue(name.endswith(".partial"), name)

    def test_bad_output_is_agreed_on_by_every_rank(self):
        scenario = self.scenario(SWEEP)
        res = mpirun(3, "run", "-q", scenario, "-o", self.path("missing/dist.h5"))
        self.assertEqual(res.returncode, 2, res.stdout + res.stderr)
        self.assertEqual(res.stderr.count("herdsim run:"), 2, res.stderr)  # the reason, then "nothing was run"
        self.assertIn("nothing was run", res.stderr)
        self.assertNotIn("MPI_ABORT", res.stderr)

    def test_a_single_run_is_refused_by_split_sweep_with_the_reason(self):
        scenario = self.scenario(SWEEP.split("[sweep]")[0])
        res = mpirun(2, "run", "-q", scenario, "-o", self.path("one.h5"), "--split", "sweep")
        self.assertEqual(res.returncode, 2, res.stdout + res.stderr)
        self.assertIn("is one run: --split sweep needs a sweep", res.stderr)
        self.assertEqual(res.stderr.count("needs a sweep"), 1)
        self.assertFalse(os.path.exists(self.path("one.h5")))


def virtual_datasets(path):
    """Names of the virtual datasets of a file (a path-split master's stitched ones)."""
    with h5py.File(path, "r") as f:
        return sorted(name for name, obj in objects(f).items() if isinstance(obj, h5py.Dataset) and obj.is_virtual)


class MpiPathSplitTest(SameFileTest):
    """One run's paths split across ranks: the master file's virtual datasets and the merged copy hold the
    single-process file's datasets, summaries (exact quantiles over every path) included."""

    def run_both_ways(self, text, ranks_list=(1, 2, 3), threads_list=(1, 2), extra=()):
        scenario = self.scenario(text)
        serial = self.path("serial.h5")
        res = support.herdsim("run", "-q", scenario, "-o", serial, "--threads", "1")
        self.assertEqual(res.returncode, 0, res.stderr)
        for ranks in ranks_list:
            for threads in threads_list:
                with self.subTest(ranks=ranks, threads=threads):
                    master = self.path(f"paths-{ranks}-{threads}.h5")
                    res = mpirun(ranks, "run", scenario, "-o", master, "--threads", str(threads), *extra)
                    self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
                    if ranks > 1:
                        self.assertIn(f"split by paths on {ranks} ranks", res.stdout)
                        stitched = virtual_datasets(master)
                        self.assertTrue(any(name.endswith("/wealth") and "/summary/" not in name for name in stitched),
                                        stitched)
                        self.assertFalse(any("/summary/" in name for name in stitched), stitched)
                    self.assert_same_file(serial, master, 20)  # read through the virtual datasets
                    merged = self.path(f"paths-one-{ranks}-{threads}.h5")
                    res = support.herdsim("merge", master, "-o", merged)
                    self.assertEqual(res.returncode, 0, res.stderr)
                    self.assertEqual(virtual_datasets(merged), [])  # self-contained
                    self.assert_same_file(serial, merged, 20)
        return scenario, serial

    def test_path_split_gives_the_single_process_file(self):
        self.run_both_ways(PATHS)

    def test_path_split_of_a_sweep_with_schema_2_gives_the_single_process_file(self):
        self.run_both_ways(ASSETS, ranks_list=(2, 3), threads_list=(1,), extra=("--split", "paths"))

    def test_the_master_file_is_read_by_compare_export_and_the_loader(self):
        scenario = self.scenario(PATHS)
        master = self.path("paths.h5")
        res = mpirun(2, "run", "-q", scenario, "-o", master)
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        serial = self.path("serial.h5")
        self.assertEqual(support.herdsim("run", "-q", scenario, "-o", serial).returncode, 0)
        self.assertEqual(self.compare_text(master), self.compare_text(serial))  # parts found beside the master
        csvs = {}
        for name, path in (("master", master), ("serial", serial)):
            csv = self.path(f"export-{name}.csv")
            res = support.herdsim("export", path, "--population", "noise", "-o", csv, cwd="/")
            self.assertEqual(res.returncode, 0, res.stderr)
            with open(csv) as f:
                csvs[name] = f.read()
        self.assertEqual(csvs["master"], csvs["serial"])
        sys.path.insert(0, TOOLS)
        import herdsim_load
        with herdsim_load.load_run(master) as run, h5py.File(serial, "r") as f:
            np.testing.assert_array_equal(run.population("noise").wealth, f["populations/noise/wealth"][()])
        # xarray (docs/python.md) names the same dimensions and coordinates in the master and the merged file.
        try:
            import xarray
        except ImportError:
            self.skipTest("xarray is not installed: the master file's dimension scales not read by xarray")
        merged = self.path("merged.h5")
        self.assertEqual(support.herdsim("merge", master, "-o", merged).returncode, 0)
        for group in ("populations/noise", "populations/noise/summary", "market"):
            with xarray.open_dataset(serial, group=group, engine="h5netcdf") as want:
                for path in (master, merged):
                    with xarray.open_dataset(path, group=group, engine="h5netcdf") as got:
                        xarray.testing.assert_identical(got, want)

    def test_a_missing_or_incomplete_part_is_refused(self):
        scenario = self.scenario(PATHS)
        master = self.path("paths.h5")
        self.assertEqual(mpirun(2, "run", "-q", scenario, "-o", master).returncode, 0)
        (folder,) = os.listdir(master + ".parts")
        part = os.path.join(master + ".parts", folder, "rank-1.h5")
        with h5py.File(part, "a") as f:  # an unfinished part
            f.attrs["complete"] = np.int32(0)
        # compare reports an unreadable input with exit 2, merge a failed copy with exit 1 (their conventions).
        for code, command in ((2, ("compare", "-q", master, "--no-sidecar")), (1, ("merge", master, "-o", self.path("m1.h5")))):
            res = support.herdsim(*command)
            self.assertEqual(res.returncode, code, res.stdout + res.stderr)
            self.assertIn("rank-1.h5", res.stderr)
            self.assertIn("is incomplete", res.stderr)
        os.remove(part)
        for code, command in ((2, ("compare", "-q", master, "--no-sidecar")), (1, ("merge", master, "-o", self.path("m2.h5")))):
            res = support.herdsim(*command)
            self.assertEqual(res.returncode, code, res.stdout + res.stderr)
            self.assertIn("rank-1.h5", res.stderr)
            self.assertIn("is missing", res.stderr)
        self.assertFalse(os.path.exists(self.path("m1.h5")) or os.path.exists(self.path("m2.h5")))

    def test_runs_that_cannot_be_split_by_paths_are_refused(self):
        for text, reason in ((PATHS.replace("paths = 7", "paths = 2"), "fewer than the 3 ranks"),
                             (PATHS + "paths = [0, 3]\n", "record.paths")):
            with self.subTest(reason=reason):
                scenario = self.scenario(text, "refused.toml")
                res = mpirun(3, "run", "-q", scenario, "-o", self.path("refused.h5"))
                self.assertEqual(res.returncode, 2, res.stdout + res.stderr)
                self.assertEqual(res.stderr.count("cannot split the paths"), 1, res.stderr)
                self.assertIn(reason, res.stderr)
                self.assertFalse(os.path.exists(self.path("refused.h5")))

    def test_each_rank_checks_the_memory_of_its_own_block(self):
        # 1000 agents x 1000 paths, nothing recorded: about 24 MiB on one process, 12 MiB per rank on two.
        scenario = self.scenario("[run]\nseed = 1\npaths = 1000\nhorizon = 1\nsteps_per_year = 12\n"
                                 "[record]\nenabled = false\n[[population]]\nname = \"m\"\nkind = \"merton\"\n"
                                 "count = 1000\nalpha = 0.2\nwealth = 10.0\n", "memory.toml")
        res = support.herdsim("run", "-q", scenario, "-o", self.path("one.h5"), "--memory-limit", "0.018")
        self.assertEqual(res.returncode, 2, res.stderr)
        self.assertIn("this run needs about", res.stderr)
        res = mpirun(2, "run", "-q", scenario, "-o", self.path("two.h5"), "--memory-limit", "0.018")
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        # Too small for a rank's block: every rank stops before any work, with one message and no file.
        res = mpirun(2, "run", "-q", scenario, "-o", self.path("small.h5"), "--memory-limit", "0.01")
        self.assertEqual(res.returncode, 2, res.stdout + res.stderr)
        self.assertEqual(res.stderr.count("one rank's block of this run needs about"), 1, res.stderr)
        self.assertFalse(os.path.exists(self.path("small.h5")))


class MpiAgentSplitTest(SameFileTest):
    """The large populations of one run split into blocks of agents across ranks, the leader replicated: the
    master file's virtual datasets (along the agent axis) and the merged copy hold the single-process file's
    datasets, summaries over every agent included."""

    def split_by_agents(self, text, runs):
        scenario = self.scenario(text)
        serial = self.path("serial.h5")
        res = support.herdsim("run", "-q", scenario, "-o", serial, "--threads", "2")
        self.assertEqual(res.returncode, 0, res.stderr)
        for ranks, threads in runs:
            with self.subTest(ranks=ranks, threads=threads):
                master = self.path(f"agents-{ranks}-{threads}.h5")
                res = mpirun(ranks, "run", scenario, "-o", master, "--threads", str(threads), "--split", "agents")
                self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
                if ranks > 1:
                    self.assertIn(f"split by agents on {ranks} ranks", res.stdout)
                    stitched = virtual_datasets(master)
                    self.assertIn("/populations/followers/wealth", stitched)
                    self.assertIn("/populations/noise/params/wealth0", stitched)
                    self.assertFalse(any("/advisor/" in name or "/summary/" in name or "/market/" in name
                                         for name in stitched), stitched)
                    with h5py.File(master, "r") as f:
                        self.assertEqual(int(f["populations/followers"].attrs["count"]), 9000)
                    with h5py.File(os.path.join(master + ".parts", os.listdir(master + ".parts")[0], "rank-1.h5"),
                                   "r") as f:  # a rank holds its block only
                        self.assertLess(f["populations/followers/wealth"].shape[2], 9000)
                self.assert_same_file(serial, master, 20)
                merged = self.path(f"agents-one-{ranks}-{threads}.h5")
                res = support.herdsim("merge", master, "-o", merged)
                self.assertEqual(res.returncode, 0, res.stderr)
                self.assertEqual(virtual_datasets(merged), [])
                self.assert_same_file(serial, merged, 20)
        return scenario, serial

    def test_agent_split_with_price_impact_gives_the_single_process_file(self):
        scenario, serial = self.split_by_agents(AGENTS, ((1, 1), (2, 1), (2, 2), (3, 1), (3, 2)))
        # The exchange is measured on every step: three steps, one exchange per split population each.
        master = self.path("measured.h5")
        res = mpirun(2, "run", scenario, "-o", master, "--split", "agents")
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        self.assertIn("agent exchange on rank 0: 9 exchanges in 3 steps", res.stdout)
        # compare and the loader read the master; xarray sees the same coordinates.
        self.assertEqual(self.compare_text(master), self.compare_text(serial))
        sys.path.insert(0, TOOLS)
        import herdsim_load
        with herdsim_load.load_run(master) as run, h5py.File(serial, "r") as f:
            np.testing.assert_array_equal(run.population("followers").wealth, f["populations/followers/wealth"][()])
        try:
            import xarray
        except ImportError:
            self.skipTest("xarray is not installed")
        for group in ("populations/followers", "populations/noise/summary", "market"):
            with xarray.open_dataset(serial, group=group, engine="h5netcdf") as want:
                with xarray.open_dataset(master, group=group, engine="h5netcdf") as got:
                    xarray.testing.assert_identical(got, want)

    def test_agent_split_of_an_exogenous_market_gives_the_single_process_file(self):
        self.split_by_agents(AGENTS_EXOGENOUS, ((3, 1),))

    def test_agent_split_of_peers_on_a_network_gives_the_single_process_file(self):
        # The followers herd with their peers on a network: every step each rank gathers every agent's
        # previous decisions (one exchange more per step than the market's flow: 4 in all).
        scenario, serial = self.split_by_agents(PEERS, ((2, 1), (3, 2)))
        res = mpirun(2, "run", scenario, "-o", self.path("measured.h5"), "--split", "agents")
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        self.assertIn("agent exchange on rank 0: 12 exchanges in 3 steps", res.stdout)

    def test_runs_that_cannot_be_split_by_agents_are_refused(self):
        peers = PEERS.replace('policy = "adaptive"\nnetwork', 'policy = "replan"\nnetwork')
        for text, ranks, reason in ((AGENTS.replace("count = 9000", "count = 90")
                                                      .replace("count = 8200", "count = 82")
                                                      .replace("count = 8193", "count = 81"), 2, "nothing to split"),
                                    (peers, 2, 'peers on a network with policy = "replan"'),
                                    (AGENTS + "max_agents = 10\n", 2, "record.max_agents")):
            with self.subTest(reason=reason):
                scenario = self.scenario(text, "refused.toml")
                res = mpirun(ranks, "run", "-q", scenario, "-o", self.path("refused.h5"), "--split", "agents")
                self.assertEqual(res.returncode, 2, res.stdout + res.stderr)
                self.assertEqual(res.stderr.count("cannot split the agents"), 1, res.stderr)
                self.assertIn(reason, res.stderr)
                self.assertFalse(os.path.exists(self.path("refused.h5")))

    def test_auto_splits_by_agents_when_a_block_of_paths_does_not_fit(self):
        # One run of 2 paths and 100 steps on 2 ranks: a block of paths holds every agent's plan (agents x
        # steps), a block of agents half of them. A limit between the two estimates makes auto split the
        # agents; below both, nothing runs.
        text = (AGENTS.replace("horizon = 1\nsteps_per_year = 3", "horizon = 100\nsteps_per_year = 1")
                .replace("[record]\nevery = 1", "[record]\nenabled = false"))
        scenario = self.scenario(text, "auto.toml")
        estimates = {}
        for split, what in (("paths", "one rank's block of this run"), ("agents", "one rank's block of agents of this run")):
            res = mpirun(2, "run", scenario, "-o", self.path("none.h5"), "--split", split, "--memory-limit", "1e-6")
            self.assertEqual(res.returncode, 2, res.stdout + res.stderr)
            found = re.search(re.escape(what) + r" needs about ([0-9.]+) MiB", res.stderr)
            self.assertIsNotNone(found, res.stderr)
            estimates[split] = float(found.group(1))
        self.assertLess(estimates["agents"], estimates["paths"] * 0.75, estimates)
        limit = (estimates["agents"] + estimates["paths"]) / 2 / 1024
        res = mpirun(2, "run", scenario, "-o", self.path("auto.h5"), "--memory-limit", str(limit))
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        self.assertIn("split by agents on 2 ranks", res.stdout)
        res = mpirun(2, "run", scenario, "-o", self.path("small.h5"), "--memory-limit", "1e-6")
        self.assertEqual(res.returncode, 2, res.stdout + res.stderr)
        self.assertEqual(res.stderr.count("one rank's block of this run needs about"), 1, res.stderr)
        self.assertFalse(os.path.exists(self.path("small.h5")))


# LLM populations (InvestAgents) answered by the closed-form reference answer sources: plans asked once at
# t = 0 (absolute), in two stages (relative), with a peer (mutual), and per (agent, path) every step (step:
# the answer depends on the path's wealth); 5 paths, so 2 and 3 ranks get uneven blocks. Small batches: a
# population's requests span several backend calls, each shared out among the ranks.
LLM = """
[run]
seed = 4
paths = 5
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
count = 5
alpha = { lottery_prob = [0.6, 0.9] }
theta = { score = [0, 10] }
wealth = 10.0
[population.inference]
backend = "reference"
answerer = "p3_closed_form"
batch = 2

[[population]]
name = "relatives"
kind = "investagent"
protocol = "relative"
leader = "advisor"
count = 3
alpha = { lottery_prob = 0.7 }
theta = { score = [1, 8] }
wealth = 10.0
[population.inference]
backend = "reference"
answerer = "own_theory"
batch = 4

[[population]]
name = "pairs"
kind = "investagent"
protocol = "mutual"
leader = "advisor"
count = 4
alpha = { lottery_prob = [0.5, 0.9] }
theta = { score = 10 }
wealth = 10.0
[population.inference]
backend = "reference"
answerer = "own_theory"
batch = 3

[[population]]
name = "steppers"
kind = "investagent"
protocol = "step"
leader = "advisor"
count = 3
alpha = { lottery_prob = 0.7 }
theta = { score = [2, 9] }
wealth = 10.0
[population.inference]
backend = "reference"
answerer = "p3_closed_form"
batch = 4

[[population]]
name = "noise"
kind = "noise"
count = 4
proportion = 0.5
wealth = 10.0

[record]
every = 1
quantiles = [0.1, 0.5]
"""

# Transcript columns that time the request (they differ between any two runs) and the population
# attributes that do.
TIMED = {"time_ms"}
TIMED_ATTRIBUTES = {"inference_seconds"}


def requests_of(stderr):
    """The requests each rank says it decided (`rank K/N: decided D inference requests`)."""
    return [int(d) for d in re.findall(r"rank \d+/\d+: decided (\d+) inference requests", stderr)]


class MpiLlmTest(SameFileTest):
    """LLM populations under MPI: a path split decides each request on one rank (each rank its own paths'
    requests, the path-independent plans shared out) and its master file holds the one-process file's
    datasets, transcripts included; a sweep split decides each point on one rank."""

    def assert_same_llm_file(self, expected_path, actual_path):
        """assert_same_file, but for the columns and attributes that time requests."""
        with h5py.File(expected_path, "r") as e, h5py.File(actual_path, "r") as a:
            for name, obj in objects(e).items():
                if isinstance(obj, h5py.Group) and "transcripts" in obj:
                    for key in TIMED_ATTRIBUTES:
                        self.assertIn(key, a[name].attrs, name)
        # Compare on copies with the timed values taken out (the merged copy of the master is self-contained).
        copies = []
        for path in (expected_path, actual_path):
            copy = path + ".untimed.h5"
            if os.path.exists(copy):
                os.remove(copy)
            res = support.herdsim("merge", path, "-o", copy)
            self.assertEqual(res.returncode, 0, res.stderr)
            with h5py.File(copy, "a") as f:
                for name, obj in objects(f).items():
                    if isinstance(obj, h5py.Dataset) and name.rsplit("/", 1)[-1] in TIMED:
                        obj[...] = 0.0
                    elif isinstance(obj, h5py.Group):
                        for key in TIMED_ATTRIBUTES & set(obj.attrs):
                            obj.attrs[key] = 0.0
            copies.append(copy)
        self.assert_same_file(*copies, 40)

    def test_path_split_decides_each_request_once_and_gives_the_single_process_file(self):
        scenario = self.scenario(LLM)
        serial = self.path("serial.h5")
        res = support.herdsim("run", scenario, "-o", serial, "--threads", "1")
        self.assertEqual(res.returncode, 0, res.stderr)
        total = int(re.search(r"inference: (\d+) requests", res.stdout + res.stderr).group(1))
        # 5 + 3 + 3 + 4 plans and changes, 3 steppers x 5 paths x 3 steps.
        self.assertEqual(total, 5 + 3 + 3 + 4 + 3 * 5 * 3)
        with h5py.File(serial, "r") as f:
            self.assertEqual(sum(len(f[f"populations/{p}/transcripts/step"]) for p in
                                 ("planners", "relatives", "pairs", "steppers")), total)
        for ranks in (1, 2, 3):
            with self.subTest(ranks=ranks):
                master = self.path(f"llm-{ranks}.h5")
                res = mpirun(ranks, "run", scenario, "-o", master, "--threads", "1", "--split", "paths")
                self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
                if ranks > 1:
                    self.assertIn(f"split by paths on {ranks} ranks", res.stdout)
                    decided = requests_of(res.stderr)
                    self.assertEqual(len(decided), ranks, res.stderr)
                    self.assertEqual(sum(decided), total, res.stderr)  # nothing decided twice, nothing left out
                    self.assertTrue(all(d > 0 for d in decided), decided)
                    with h5py.File(master, "r") as f, h5py.File(serial, "r") as one:
                        # Transcripts are real datasets in the master, in the one-process order; the amounts
                        # are read through the virtual datasets.
                        self.assertFalse(f["populations/steppers/transcripts/output"].is_virtual)
                        self.assertTrue(f["populations/steppers/amount"].is_virtual)
                        for population in ("planners", "relatives", "pairs", "steppers"):
                            for name in ("amount", "transcripts/path", "transcripts/seed", "transcripts/output",
                                         "transcripts/values", "transcripts/valid"):
                                np.testing.assert_array_equal(f[f"populations/{population}/{name}"][()],
                                                              one[f"populations/{population}/{name}"][()],
                                                              f"{population}/{name}")
                self.assert_same_llm_file(serial, master)

    def test_sweep_split_decides_each_point_on_one_rank(self):
        scenario = self.scenario(LLM + '[sweep]\n"run.seed" = [4, 5]\n')
        serial = self.path("serial.h5")
        res = support.herdsim("run", scenario, "-o", serial, "--threads", "1")
        self.assertEqual(res.returncode, 0, res.stderr)
        master = self.path("sweep.h5")
        res = mpirun(2, "run", "-q", scenario, "-o", master, "--threads", "1")
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        self.assertIn("2 runs on 2 ranks", res.stdout)
        self.assert_same_llm_file(serial, master)

    def test_ranks_share_a_decision_cache_with_the_tiny_model(self):
        models, plugins = os.environ.get("HERDSIM_TEST_MODELS"), os.environ.get("HERDSIM_PLUGIN_PATH")
        if not models or not plugins:
            self.skipTest("the llama.cpp plugin and the tiny test models are not built")
        # Sampled answers (temperature 1): each request's seed is keyed by its global path, so the ranks'
        # answers are the one-process answers; the ranks append to one cache at once (flock), and a second
        # run on 2 ranks answers every request from it, unchanged.
        model = os.path.join(models, "tiny-qwen2.gguf")
        text = ("[run]\nseed = 7\npaths = 3\nhorizon = 2\nsteps_per_year = 1\n"
                "[[population]]\nname = \"advisor\"\nkind = \"merton\"\nalpha = 0.2\nwealth = 10.0\n")
        for name, protocol in (("planners", "absolute"), ("steppers", "step")):
            text += (f"[[population]]\nname = \"{name}\"\nkind = \"investagent\"\nprotocol = \"{protocol}\"\n"
                     "leader = \"advisor\"\ncount = 2\nalpha = { lottery_prob = 0.7 }\ntheta = { score = 5 }\n"
                     f"wealth = 10.0\n[population.inference]\nbackend = \"llama\"\nmodel = \"{model}\"\n"
                     "threads = 1\nbatch = 2\nmax_tokens = 256\ntemperature = 1.0\n")
        scenario = self.scenario(text)
        serial = self.path("serial.h5")
        res = support.herdsim("run", "-q", scenario, "-o", serial, "--threads", "1")
        self.assertEqual(res.returncode, 0, res.stderr)
        cache = self.path("cache")
        for attempt in ("fresh", "cached"):
            master = self.path(f"{attempt}.h5")
            res = mpirun(2, "run", scenario, "-o", master, "--threads", "1", "--cache", cache, timeout=240)
            self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
            self.assertEqual(sum(requests_of(res.stderr)), 2 + 2 * 3 * 2, res.stderr)
            with h5py.File(serial, "r") as s, h5py.File(master, "r") as m:
                for population in ("planners", "steppers"):
                    want, got = s[f"populations/{population}/transcripts"], m[f"populations/{population}/transcripts"]
                    for column in ("step", "path", "agent", "seed", "prompt_hash", "output", "values", "valid"):
                        np.testing.assert_array_equal(want[column][()], got[column][()], f"{population} {column}")
                    np.testing.assert_array_equal(got["cache_hit"][()], 1 if attempt == "cached" else 0)
                    np.testing.assert_array_equal(s[f"populations/{population}/amount"][()],
                                                  m[f"populations/{population}/amount"][()])


class MpiEvaluateTest(support.TempDirTest):
    """`herdsim evaluate` under mpirun: its (column, problem) runs go to the ranks as they are free, each run on
    one rank alone, and rank 0 writes the one-process report."""

    def test_evaluate_hands_whole_runs_to_the_ranks_and_writes_the_one_process_report(self):
        args = ["--answerers", "p3_closed_form,advisor", "--problems", "P3,P1", "--seeds", "3", "--threads", "1",
                "--set", "population.investors.count=6"]
        one, two = self.path("one"), self.path("two")
        res = support.herdsim("evaluate", "-o", one, *args)
        self.assertEqual(res.returncode, 0, res.stderr)
        res = mpirun(2, "evaluate", "-o", two, *args)
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        for job in range(1, 5):  # each run on exactly one rank
            self.assertEqual(len(re.findall(rf"^\[{job}/4\] .* run\(s\), MSE", res.stderr, re.M)), 1, res.stderr)
        self.assertEqual(res.stdout.count("herdsim evaluate: 2 column(s) x 2 problem(s)"), 1, res.stdout)
        reports = []
        for folder in (one, two):
            with open(os.path.join(folder, "report.json")) as f:
                report = json.load(f)
            report.pop("created")
            reports.append(report)
            with open(os.path.join(folder, "report.md")) as f:
                reports.append(re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", "TIME", f.read()).replace(folder, "DIR"))
        self.assertEqual(reports[0], reports[2])
        self.assertEqual(reports[1], reports[3])
        for label in ("p3_closed_form", "advisor"):
            for run in ("p3.h5", "p1.h5"):
                with h5py.File(os.path.join(two, label, run), "r") as f:
                    self.assertEqual(int(f.attrs["complete"]), 1)
                self.assertFalse(os.path.exists(os.path.join(two, label, run + ".parts")))  # one process's file


if __name__ == "__main__":
    MPIRUN = sys.argv.pop(2)
    TOOLS = sys.argv.pop(2)
    support.main()
