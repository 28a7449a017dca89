#!/usr/bin/env python3
"""Run files are netCDF-4 readable (issue 15 item 5): `herdsim run` writes HDF5 dimension scales and
coordinate variables, so xarray (engine "h5netcdf") opens every group with named dimensions and coordinates,
and `ncdump -h` reads the file. Scenarios: one asset, several assets (schema 2), a sweep of LLM-backed
investors (the reference answerer: transcripts with their request and value axes) and a summaries-only run.
Every value xarray gives is checked against h5py's read of the same file; a file with the scales taken
out (what herdsim wrote before them) gives the same `compare` and `export` output.

Usage: test_xarray.py PATH_TO_HERDSIM SCENARIO_DIR
"""
import json
import os
import shutil
import subprocess
import unittest

import h5py
import numpy as np

import support

try:
    import xarray as xr
    import h5netcdf  # noqa: F401  (xarray's engine)
except ImportError as e:  # Debian: python3-xarray python3-h5netcdf (tools/setup.sh installs them)
    xr = None
    MISSING = str(e)

ONE_ASSET = """
[run]
seed = 3
paths = 4
horizon = 4
steps_per_year = 2

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
count = 12
alpha = { lottery_prob = [0.4, 0.6, 0.8] }
theta = { score = [0, 5] }
leader = "advisor"
wealth = 10.0

[record]
every = 3
paths = [0, 2, 3]
max_agents = 8
"""

ASSETS = """
[run]
seed = 9
paths = 3
horizon = 3
steps_per_year = 2

[market]
r = 0.04
names = ["stock", "bond", "gold"]
mu = [0.07, 0.05, 0.06]
sigma = [0.17, 0.06, 0.2]
correlation = [[1, 0.3, -0.2], [0.3, 1, 0.1], [-0.2, 0.1, 1]]

[[population]]
name = "m"
kind = "merton"
count = 2
alpha = [0.2, 0.4]
wealth = 10.0

[[population]]
name = "n"
kind = "noise"
count = 3
proportion = 0.6
wealth = 10.0
"""


def groups_of(path):
    """"/" and every group below it."""
    out = ["/"]
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: out.append("/" + name) if isinstance(obj, h5py.Group) else None)
    return out


def run_group_of(f, group):
    """The run group ("/" or "/sweep_NNN") a group belongs to."""
    parts = group.strip("/").split("/")
    return "/" + parts[0] if parts[0].startswith("sweep_") else "/"


def expected_coordinate(f, group, dim, size):
    """What the coordinate variable of `dim` in `group` must hold, read with h5py from the datasets and
    attributes that were there before the scales."""
    run = f[run_group_of(f, group)]
    if dim == "step":
        return run["time/step"][()]
    if dim == "decision_step":
        recorded = run["time/decision_step"][()]
        return recorded if len(recorded) == size else np.arange(run.attrs["steps"])  # theory/: every step
    if dim == "path":
        return run.attrs["paths"]
    if dim == "asset":
        return np.array(str(run.attrs["asset_names"]).split(","), dtype=object)
    if dim == "stat":
        return np.array(f[group].attrs["stats"].split(","), dtype=object)
    if dim in ("agent", "request", "value"):
        return np.arange(size)
    raise AssertionError(f"{group}: unexpected dimension {dim}")


def ncdump(path):
    return subprocess.run(["ncdump", "-h", path], capture_output=True, text=True, timeout=120)


