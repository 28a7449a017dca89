#!/usr/bin/env python3
"""Load a herdsim run file (docs/hdf5-schema.md) into NumPy arrays, pandas or xarray.

Needs h5py and numpy; pandas (``to_pandas``) and xarray (``to_xarray``) are imported only when used.
Copy this file next to your notebook or put ``tools/`` on ``sys.path``; docs/python.md has examples::

    from herdsim_load import load_run
    with load_run("quickstart.h5") as run:
        pop = run.population("followers")
        pop.wealth                      # (step, path, agent) float64
        pop.params["alpha"]             # (agent,)
        pop.summary("wealth")["q0.5"]   # (step,) median wealth
        df = pop.to_pandas()            # long format, the same rows as `herdsim export --format csv`

``python3 herdsim_load.py RUN.h5`` prints what a file holds.
"""
import sys
from functools import cached_property

import h5py
import numpy as np

SCHEMA_VERSION = 2  # the newest layout this loader reads (2: several assets, an asset axis)
CSV_COLUMNS = ("group", "step", "t", "path", "agent", "wealth", "amount", "theory_amount")


class RunFileError(Exception):
    """The file is not a complete, consistent herdsim run file this loader can read. The message is one
    line naming the file and what is wrong."""


def _shape(dataset):
    return tuple(int(n) for n in dataset.shape)


def _row_counts(steps, every):
    """How many wealth rows (0, e, 2e, ... and n) and decision rows (0, e, ... < n) a complete group has;
    row i is step min(i e, n)."""
    return steps // every + 1 + (steps % every != 0), (steps - 1) // every + 1


def _import(module, feature):
    try:
        return __import__(module)
    except ImportError:
        raise ImportError(f"{feature} needs {module}: install it (Debian: apt install python3-{module}; "
                          f"or pip install {module})") from None


def load_run(path, group=None, allow_incomplete=False):
    """Opens a run file. group: the default run group ("/" or "/sweep_001"; None: the only group of a
    single run). Refuses incomplete files (attribute complete != 1) unless allow_incomplete."""
    return Run(path, group, allow_incomplete)