def strip_scales(src, dst):
    """A copy of a run file as herdsim wrote it before dimension scales: no coordinate variables (the
    scales outside time/ and the datasets some `coordinates` attribute names) and none of their attributes."""
    added_attrs = {"DIMENSION_LIST", "REFERENCE_LIST", "CLASS", "NAME", "coordinates"}
    with h5py.File(src, "r") as f, h5py.File(dst, "w") as out:
        added = set()

        def find(name, obj):
            if not isinstance(obj, h5py.Dataset):
                return
            parent = name.rsplit("/", 1)[0] if "/" in name else ""
            if obj.attrs.get("CLASS") == b"DIMENSION_SCALE" and not parent.endswith("time"):
                added.add(name)
            for c in str(obj.attrs.get("coordinates", "")).split():
                added.add(f"{parent}/{c}" if parent else c)

        f.visititems(find)

        def copy_attrs(src_obj, dst_obj):
            for k, v in src_obj.attrs.items():
                if k not in added_attrs:
                    dst_obj.attrs.create(k, v, dtype=src_obj.attrs.get_id(k).dtype)

        def copy(name, obj):
            if name in added:
                return
            if isinstance(obj, h5py.Group):
                copy_attrs(obj, out.require_group(name))
            else:
                d = out.create_dataset(name, data=obj[()], dtype=obj.dtype, maxshape=obj.maxshape,
                                       chunks=obj.chunks)
                copy_attrs(obj, d)

        copy_attrs(f, out)
        f.visititems(copy)
        return sorted(added)


@unittest.skipIf(xr is None, f"xarray or h5netcdf missing ({'' if xr else MISSING}): "
                 "apt-get install python3-xarray python3-h5netcdf")
class Xarray(support.TempDirTest):
    def run_ok(self, *args):
        res = support.herdsim(*args, timeout=300)
        self.assertEqual(res.returncode, 0, f"herdsim {' '.join(args)}\n{res.stderr}")
        return res

    def record(self, text, *sets):
        out = self.path("run.h5")
        args = ["run", self.scenario(text), "-o", out, "-q"]
        for s in sets:
            args += ["--set", s]
        self.run_ok(*args)
        return out

    def check_file(self, path):
        """Every group through xarray against h5py; returns {group: xarray Dataset sizes}."""
        sizes = {}
        with h5py.File(path, "r") as f:
            for group in groups_of(path):
                with self.subTest(group=group):
                    with xr.open_dataset(path, group=group, engine="h5netcdf") as ds:
                        sizes[group] = dict(ds.sizes)
                        self.check_group(f, group, ds)
        self.check_ncdump(path)
        return sizes

    def check_group(self, f, group, ds):
        g = f[group]
        for dim, size in ds.sizes.items():
            self.assertFalse(dim.startswith("phony_dim"), f"{group}: anonymous dimension {dim}")
            if dim in ds.coords:  # the coordinate variable of the dimension, where the group has one
                want = expected_coordinate(f, group, dim, size)
                np.testing.assert_array_equal(np.asarray(ds[dim].values, dtype=want.dtype), want,
                                              err_msg=f"{group}: coordinate {dim}")
        # Every variable: the axes its `dims` attribute names, and h5py's values.
        for name, var in ds.variables.items():
            h5 = g[name]
            self.assertEqual(var.dims, tuple(h5.attrs["dims"].split(",")), f"{group}/{name}: dimensions")
            data = h5[()]
            if h5py.check_string_dtype(h5.dtype) is not None:
                data = h5.asstr()[()]
                np.testing.assert_array_equal(np.asarray(var.values, dtype=str), np.asarray(data, dtype=str))
            else:
                np.testing.assert_array_equal(var.values, data, err_msg=f"{group}/{name}")
        # Auxiliary coordinates: t in years, and the parameters of params/ on the agent axis.
        if "t" in ds.coords and group != run_group_of(f, group).rstrip("/") + "/time":
            run = f[run_group_of(f, group)]
            np.testing.assert_array_equal(ds["t"].values, run["time/t"][()])
        for name, values in (g["params"].items() if "params" in g else []):
            self.assertIn(name, ds.coords, f"{group}: parameter {name} is not an agent coordinate")
            np.testing.assert_array_equal(ds[name].values, values[()])
            self.assertEqual(ds[name].dims, ("agent",))

    def check_ncdump(self, path):
        if shutil.which("ncdump") is None:
            print("ncdump not installed (Debian: netcdf-bin): the ncdump check is skipped")
            return
        res = ncdump(path)
        self.assertEqual(res.returncode, 0, f"ncdump -h {path}\n{res.stderr}")
        self.assertNotIn("phony_dim", res.stdout)

    def test_one_asset(self):
        path = self.record(ONE_ASSET)
        sizes = self.check_file(path)
        self.assertEqual(sizes["/populations/followers"],
                         {"step": 4, "decision_step": 3, "path": 3, "agent": 8})
        self.assertEqual(sizes["/populations/followers/theory"], {"decision_step": 8, "agent": 8})
        self.assertEqual(sizes["/populations/followers/summary"], {"step": 4, "decision_step": 3, "stat": 9})
        with xr.open_dataset(path, group="populations/followers", engine="h5netcdf") as ds:
            # What a researcher does with it: select by coordinate, group by an investor parameter.
            self.assertEqual(list(ds["step"].values), [0, 3, 6, 8])
            self.assertEqual(list(ds["path"].values), [0, 2, 3])
            final = ds["wealth"].sel(step=8, path=2)
            self.assertEqual(final.dims, ("agent",))
            by_score = final.groupby("score").mean()
            self.assertEqual(sorted(by_score["score"].values.tolist()), [0.0, 5.0])
            self.assertEqual(ds["wealth"].coords["t"].values.tolist(), [0.0, 1.5, 3.0, 4.0])

    def test_several_assets(self):
        path = self.record(ASSETS)
        sizes = self.check_file(path)
        self.assertEqual(sizes["/market"], {"step": 7, "asset": 3, "path": 3, "decision_step": 6})
        self.assertEqual(sizes["/populations/m"], {"step": 7, "path": 3, "agent": 2, "decision_step": 6, "asset": 3})
        self.assertEqual(sizes["/populations/m/theory"], {"asset": 3, "decision_step": 6, "agent": 2})
        with xr.open_dataset(path, group="market", engine="h5netcdf") as ds:
            self.assertEqual(list(ds["asset"].values), ["stock", "bond", "gold"])
            self.assertEqual(ds["price"].sel(asset="bond").dims, ("step", "path"))

    def test_sweep_with_transcripts(self):
        # The reference answerer: investors with transcripts, two sweep points (run groups) in one file.
        with open(os.path.join(support.SCENARIOS, "investalign", "p1_relative.toml")) as fh:
            text = fh.read()
        path = self.record(text,
                           "population.investors.inference.backend=reference",
                           "population.investors.inference.answerer=merton", "sweep.run.seed=[37, 42]",
                           "population.investors.count=3")
        sizes = self.check_file(path)
        self.assertIn("/sweep_001/market", sizes)
        t = [g for g in sizes if g.endswith("/transcripts")]
        self.assertEqual(len(t), 2, sizes)
        self.assertEqual(set(sizes[t[0]]), {"request", "value"})

    def test_summaries_only(self):
        path = self.record(ONE_ASSET, "record.trajectories=false")
        sizes = self.check_file(path)
        self.assertEqual(sizes["/populations/followers"], {})
        self.assertEqual(sizes["/populations/followers/summary"], {"step": 4, "decision_step": 3, "stat": 9})

    def test_files_without_scales_read_the_same(self):
        """Files written before the scales: the same compare and export output, and xarray still opens them
        (phony dimensions, as before)."""
        path = self.record(ONE_ASSET)
        old = self.path("old.h5")
        added = strip_scales(path, old)
        self.assertIn("populations/followers/agent", added)
        self.assertIn("populations/followers/alpha", added)
        self.assertNotIn("time/step", added)
        with h5py.File(old, "r") as f:
            self.assertNotIn("DIMENSION_LIST", f["populations/followers/wealth"].attrs)

        def compare(p):
            doc = json.loads(self.run_ok("compare", p, "--format", "json", "--no-sidecar", "-q").stdout)
            return {k: v for k, v in doc.items() if k not in ("created", "run_file", "herdsim_version")}

        self.assertEqual(compare(old), compare(path))
        for pop in ("advisor", "followers"):
            self.assertEqual(self.run_ok("export", old, "--population", pop).stdout,
                             self.run_ok("export", path, "--population", pop).stdout)
        with xr.open_dataset(old, group="populations/followers", engine="h5netcdf", phony_dims="sort") as ds:
            self.assertEqual(ds["wealth"].shape, (4, 3, 8))


if __name__ == "__main__":
    support.main(scenarios=True)