class Run:
    """An open run file: root attributes, run groups, time axes, market and populations."""

    def __init__(self, path, group=None, allow_incomplete=False):
        self.path = str(path)
        try:
            self.file = h5py.File(self.path, "r")
        except OSError as e:  # missing, not HDF5, locked by a live writer, ...
            raise RunFileError(f"{self.path}: cannot open it as an HDF5 file: {e}") from None
        self._checked = set()
        try:
            self.attrs = dict(self.file.attrs)
            version = self.attrs.get("schema_version")
            if version is None:
                raise RunFileError(f"{self.path} is not a herdsim run file (no schema_version attribute)")
            if int(version) > SCHEMA_VERSION:
                raise RunFileError(f"{self.path} has schema_version {version}; this loader reads "
                                   f"{SCHEMA_VERSION} (update tools/herdsim_load.py)")
            if self.attrs.get("complete") != 1 and not allow_incomplete:
                raise RunFileError(f"{self.path} is incomplete (complete = 0): the run that wrote it did not "
                                   "finish; pass allow_incomplete=True to read the rows written so far")
            self.groups = ["/"] if "time" in self.file else sorted(
                "/" + name for name in self.file if name.startswith("sweep_"))
            self.group = self._group(group) if group is not None else (
                self.groups[0] if len(self.groups) == 1 else None)
        except BaseException:
            self.file.close()
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self.file.close()

    def _group(self, group=None):
        group = self.group if group is None else ("/" + group.lstrip("/") if group != "/" else "/")
        if group is None:
            raise ValueError(f"{self.path} is a sweep: name a group, one of {', '.join(self.groups)}")
        if group not in self.groups:
            raise KeyError(f"{self.path} has no run group {group}; its groups: {', '.join(self.groups)}")
        if group not in self._checked:
            self._check(group)
            self._checked.add(group)
        return group

    def _check(self, group):
        """Refuses a group whose attributes and dataset shapes disagree (the rules of io::RunFile::group):
        nothing is sized from an attribute that the data contradict."""
        def fail(what):
            raise RunFileError(f"{self.path}: {group}: {what} (the file is inconsistent: edited, or not "
                               "written by herdsim?)")
        try:
            g = self.file[group]
            a = g.attrs
            steps, every, total = int(a["steps"]), int(a["every"]), int(a["paths_total"])
            paths = np.asarray(a["paths"]).reshape(-1)
            if steps < 1 or every < 1 or total < 1:
                fail(f"attributes steps = {steps}, every = {every}, paths_total = {total} (each must be >= 1)")
            if (len(paths) == 0 or len(paths) > total or np.any(paths < 0) or np.any(paths >= total)
                    or np.any(np.diff(paths) <= 0)):
                fail(f"attribute paths is not a sorted list of distinct paths in [0, {total})")
            wealth_count, decision_count = _row_counts(steps, every)
            step, decision = g["time/step"][()], g["time/decision_step"][()]
            complete = int(self.attrs.get("complete", 0)) == 1
            for got, full, name in ((step, wealth_count, "step"), (decision, decision_count, "decision_step")):
                rows = np.minimum(np.arange(len(got), dtype=np.int64) * every, steps)
                if len(got) > full or (complete and len(got) != full) or np.any(got != rows):
                    fail(f"time/{name} does not list the rows that steps = {steps} and every = {every} give")
            if len(step) == 0 or len(decision) != int(np.sum(decision < step[-1])) or \
                    _shape(g["time/t"]) != (len(step),):
                fail("the time axes differ in length")
            s, d, p = len(step), len(decision), len(paths)
            # Schema 2 (several assets): an asset axis after the row axis (first in theory/amount).
            # Price impact with one asset is schema 2 too: the attribute `assets` marks the axis.
            n = int(a.get("assets", 1))
            if "assets" in a and (n < 1 or len(str(a.get("asset_names", "")).split(",")) != n):
                fail(f"attribute assets = {n} does not match asset_names")
            ax = (n,) if "assets" in a else ()
            want = {"market/price": (s, *ax, p), "market/return": (d, *ax, p), "market/shock": (d, *ax, p)}
            if "assets" in a:
                want["market/fundamental"] = (s, n, p)
            for name, pop in g.get("populations", {}).items():
                count, m = int(pop.attrs["count"]), int(pop.attrs["recorded_agents"])
                if count < 1 or not 0 <= m <= count:
                    fail(f"populations/{name}: recorded_agents = {m} outside [0, count = {count}]")
                base = f"populations/{name}/"
                if ("wealth" in pop) != ("amount" in pop):
                    fail(f"{base}: one of wealth and amount is missing")
                if "wealth" in pop:
                    want[base + "wealth"], want[base + "amount"] = (s, p, m), (d, *ax, p, m)
                if "theory" in pop:
                    want[base + "theory/amount"] = (*ax, steps, m)
                for param in pop.get("params", {}):
                    want[base + "params/" + param] = (m,)
                if "summary" in pop:
                    q = len(pop["summary"].attrs["stats"].split(","))
                    want[base + "summary/wealth"] = (s, q)
                    want[base + "summary/amount"] = want[base + "summary/proportion"] = (d, q)
            for name, shape in want.items():
                if name not in g:
                    fail(f"{name} is missing")
                if _shape(g[name]) != shape:
                    fail(f"{name} has shape {_shape(g[name])}, expected {shape}")
        except KeyError as e:
            fail(f"missing {e}")

    def group_attrs(self, group=None):
        """Attributes of a run group: steps, dt, every, paths_total, paths, sweep_point."""
        return dict(self.file[self._group(group)].attrs)

    def time(self, group=None):
        """{"step": (S,) int, "t": (S,) years, "decision_step": (D,) int}."""
        g = self.file[self._group(group)]
        return {name: g["time"][name][()] for name in ("step", "t", "decision_step")}

    def assets(self, group=None):
        """The names of the risky assets, in the order of the asset axis (schema 1: one, "asset0")."""
        a = self.file[self._group(group)].attrs
        return str(a["asset_names"]).split(",") if "assets" in a else ["asset0"]

    def market(self, group=None):
        """{"price": (S, P), "return": (D, P), "shock": (D, P)}; schema 2 (several assets, or price impact):
        (S, N, P) and (D, N, P), "fundamental" (S, N, P), and with impact "flow" (D, N, P)."""
        g = self.file[self._group(group)]
        names = [n for n in ("price", "fundamental", "return", "shock", "flow") if n in g["market"]]
        return {name: g["market"][name][()] for name in names}

    def populations(self, group=None):
        """Names of the populations of a group."""
        return list(self.file[self._group(group)].get("populations", {}))

    def population(self, name, group=None):
        group = self._group(group)
        pops = self.file[group].get("populations", {})
        if name not in pops:
            raise KeyError(f"no population '{name}' in {self.path} {group}; available: {', '.join(pops)}")
        return Population(self, group, name)


class Population:
    """One population of one run group. Arrays are read from the file on first use."""

    def __init__(self, run, group, name):
        self.run, self.group, self.name = run, group, name
        self._h5 = run.file[group]["populations"][name]
        self.kind = self._h5.attrs["kind"]
        self.count = int(self._h5.attrs["count"])
        self.recorded_agents = int(self._h5.attrs["recorded_agents"])
        # Paired populations: the population whose investors this one took (None: its own).
        self.investors = self._h5.attrs.get("investors")
        # investagent populations in a market of several assets: the asset they trade (None otherwise).
        self.asset = self._h5.attrs.get("asset")
        self.has_trajectories = "wealth" in self._h5
        self.has_theory = "theory" in self._h5
        self.has_summary = "summary" in self._h5
        time = run.time(group)
        self.step, self.t, self.decision_step = time["step"], time["t"], time["decision_step"]
        self.paths = np.asarray(run.file[group].attrs["paths"])  # the path axis: recorded path indices

    def dataset(self, name):
        """The h5py dataset wealth, amount or theory/amount, read only as far as it is sliced (a few agents
        of a large run: ``pop.dataset("amount")[:, 0, agents]``), or None when it was not recorded."""
        return self._h5[name] if name in self._h5 else None

    def _require_some_record(self):
        """KeyError when the population was recorded with neither trajectories nor summaries (a market-only
        run: the file holds time/, market/ and the population's attributes)."""
        if not self.has_trajectories and not self.has_summary:
            raise KeyError(f"population '{self.name}' in {self.group} was recorded with neither trajectories nor "
                           "summaries (record.trajectories = false, record.summaries = false): only the market "
                           "is in the file")

    def _read(self, name):
        self._require_some_record()
        if name not in self._h5:
            raise KeyError(f"population '{self.name}' in {self.group} has no {name} (see [record] in the scenario)")
        return self._h5[name][()]

    @cached_property
    def wealth(self):
        """(S, P, M) wealth X_s at the wealth rows, in currency units."""
        return self._read("wealth")

    @cached_property
    def amount(self):
        """(D, P, M) amount in the stock P_k at the decision rows, in currency units; schema 2 (several
        assets): (D, N, P, M), the amount in each asset."""
        return self._read("amount")

    @cached_property
    def theory_amount(self):
        """(n, M) the theoretical optimum at every step 0..n-1, or None where theory defines none; schema 2
        (several assets): (N, n, M)."""
        return self._h5["theory/amount"][()] if "theory" in self._h5 else None

    @cached_property
    def params(self):
        """{name: (M,) array} of the per-agent parameters."""
        return {k: v[()] for k, v in self._h5.get("params", {}).items()}

    def summary(self, quantity="wealth"):
        """{stat: (rows,) array} of summary/<quantity> (wealth, amount, proportion)."""
        table = self._read(f"summary/{quantity}")
        stats = self._h5["summary"].attrs["stats"].split(",")
        return {stat: table[:, j] for j, stat in enumerate(stats)}

    def to_pandas(self, quantity="all"):
        """A long DataFrame with the rows and columns of `herdsim export --quantity QUANTITY`: one row per
        (step, path, agent); a population without trajectories gives its summary table."""
        pd = _import("pandas", "to_pandas()")
        assets = self.run.assets(self.group)
        several = len(assets) > 1
        if not self.has_trajectories:
            self._require_some_record()
            return self._summary_frame(pd, quantity)
        rows = self.step if quantity != "amount" else self.decision_step
        s, p, m = len(rows), len(self.paths), self.recorded_agents
        cols = {"group": np.full(s * p * m, self.group, dtype=object),
                "step": np.repeat(rows.astype(np.int64), p * m),
                "t": np.repeat(self.t[:s], p * m),
                "path": np.tile(np.repeat(self.paths.astype(np.int64), m), s),
                "agent": np.tile(np.arange(m, dtype=np.int64), s * p)}
        if quantity != "amount":
            cols["wealth"] = self.wealth.ravel()
        if quantity != "wealth":
            # Decision row r is wealth row r; the last wealth row (step n) has no decision: NaN.
            # Schema 2 (an asset axis): one column pair per asset, amount_<name> and theory_amount_<name>,
            # as `herdsim export` writes them (one asset: amount and theory_amount).
            amounts = self.amount if self.amount.ndim == 4 else self.amount[:, None]
            theories = self.theory_amount
            if theories is not None and theories.ndim == 2:
                theories = theories[None]
            frames = {}
            for j, name in enumerate(assets):
                amount = np.full((s, p, m), np.nan)
                amount[:len(self.decision_step)] = amounts[:, j]
                theory = np.full((s, m), np.nan)
                if theories is not None:
                    inside = rows < theories.shape[1]
                    theory[inside] = theories[j][rows[inside]]
                suffix = "_" + name if several else ""
                frames["amount" + suffix] = amount.ravel()
                frames["theory_amount" + suffix] = np.broadcast_to(theory[:, None, :], (s, p, m)).ravel()
            for key in [k for k in frames if k.startswith("amount")] + [k for k in frames if k.startswith("theory")]:
                cols[key] = frames[key]
        for name in sorted(self.params):
            cols["param_" + name if name in cols else name] = np.tile(self.params[name], s * p)
        return pd.DataFrame(cols)

    def _summary_frame(self, pd, quantity):
        names = {"wealth": ["wealth"], "amount": ["amount", "proportion"]}.get(
            quantity, ["wealth", "amount", "proportion"])
        frames = []
        for q in names:
            stats = self.summary(q)
            rows = self.step if q == "wealth" else self.decision_step
            frame = pd.DataFrame({"group": self.group, "step": rows.astype(np.int64), "t": self.t[:len(rows)],
                                  "quantity": q})
            frames.append(frame.assign(**stats))
        return pd.concat(frames, ignore_index=True)

    def to_xarray(self):
        """An xarray.Dataset: wealth (step, path, agent); amount and theory_amount (decision_step, path,
        agent) / (decision_step, agent), theory taken at the recorded decision steps (schema 2: with an
        asset axis, (decision_step, asset, path, agent) / (asset, decision_step, agent)); coords t (on step),
        path, agent, and every parameter as an agent coordinate."""
        self._require_some_record()
        xr = _import("xarray", "to_xarray()")
        m = self.recorded_agents
        coords = {"step": self.step, "t": ("step", self.t), "decision_step": self.decision_step,
                  "path": self.paths, "agent": np.arange(m)}
        coords.update({name: ("agent", values) for name, values in self.params.items()})
        data = {"wealth": (("step", "path", "agent"), self.wealth)}
        if self.amount.ndim == 4:  # schema 2: an asset axis, named by the asset coordinate
            coords["asset"] = self.run.assets(self.group)
            data["amount"] = (("decision_step", "asset", "path", "agent"), self.amount)
            if self.theory_amount is not None:
                data["theory_amount"] = (("asset", "decision_step", "agent"),
                                         self.theory_amount[:, self.decision_step])
        else:
            data["amount"] = (("decision_step", "path", "agent"), self.amount)
            if self.theory_amount is not None:
                data["theory_amount"] = (("decision_step", "agent"), self.theory_amount[self.decision_step])
        attrs = {"population": self.name, "kind": self.kind, "count": self.count, "group": self.group}
        if self.investors is not None:
            attrs["investors"] = self.investors
        if self.asset is not None:
            attrs["asset"] = self.asset
        return xr.Dataset(data, coords=coords, attrs=attrs)


def main(argv):
    if len(argv) != 2:
        print(__doc__)
        return 2
    try:
        return describe(argv[1])
    except (RunFileError, KeyError, ValueError) as e:
        print(f"herdsim_load: error: {e.args[0] if e.args else e}", file=sys.stderr)
        return 2


def describe(path):
    with load_run(path, allow_incomplete=True) as run:
        print(f"{run.path}: schema_version {run.attrs['schema_version']}, seed {run.attrs['seed']}, "
              f"complete {run.attrs['complete']}")
        for group in run.groups:
            a = run.group_attrs(group)
            print(f"{group} {a.get('sweep_point', '')}: {a['steps']} steps, {len(a['paths'])} paths recorded")
            for name in run.populations(group):
                pop = run.population(name, group)
                print(f"  {name:<16} {pop.kind:<7} {pop.count} agents, {pop.recorded_agents} recorded, "
                      f"params: {', '.join(pop.params) or '-'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
