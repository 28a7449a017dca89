#!/usr/bin/env python3
"""herdsim report: PNG figures and an index.html from a herdsim run file and its analysis.

Usage: herdsim_report.py RUN.h5 [RUN2.h5 ...] -o DIR [--analysis ANALYSIS.json]

Reads the run file (docs/hdf5-schema.md) through tools/herdsim_load.py, the one Python reader of the
layout (found next to this script or in its parent folder), and the analysis written by
`herdsim compare RUN.h5 --format json` (docs/analysis.md), and writes into DIR one set of figures
per run group ("/" or each "/sweep_NNN") and population, plus a self-contained index.html that
links them. A figure whose data are missing is skipped and the page says why. Several run files (with
the analysis set of `herdsim compare A.h5 B.h5 ... --format json`) give the figures across files and then one
section per file. Usually run through `herdsim report`, which runs the analysis first.

Exit codes: 0 done, 2 bad input (unreadable or inconsistent run file, unreadable analysis file), 3 a Python
package or herdsim_load.py is missing.
"""
import argparse
import html
import importlib
import json
import math
import os
import re
import sys
import types

# Debian package of each module the report needs (the interpreter is Debian's /usr/bin/python3).
REQUIRED_MODULES = (("h5py", "python3-h5py"), ("numpy", "python3-numpy"),
                    ("matplotlib", "python3-matplotlib"))

EXIT_BAD_INPUT = 2
EXIT_MISSING_PACKAGE = 3

DPI = 110
MAX_SAMPLED_AGENTS = 6
ANALYSIS_SCHEMA = "herdsim-analysis"
ANALYSIS_SET_SCHEMA = "herdsim-analysis-set"  # several run files: {analyses: [one per file], across}
ANALYSIS_SCHEMA_VERSION = 1


def check_required_modules():
    """Imports the required modules, or names each missing one with its Debian package and exits 3."""
    missing = []
    for module, _ in REQUIRED_MODULES:
        try:
            importlib.import_module(module)
        except ImportError as e:
            # matplotlib fails to import when numpy is missing: blame numpy, not matplotlib.
            culprit = (e.name or module).split(".")[0]
            if culprit not in [m for m, _ in REQUIRED_MODULES]:
                culprit = module
            if culprit not in missing:
                missing.append(culprit)
    if not missing:
        return
    packages = dict(REQUIRED_MODULES)
    print(f"herdsim report: error: {sys.executable} cannot import the Python package(s) the report needs:",
          file=sys.stderr)
    for module in missing:
        print(f"  {module}: install the Debian package {packages[module]}", file=sys.stderr)
    print("  e.g. sudo apt-get install " + " ".join(packages[m] for m in missing)
          + "  (or choose another interpreter with herdsim report --python PATH)", file=sys.stderr)
    sys.exit(EXIT_MISSING_PACKAGE)


check_required_modules()


def import_loader():
    """tools/herdsim_load.py: next to this script (a copied report) or in its parent folder (the source tree,
    where `herdsim report` runs it); exits 3 naming where it looked when it is in neither."""
    here = os.path.dirname(os.path.abspath(__file__))
    places = [here, os.path.dirname(here)]
    for place in places:
        if os.path.isfile(os.path.join(place, "herdsim_load.py")):
            if place not in sys.path:
                sys.path.insert(0, place)
            return importlib.import_module("herdsim_load")
    print(f"herdsim report: error: cannot find herdsim_load.py (looked in {' and '.join(places)}); keep "
          "tools/report/herdsim_report.py inside tools/ or copy tools/herdsim_load.py next to it", file=sys.stderr)
    sys.exit(EXIT_MISSING_PACKAGE)


herdsim_load = import_loader()

import numpy as np  # noqa: E402
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

# The market section of schema-2 runs and the figures across sweep points, in modules next to this script
# (also when this file is imported as a module).
if os.path.dirname(os.path.abspath(__file__)) not in sys.path:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import market_figures  # noqa: E402
import sweep_figures  # noqa: E402


class InputError(Exception):
    """A run or analysis file that cannot be used; the message says why."""


class Skip(Exception):
    """A figure that cannot be drawn; the message says why (shown in the HTML)."""


# ----------------------------------------------------------------------------------------------
# Small helpers


def as_array(values):
    """A float numpy array from a JSON list where null stands for NaN."""
    if values is None:
        return np.array([], dtype=float)
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def as_matrix(rows):
    """A 2-D float numpy array from a JSON list of lists (null = NaN)."""
    return np.array([[np.nan if v is None else v for v in row] for row in rows], dtype=float)


def finite(a):
    """The finite values of a as a flat array."""
    a = np.asarray(a, dtype=float).ravel()
    return a[np.isfinite(a)]


def fmt(x, digits=4):
    """A number for a table: NaN or missing as an em dash, large and small numbers in %g."""
    if x is None or isinstance(x, str):
        return "—" if x is None else x
    x = float(x)
    if not math.isfinite(x):
        return "—"
    return f"{x:.{digits}g}"


def attr_str(value):
    """An HDF5 attribute as str (h5py returns variable-length strings as str, fixed ones as bytes)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def safe_name(text):
    """text reduced to letters, digits, '.', '_' and '-' (for file names)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "x"


def esc(text):
    """HTML-escaped text."""
    return html.escape(str(text), quote=True)


# ----------------------------------------------------------------------------------------------
# Inputs


class Population:
    """One population of one run group: its recorded data (a herdsim_load.Population, or None) and its
    analysis entry (or None)."""

    def __init__(self, name, data, info, missing_reason=""):
        self.name = name
        self.data = data
        self.info = info or {}
        self.has_analysis = info is not None
        self.anchor = ""  # id of its HTML section, set when drawn
        self.missing_reason = missing_reason  # why info is None

    @property
    def kind(self):
        if self.info.get("kind"):
            return self.info["kind"]
        return attr_str(self.data.kind) if self.data is not None else "?"

    def section(self, key):
        """The analysis section key (a dict) or None."""
        return self.info.get(key) if self.has_analysis else None

    def recorded_agents(self):
        if self.data is not None:
            return self.data.recorded_agents
        return int(self.info.get("recorded_agents") or 0)

    def count(self):
        if self.data is not None:
            return self.data.count
        return int(self.info.get("count") or 0)


class RunGroup:
    """One run group ("/" or "/sweep_NNN") of the run file with its analysis entry."""

    def __init__(self, index, run, name, info, have_analysis, file_tag=""):
        self.index = index
        self.tag = f"{file_tag}g{index}"  # anchor and figure-name prefix, unique across the report's files
        self.run = run
        self.name = name
        self.info = info
        attrs = run.group_attrs(name)  # checked by the loader: attributes and shapes agree
        self.steps = int(attrs["steps"])
        self.dt = float(attrs["dt"])
        self.every = int(attrs["every"])
        self.paths = [int(p) for p in np.atleast_1d(attrs["paths"])]
        self.paths_total = int(attrs["paths_total"])
        self.sweep_point = attr_str(attrs.get("sweep_point", ""))
        time = run.time(name)
        self.t = time["t"]
        self.decision_steps = time["decision_step"]
        self.populations = self._populations(have_analysis)

    def _populations(self, have_analysis):
        names = self.run.populations(self.name)  # alphabetical, as HDF5 lists them
        pops_json = (self.info or {}).get("populations") or []
        out, seen = [], set()
        # The analysis's order first; then any population it lacks.
        for p in pops_json:
            name = p.get("name", "")
            out.append(Population(name, self.run.population(name, self.name) if name in names else None, p))
            seen.add(name)
        if not have_analysis:
            missing = "no analysis file was given"
        elif self.info is None:
            missing = f"the analysis has no entry for run group {self.name}"
        else:
            missing = "the analysis has no entry for this population"
        for name in names:
            if name not in seen:
                out.append(Population(name, self.run.population(name, self.name), None, missing))
        return out

    def title(self):
        if self.name == "/":
            return "Run"
        label = f"Sweep point {self.name.lstrip('/')}"
        return f"{label}: {self.sweep_point}" if self.sweep_point else label


def load_analysis(path):
    """The analysis JSON (dict) or None when no path is given; InputError if unusable."""
    if not path:
        return None
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except OSError as e:
        raise InputError(f"cannot read the analysis file {path}: {e.strerror}") from e
    except json.JSONDecodeError as e:
        raise InputError(f"{path} is not valid JSON: {e}") from e
    if not isinstance(data, dict) or data.get("schema") not in (ANALYSIS_SCHEMA, ANALYSIS_SET_SCHEMA):
        raise InputError(f"{path} is not a herdsim analysis file (schema must be '{ANALYSIS_SCHEMA}' or "
                         f"'{ANALYSIS_SET_SCHEMA}')")
    if data.get("schema_version") != ANALYSIS_SCHEMA_VERSION:
        raise InputError(f"{path} has analysis schema_version {data.get('schema_version')}, "
                         f"this report reads version {ANALYSIS_SCHEMA_VERSION}")
    return data


def open_run_file(path):
    """The run file opened read-only by herdsim_load (incomplete files too: the report shows the rows written
    so far); InputError if it is not a herdsim run file this loader reads."""
    if not os.path.isfile(path):
        raise InputError(f"run file {path} does not exist")
    try:
        return herdsim_load.load_run(path, allow_incomplete=True)
    except herdsim_load.RunFileError as e:
        raise InputError(str(e)) from e


def run_groups(run, analysis, file_tag=""):
    """The run groups of the file, each paired with its analysis entry (or None); InputError for a group
    whose attributes and datasets disagree. file_tag prefixes anchors and figure names (several files)."""
    by_group = {r.get("group"): r for r in (analysis or {}).get("runs", [])}
    try:
        return [RunGroup(i, run, name, by_group.get(name), analysis is not None, file_tag)
                for i, name in enumerate(run.groups)]
    except herdsim_load.RunFileError as e:
        raise InputError(str(e)) from e


# ----------------------------------------------------------------------------------------------
# Figures. Each plot function draws into a new figure and returns a short caption note (or ""),
# or raises Skip with the reason.


def new_figure(ncols=1, width=7.5, height=4.6):
    fig, axes = plt.subplots(1, ncols, figsize=(width, height), squeeze=False)
    return fig, list(axes[0])


def no_analysis_reason(pop, key):
    if not pop.has_analysis:
        return pop.missing_reason
    notes = pop.info.get("notes") or []
    return f"the analysis has no {key} for this population" + (" (see the notes above)" if notes else "")


def trajectory_reason(pop, dataset):
    if pop.data is None:
        return "the population is not in the run file"
    if pop.recorded_agents() == 0:
        return "trajectories were not recorded ([record] trajectories = false)"
    return f"the run file has no {dataset} for this population"


def agent_label(pop, agent):
    """'agent 12 (lottery p=0.7, score 5)' or 'agent 12 (α=0.5, score 5)': the investor type in the
    questionnaire's words where the file has them (a dependence score is θ / 1e-8)."""
    parts = []
    params = pop.data.params
    if "lottery_prob" in params:
        parts.append(f"lottery p={params['lottery_prob'][agent]:.3g}")
    elif "alpha" in params:
        parts.append(f"α={params['alpha'][agent]:.3g}")
    if "score" in params:
        parts.append(f"score {params['score'][agent]:.3g}")
    elif "theta" in params:
        parts.append(f"score {params['theta'][agent] / 1e-8:.3g}")
    return f"agent {agent}" + (f" ({', '.join(parts)})" if parts else "")


def spread(n, k):
    """k indices spread evenly over range(n), first and last included (fewer if n < k)."""
    return sorted(set(int(round(i)) for i in np.linspace(0, n - 1, min(k, n)))) if n > 0 else []


def sample_agents(pop, m):
    """Up to MAX_SAMPLED_AGENTS of the m recorded agents, deterministically.

    Agents with distinct parameters come first (one agent per combination, spread over the
    combinations sorted by value), so a grid population does not show six copies of one cell;
    the rest is filled evenly over the agent axis.
    """
    params = pop.data.params
    columns = [params[k] for k in sorted(params) if params[k].shape == (m,)]
    first_of = {}
    for a in range(m):
        first_of.setdefault(tuple(float(c[a]) for c in columns), a)
    combos = sorted(first_of)
    chosen = [first_of[combos[i]] for i in spread(len(combos), MAX_SAMPLED_AGENTS)]
    for a in spread(m, MAX_SAMPLED_AGENTS):
        if len(chosen) >= min(MAX_SAMPLED_AGENTS, m):
            break
        if a not in chosen:
            chosen.append(a)
    return sorted(chosen)


def plot_decisions(run, pop, fig_path):
    """Decisions P_k of a few agents on the first recorded path against their theoretical plans."""
    amount = pop.data.dataset("amount") if pop.data is not None else None
    if amount is None or pop.recorded_agents() == 0:
        raise Skip(trajectory_reason(pop, "amount"))
    theory = pop.data.dataset("theory/amount")
    held = "the stock"
    if amount.ndim == 4:  # schema 2: (D, N, P, M); one asset under price impact
        # An investagent population of several assets trades one (attribute `asset`): its decisions there.
        traded = pop.data.asset
        names = run.run.assets(run.name)
        if amount.shape[1] > 1 and traded not in names:
            raise Skip(f"{amount.shape[1]} assets: the decisions per asset against theory are in the market "
                       "section's price-taker gap")
        a = names.index(traded) if amount.shape[1] > 1 else 0
        held = f"asset \"{names[a]}\"" if amount.shape[1] > 1 else held
        amount, theory = amount[:, a], theory[a] if theory is not None else None
    m = amount.shape[2]
    if amount.shape[0] == 0 or amount.shape[1] == 0 or m == 0:
        raise Skip("no decision rows were recorded")
    agents = sample_agents(pop, m)
    simulated = amount[:, 0, agents]
    t_sim = run.decision_steps * run.dt
    theory = theory[:, agents] if theory is not None else None
    if finite(simulated).size == 0:
        raise Skip("the recorded decisions are all NaN")
    fig, (ax,) = new_figure(width=10)
    colors = plt.get_cmap("tab10").colors
    for j, a in enumerate(agents):
        c = colors[j % len(colors)]
        ax.plot(t_sim, simulated[:, j], "o-", color=c, ms=3.5, lw=1.4, label=agent_label(pop, a))
        if theory is not None:
            ax.plot(np.arange(theory.shape[0]) * run.dt, theory[:, j], "--", color=c, lw=1.2)
    path = run.paths[0] if run.paths else 0
    style = [Line2D([], [], color="0.3", marker="o", ms=3.5, label=f"simulated (path {path})")]
    if theory is not None:
        style.append(Line2D([], [], color="0.3", ls="--", label="theory (open-loop optimum)"))
    # One legend outside the axes (agents, then line styles): savefig's tight box then keeps all of it.
    agent_handles, _ = ax.get_legend_handles_labels()
    ax.legend(handles=agent_handles + style, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    ax.set_xlabel("t (years, time of the decision)")
    ax.set_ylabel(f"amount in {held} $P_k$ (currency units)")
    ax.set_title(f"{pop.name}: decisions of {len(agents)} sampled agents")
    ax.grid(alpha=0.3)
    save(fig, fig_path)
    plural = "s" if len(agents) > 1 else ""
    note = f"Agent{plural} {', '.join(map(str, agents))} of {m} recorded, path {path}."
    return note + ("" if theory is not None else " The run file has no theoretical path for this population.")


def wealth_quantiles(pop):
    """(columns dict name -> (S,) array, source text) of the wealth statistics of a population."""
    data = pop.data
    if data.has_summary:
        return data.summary("wealth"), "summary/wealth (all agents, recorded paths)"
    wealth = data.dataset("wealth")
    if wealth is not None and pop.recorded_agents() > 0:
        # At most ~5e6 values a row (40 MB): the first agents of a very large recording suffice.
        agents = min(wealth.shape[2], max(1, 5_000_000 // max(1, wealth.shape[1])))
        qs = (0.05, 0.25, 0.5, 0.75, 0.95)
        cols = {f"q{q:g}": np.full(wealth.shape[0], np.nan) for q in qs}
        cols["mean"] = np.full(wealth.shape[0], np.nan)
        for s in range(wealth.shape[0]):  # one row at a time: memory does not grow with the run
            row = finite(wealth[s, :, :agents])
            if row.size:
                for q in qs:
                    cols[f"q{q:g}"][s] = np.quantile(row, q)
                cols["mean"][s] = row.mean()
        return cols, f"wealth trajectories (first {agents} agents; summaries were not recorded)"
    raise Skip("neither summaries nor trajectories of wealth were recorded")


def plot_wealth_fan(run, pop, fig_path):
    """Fan chart of wealth X_s over time: nested quantile bands, median and mean."""
    if pop.data is None:
        raise Skip("the population is not in the run file")
    cols, source = wealth_quantiles(pop)
    quantiles = sorted((float(k[1:]), k) for k in cols if re.fullmatch(r"q[0-9.eE+-]+", k))
    t = run.t
    if not quantiles and "mean" not in cols:
        raise Skip("the summary has no quantile or mean column")
    if all(finite(v).size == 0 for v in cols.values()):
        raise Skip("the wealth statistics are all NaN")
    fig, (ax,) = new_figure()
    lower = [q for q in quantiles if q[0] < 0.5]
    upper = [q for q in reversed(quantiles) if q[0] > 0.5]
    for i, ((ql, kl), (qu, ku)) in enumerate(zip(lower, upper)):
        ax.fill_between(t, cols[kl], cols[ku], color="tab:blue", alpha=0.18 + 0.14 * i, lw=0,
                        label=f"{ql:.0%}–{qu:.0%} of agents × paths")
    if "q0.5" in cols:
        ax.plot(t, cols["q0.5"], color="tab:blue", lw=1.8, label="median")
    if "mean" in cols:
        ax.plot(t, cols["mean"], color="black", ls="--", lw=1.2, label="mean")
    ax.set_xlabel("t (years)")
    ax.set_ylabel("wealth $X_t$ (currency units)")
    ax.set_title(f"{pop.name}: wealth over time")
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    save(fig, fig_path)
    return f"From {source}."


def plot_opinion(run, pop, fig_path):
    """Mean opinion w(t), simulated against theory."""
    op = pop.section("opinion")
    if not op:
        raise Skip(no_analysis_reason(pop, "opinion"))
    t, sim, theory = as_array(op.get("t")), as_array(op.get("simulated")), as_array(op.get("theory"))
    if finite(sim).size == 0 and finite(theory).size == 0:
        raise Skip("the opinion series are all undefined (NaN)")
    fig, (ax,) = new_figure()
    ax.plot(t, sim, "o-", color="tab:red", ms=3.5, label="simulated")
    ax.plot(t, theory, "--", color="black", lw=1.4, label="theory")
    ax.set_xlabel("t (years, time of the decision)")
    ax.set_ylabel("opinion w (weight on the own Merton plan)")
    ax.set_title(f"{pop.name}: investment opinion w(t)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    save(fig, fig_path)
    return f"Mean over {op.get('agents', '?')} agents."


def plot_herding_distance(run, pop, fig_path):
    """Histogram of the normalised herding distance h per agent, simulated against theory."""
    hd = pop.section("herding_distance")
    if not hd:
        raise Skip(no_analysis_reason(pop, "herding distance"))
    per_agent = hd.get("per_agent") or {}
    sim, theory = finite(as_array(per_agent.get("simulated"))), finite(as_array(per_agent.get("theory")))
    if sim.size == 0 and theory.size == 0:
        raise Skip("h is undefined for every agent (e.g. all agents share the leader's risk aversion)")
    both = np.concatenate([sim, theory])
    bins = np.histogram_bin_edges(both, bins=int(np.clip(np.sqrt(both.size), 10, 40)))
    fig, (ax, ax_cdf) = new_figure(ncols=2, width=12, height=4.4)
    for values, color, label, line in ((sim, "tab:red", "simulated", "-"), (theory, "black", "theory", "--")):
        if not values.size:
            continue
        if label == "simulated":
            ax.hist(values, bins=bins, color=color, alpha=0.55, label=f"{label} ({values.size} agents)")
        else:
            ax.hist(values, bins=bins, histtype="step", color=color, lw=1.5,
                    label=f"{label} ({values.size} agents)")
        ax.axvline(values.mean(), color=color, ls=line, lw=1.3, label=f"{label} mean {values.mean():.3g}")
        ordered = np.sort(values)
        ax_cdf.step(ordered, np.arange(1, ordered.size + 1) / ordered.size, where="post", color=color,
                    ls=line, lw=1.5, label=label)
    ax.set_ylabel("agents")
    ax.set_title("histogram")
    ax_cdf.set_ylabel("fraction of agents with h ≤ x")
    ax_cdf.set_title("cumulative distribution")
    # Many agents near 0 and a long tail (the usual shape): a log-like axis shows both ends.
    top, middle = float(both.max()), float(np.median(both))
    if top > 0 and middle < top / 20:
        ax_cdf.set_xscale("symlog", linthresh=max(top / 1000, 1e-12))
    for a in (ax, ax_cdf):
        a.set_xlabel("herding distance h (1; 0 = own Merton plan, 1 = reference)")
        a.legend(fontsize=8, loc="best")
        a.grid(alpha=0.3)
    fig.suptitle(f"{pop.name}: normalised herding distance h per agent")
    save(fig, fig_path)
    return f"Reference: {hd.get('reference', '?')}."


def plot_lsv(run, pop, fig_path):
    """LSV herding measure per decision step: all, buy and sell cells."""
    lsv = pop.section("lsv")
    if not lsv:
        raise Skip(no_analysis_reason(pop, "LSV measure"))
    t = as_array(lsv.get("decision_steps")) * run.dt
    series = [(k, as_array(lsv.get(k))) for k in ("h", "buy", "sell")]
    if all(finite(s).size == 0 for _, s in series):
        raise Skip("no step had enough traders for the LSV measure")
    fig, (ax,) = new_figure()
    styles = {"h": ("black", "o-", "H, all cells"), "buy": ("tab:green", "^-", "buy herding"),
              "sell": ("tab:red", "v-", "sell herding")}
    for key, values in series:
        color, marker, label = styles[key]
        ax.plot(t, values, marker, color=color, ms=4, lw=1.2, label=label)
    ax.axhline(0.0, color="0.5", lw=0.8)
    mean = lsv.get("mean")
    if mean is not None and math.isfinite(mean):
        ax.axhline(mean, color="black", ls=":", lw=1.2, label=f"mean H = {mean:.3g}")
    ax.set_xlabel("t (years, time of the decision)")
    ax.set_ylabel("LSV herding measure H (0 = independent trades)")
    ax.set_title(f"{pop.name}: LSV herding per step")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    save(fig, fig_path)
    return (f"Mean H = {fmt(mean)} ± {fmt(lsv.get('se'))} (p = {fmt(lsv.get('p'), 3)}): "
            f"{lsv.get('verdict', '')}")


def signed_term(value, suffix):
    """' + 0.12|R|' or ' − 0.231|R|': a term of a fitted formula with its sign written once."""
    return f" {'−' if value < 0 else '+'} {abs(value):.3g}{suffix}"


def cck_fit(csad):
    """(const, gamma1, gamma2) of the CCK regression, or None."""
    coefs = {c.get("name"): c.get("estimate") for c in csad.get("coefficients") or []}
    values = [coefs.get(k) for k in ("const", "gamma1", "gamma2")]
    if any(v is None or not math.isfinite(v) for v in values):
        return None
    return values


def csad_pairs(pop, agents):
    """(|R_m|, CSAD) of every (path, period) pair of the first `agents` recorded agents, from the wealth
    trajectories: the observations the CCK regression is fitted on (docs/analysis.md: R_i = X_(s+1)/X_s - 1
    between consecutive wealth rows, an agent left out from its first X <= 0 on, pairs with at least two
    agents). Of a very large recording, the first paths that keep a row to 5e6 values (40 MB). None when
    wealth was not recorded."""
    wealth = pop.data.dataset("wealth") if pop.data is not None else None
    if wealth is None or agents <= 0 or wealth.shape[0] < 2:
        return None
    paths = min(wealth.shape[1], max(1, 5_000_000 // agents))
    previous = wealth[0, :paths, :agents]
    ruined = ~(previous > 0) | ~np.isfinite(previous)
    xs, ys = [], []
    with np.errstate(divide="ignore", invalid="ignore"):
        for s in range(1, wealth.shape[0]):  # one row at a time: memory does not grow with the run
            current = wealth[s, :paths, :agents]
            ret = current / previous - 1.0
            ruined |= ~(current > 0) | ~np.isfinite(ret)
            live = ~ruined
            count = live.sum(axis=1)
            rm = np.where(live, ret, 0.0).sum(axis=1) / count
            dev = np.where(live, np.abs(ret - rm[:, None]), 0.0).sum(axis=1) / count
            keep = count >= 2
            xs.append(np.abs(rm[keep]))
            ys.append(dev[keep])
            previous = current
    return np.concatenate(xs), np.concatenate(ys)


def binned_means(x, y, most=20):
    """(mean x, mean y) in equal-count bins of x: at most `most` bins, at least 20 values each."""
    order = np.argsort(x, kind="stable")
    bins = np.array_split(order, int(np.clip(x.size // 20, 1, most)))
    return np.array([x[b].mean() for b in bins]), np.array([y[b].mean() for b in bins])


def plot_csad(run, pop, fig_path):
    """CSAD over time, and CSAD against |R_m| with the fitted CCK curve."""
    csad = pop.section("csad")
    if not csad:
        raise Skip(no_analysis_reason(pop, "CSAD regression"))
    series = csad.get("series") or {}
    t = as_array(series.get("decision_steps")) * run.dt
    values, rm = as_array(series.get("csad")), as_array(series.get("market_return"))
    if finite(values).size == 0:
        raise Skip("the CSAD series is empty or undefined")
    fig, (ax1, ax2) = new_figure(ncols=2, width=11, height=4.4)
    ax1.plot(t, values, "o-", color="tab:purple", ms=3.5, lw=1.2)
    ax1.set_xlabel("t (years, start of the step)")
    ax1.set_ylabel("CSAD (1, return units)")
    ax1.set_title("CSAD over time (mean over paths)")
    ax1.grid(alpha=0.3)
    pairs = csad_pairs(pop, int(pop.info.get("analysed_agents") or 0))
    if pairs is not None and pairs[0].size:
        abs_rm, pair_csad = pairs
        # Every pair when they are few, else an even subsample (the binned means use them all).
        step = -(-abs_rm.size // 4000)
        ax2.scatter(abs_rm[::step], pair_csad[::step], s=6, color="tab:purple", alpha=0.4, lw=0,
                    label="(path, step) pairs" + (f", every {step}th" if step > 1 else ""))
        centre, mean = binned_means(abs_rm, pair_csad)
        ax2.plot(centre, mean, "o", color="tab:purple", mec="black", ms=6,
                 label="mean CSAD in bins of |$R_m$| (equal counts)")
    else:
        abs_rm = np.abs(rm)
        ax2.scatter(abs_rm, values, s=14, color="tab:purple", alpha=0.7,
                    label="steps: mean CSAD over paths at |mean $R_m$|")
    fit = cck_fit(csad)
    if fit is not None and finite(abs_rm).size:
        x = np.linspace(0.0, np.nanmax(abs_rm), 100)
        a, g1, g2 = fit
        ax2.plot(x, a + g1 * x + g2 * x * x, color="black", lw=1.4,
                 label=f"CCK fit on all (path, step) pairs:\n{a:.3g}{signed_term(g1, '|R|')}"
                       f"{signed_term(g2, 'R²')}")
    ax2.set_xlabel("|market return $R_m$| (1, return units)")
    ax2.set_ylabel("CSAD (1, return units)")
    ax2.set_title("CSAD against |R_m|")
    ax2.legend(fontsize=8, loc="best")
    ax2.grid(alpha=0.3)
    fig.suptitle(f"{pop.name}: cross-sectional absolute deviation of returns")
    save(fig, fig_path)
    return (f"{csad.get('observations', '?')} (path, step) pairs, R² = {fmt(csad.get('r2'), 3)}: "
            f"{csad.get('verdict', '')}." + ("" if pairs is not None else
            " The run file has no wealth trajectories: the right panel shows each step's means over paths, and "
            "averaging the paths' market returns shrinks |R_m|, so the curve, fitted on every (path, step) "
            "pair, can lie below those points without a misfit."))


PARAM_LABELS = {"lottery_prob": "lottery probability", "alpha": "risk aversion α",
                "theta_score": "dependence score", "theta": "herding weight θ"}


def heat_panel(fig, ax, matrix, rows, cols, title, unit):
    """One annotated heat map of matrix (rows x cols) with NaN cells in grey.

    Errors often span many decades (a plan cell at round-off, an adaptive cell far off): then the
    colour scale is logarithmic over at most 8 decades below the largest value, and smaller values
    (zeros included) take the lowest colour.
    """
    cmap = plt.get_cmap("viridis").copy()
    cmap.set_bad("0.85")
    values = finite(matrix)
    positive = values[values > 0]
    # Errors are >= 0: anchor a linear scale at 0 (an all-zero table then reads as "no error").
    shown = matrix
    top = float(values.max()) if values.size and values.max() > 0 else 1.0
    norm = matplotlib.colors.Normalize(vmin=0.0, vmax=top)
    if positive.size and positive.max() > 100 * positive.min():
        top = positive.max()
        bottom = max(positive.min(), top * 1e-8)
        norm = matplotlib.colors.LogNorm(vmin=bottom, vmax=top, clip=True)
        shown = np.where(np.isfinite(matrix), np.maximum(matrix, bottom), np.nan)
        unit += ", log scale"
    image = ax.imshow(np.ma.masked_invalid(shown), origin="lower", aspect="auto", cmap=cmap, norm=norm)
    ax.set_xticks(range(len(cols["values"])))
    ax.set_xticklabels([f"{v:.3g}" for v in as_array(cols["values"])], fontsize=7, rotation=45)
    ax.set_yticks(range(len(rows["values"])))
    ax.set_yticklabels([f"{v:.3g}" for v in as_array(rows["values"])], fontsize=7)
    ax.set_xlabel(PARAM_LABELS.get(cols.get("param"), cols.get("param", "")))
    ax.set_ylabel(PARAM_LABELS.get(rows.get("param"), rows.get("param", "")))
    ax.set_title(title, fontsize=10)
    fig.colorbar(image, ax=ax, label=unit)
    if matrix.size <= 80:
        for (i, j), v in np.ndenumerate(matrix):
            if math.isfinite(v):
                level = image.norm(shown[i, j])
                ax.text(j, i, f"{v:.2g}", ha="center", va="center", fontsize=6,
                        color="white" if not np.ma.is_masked(level) and level < 0.6 else "black")


def skip_if_exact(errors):
    """A sentence instead of an all-zero panel when every error is exactly 0 (a plan that plays the theory)."""
    if errors.size and not errors.any():
        raise Skip("every decision error is 0: these agents play the theoretical plan exactly, so there is "
                   "nothing to draw")


def plot_mse_heatmap(run, pop, fig_path):
    """MSE of decisions against theory over the parameter grid: amounts and percentage points."""
    de = pop.section("decision_error")
    if not de:
        raise Skip(no_analysis_reason(pop, "decision error"))
    table = de.get("table")
    if not table:
        raise Skip("the analysis has no MSE table for this population (a single parameter cell, or no "
                   "parameters to tabulate)")
    amount, pp = as_matrix(table.get("mse_amount") or []), as_matrix(table.get("mse_proportion_pp") or [])
    if finite(amount).size == 0 and finite(pp).size == 0:
        raise Skip("every cell of the MSE table is undefined")
    skip_if_exact(np.concatenate([finite(amount), finite(pp)]))
    rows, cols = table["rows"], table["cols"]
    fig, (ax1, ax2) = new_figure(ncols=2, width=12, height=4.8)
    heat_panel(fig, ax1, amount, rows, cols, "MSE of the amount", "MSE (currency units²)")
    heat_panel(fig, ax2, pp, rows, cols, "MSE of the proportion", "MSE (percentage points²)")
    fig.suptitle(f"{pop.name}: decision error against theory by parameter cell")
    save(fig, fig_path)
    return ""


def plot_mse_per_step(run, pop, fig_path):
    """MSE of decisions against theory at each recorded decision step."""
    de = pop.section("decision_error")
    if not de:
        raise Skip(no_analysis_reason(pop, "decision error"))
    t = as_array(de.get("decision_steps")) * run.dt
    amount = as_array((de.get("amount") or {}).get("per_step"))
    pp = as_array((de.get("proportion_pp") or {}).get("per_step"))
    if finite(amount).size == 0 and finite(pp).size == 0:
        raise Skip("the per-step errors are all undefined")
    skip_if_exact(np.concatenate([finite(amount), finite(pp)]))
    fig, (ax1, ax2) = new_figure(ncols=2, width=11, height=4.2)
    ax1.plot(t, amount, "o-", color="tab:blue", ms=3.5)
    ax1.set_ylabel("MSE of the amount (currency units²)")
    ax1.set_title("amount")
    ax2.plot(t, pp, "o-", color="tab:orange", ms=3.5)
    ax2.set_ylabel("MSE of the proportion (percentage points²)")
    ax2.set_title("proportion of wealth")
    for ax in (ax1, ax2):
        ax.set_xlabel("t (years, time of the decision)")
        ax.set_ylim(bottom=0.0)  # a squared error is never negative (autoscale of a flat line would go below)
        ax.grid(alpha=0.3)
    fig.suptitle(f"{pop.name}: decision error against theory per step")
    save(fig, fig_path)
    return (f"Overall MSE {fmt(de.get('amount', {}).get('mse'))} currency units², "
            f"{fmt(de.get('proportion_pp', {}).get('mse'))} pp².")


def plot_investor(run, pop, fig_path):
    """Histograms of the per-agent cumulative return, Sharpe ratio and maximum drawdown."""
    inv = pop.section("investor")
    if not inv:
        raise Skip(no_analysis_reason(pop, "investor metrics"))
    per_agent = inv.get("per_agent") or {}
    panels = (("cumulative_return", "cumulative return (1; 0.1 = 10 %)", "tab:green"),
              ("sharpe", "Sharpe ratio (1, annualised)", "tab:blue"),
              ("max_drawdown", "maximum drawdown (1; 0.1 = 10 %)", "tab:red"))
    data = [(key, finite(as_array(per_agent.get(key))), label, c) for key, label, c in panels]
    if all(d.size == 0 for _, d, _, _ in data):
        raise Skip("the per-agent investor metrics are all undefined")
    if all(np.unique(d).size <= 1 for _, d, _, _ in data):
        # One agent (a leader), or agents that all end alike: a histogram of one bar says less than the numbers.
        values = "; ".join(f"{label.split(' (')[0]} {fmt(d[0], 3)}" for _, d, label, _ in data if d.size)
        raise Skip(f"a histogram over agents needs agents that differ; here every agent has the same values "
                   f"(mean over paths: {values})")
    fig, axes = new_figure(ncols=3, width=13, height=4.0)
    for ax, (key, values, label, color) in zip(axes, data):
        if values.size:
            ax.hist(values, bins=int(np.clip(np.sqrt(values.size), 8, 40)), color=color, alpha=0.75)
            median = np.median(values)
            ax.axvline(median, color="black", ls="--", lw=1.2, label=f"median {median:.3g}")
            ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, "undefined for every agent", ha="center", va="center", transform=ax.transAxes)
        ax.set_xlabel(label)
        ax.set_ylabel("agents")
        ax.grid(alpha=0.3)
    fig.suptitle(f"{pop.name}: investor metrics per agent (mean over paths)")
    save(fig, fig_path)
    return ""


def save(fig, path):
    fig.tight_layout()
    fig.savefig(path, dpi=DPI, bbox_inches="tight")  # keeps legends placed outside the axes
    plt.close(fig)


# (file suffix, title, how to read it, plot function), in page order.
FIGURES = (
    ("decisions", "Decisions of sampled agents against theory",
     "Each colour is one agent, chosen evenly over the recorded agents. Solid lines with dots are the "
     "amounts the agent put in the stock on the first recorded market path; dashed lines are its "
     "theoretical open-loop optimum. A plan follower lies on its dashed line; an adaptive or LLM agent "
     "that reacts to the market wanders around it; the gap is what the decision error measures.",
     plot_decisions),
    ("wealth", "Wealth fan chart",
     "The spread of wealth over all agents and recorded paths at each time: the shaded bands hold the "
     "central 90 % and 50 % of the values, the solid line is the median and the dashed line the mean. "
     "A fan that widens fast means risky positions; a mean well above the median means a few large "
     "winners.",
     plot_wealth_fan),
    ("opinion", "Investment opinion w(t)",
     "The opinion w is the weight an agent puts on its own Merton plan (1 − w is the weight on the "
     "leader's): P = w·P_α + (1 − w)·P̄. Red is the value implied by the simulated decisions, averaged "
     "over agents; black dashed is the theory's. Curves that meet mean the agents herd as much as the "
     "theory says; a red curve below the black one means more herding than optimal.",
     plot_opinion),
    ("herding_distance", "Herding distance h",
     "h = ‖P − P_α‖ / ‖P̄ − P_α‖ for each agent: 0 means it plays its own Merton plan, 1 means it copies "
     "the reference (the leader, or its peers). Red bars are the simulated agents, the black outline the "
     "theoretical optimum of the same agents; vertical lines are the means. A red histogram shifted "
     "right of the black one means more herding than the theory predicts.",
     plot_herding_distance),
    ("lsv", "LSV herding per step",
     "The Lakonishok–Shleifer–Vishny measure H at each step: how much more the agents trade on the "
     "same side (buy or sell) than independent traders would, after the binomial adjustment. H near 0 "
     "means no herding; positive H means herding (e.g. 0.05: 5 % more traders on one side than "
     "chance). Buy and sell herding are the means over cells leaning to each side.",
     plot_lsv),
    ("csad", "CSAD and the CCK regression",
     "Left: the cross-sectional absolute deviation of the agents' returns at each step. Right: CSAD "
     "against the absolute market return with the fitted Chang–Cheng–Khorana curve. Rational pricing "
     "gives a straight, rising relation; a curve that bends down at large |R_m| (a significantly "
     "negative γ2) is the signature of herding. The test is known to miss herding often.",
     plot_csad),
    ("mse_heatmap", "Decision error by parameter cell",
     "Mean squared error between simulated and theoretical decisions, averaged over the agents, paths "
     "and steps of each cell of the parameter grid: left in amounts (currency units²), right in "
     "proportions of wealth (percentage points²). Dark cells agree with the theory; bright cells "
     "show where the agents depart from it. Grey cells have no value.",
     plot_mse_heatmap),
    ("mse_steps", "Decision error per step",
     "The same mean squared error at each decision step, over all agents and paths. A rising curve "
     "means the agents drift from the plan as time goes on (e.g. adaptive agents reacting to the "
     "market).",
     plot_mse_per_step),
    ("investor", "Investor metrics",
     "Per agent, averaged over paths: cumulative return of wealth over the run, Sharpe ratio of its "
     "returns, and the maximum drawdown (largest fall from a running peak, as a fraction). Dashed "
     "lines are medians. Compare the spreads across populations: agents that herd hold similar "
     "positions and so end with similar returns.",
     plot_investor),
)


# ----------------------------------------------------------------------------------------------
# HTML


CSS = """
body { font-family: system-ui, sans-serif; max-width: 1180px; margin: 1.5em auto; padding: 0 1em;
       color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; } h2 { border-bottom: 2px solid #ccc; margin-top: 2em; } h3 { margin-top: 1.6em; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.6em 0; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: left; vertical-align: top; }
th { background: #f2f2f2; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1.2em 0; } figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-size: 0.9em; } .skip { color: #8a5a00; font-size: 0.9em; } .note { color: #555; }
pre { background: #f7f7f7; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
.warn { background: #fff3cd; padding: 0.5em 0.8em; border: 1px solid #e0c060; }
"""


def html_table(header, rows, numeric=()):
    """An HTML table; cells are escaped; columns whose index is in numeric are right-aligned."""
    out = ["<table>", "<tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr>"]
    for row in rows:
        cells = "".join(f"<td class=\"num\">{esc(c)}</td>" if i in numeric else f"<td>{esc(c)}</td>"
                        for i, c in enumerate(row))
        out.append(f"<tr>{cells}</tr>")
    out.append("</table>")
    return "\n".join(out)


def stat_range(d):
    """'median [q05, q95]' of a statistics dict."""
    if not d:
        return "—"
    return f"{fmt(d.get('median'), 3)} [{fmt(d.get('q05'), 3)}, {fmt(d.get('q95'), 3)}]"


def headline_rows(groups):
    """Two headline tables: agreement with theory, and herding / investor outcomes."""
    theory_rows, herding_rows = [], []
    for g in groups:
        label = g.name if not g.sweep_point else f"{g.name} ({g.sweep_point})"
        for p in g.populations:
            de = p.section("decision_error") or {}
            ce = p.section("certainty_equivalent")
            hd = p.section("herding_distance") or {}
            ce_text = "—"
            if ce:
                ce_text = (f"{fmt(ce.get('simulated'))} vs {fmt(ce.get('theory'))}: "
                           f"gap {fmt(ce.get('gap'), 3)} "
                           f"[{fmt(ce.get('ci_low'), 3)}, {fmt(ce.get('ci_high'), 3)}]")
            theory_rows.append([
                label, p.name, f"{p.kind}" + (f", {p.info['policy']}" if p.info.get("policy") else ""),
                f"{p.count()} / {p.recorded_agents()}",
                fmt((de.get("amount") or {}).get("rmse")), fmt((de.get("proportion_pp") or {}).get("rmse")),
                ce_text,
                f"{fmt((hd.get('simulated') or {}).get('mean'), 3)} / "
                f"{fmt((hd.get('theory') or {}).get('mean'), 3)}",
            ])
            lsv = p.section("lsv") or {}
            inv = p.section("investor") or {}
            herding_rows.append([
                label, p.name,
                (f"{fmt(lsv.get('mean'), 3)} ± {fmt(lsv.get('se'), 2)} (p = {fmt(lsv.get('p'), 2)})"
                 if lsv else "—"),
                (p.section("cssd") or {}).get("verdict") or "—",
                (p.section("csad") or {}).get("verdict") or "—",
                stat_range(inv.get("cumulative_return")), stat_range(inv.get("sharpe")),
                stat_range(inv.get("max_drawdown")),
            ])
    theory = html_table(["run", "population", "kind", "agents / recorded", "amount RMSE (currency units)",
                         "proportion RMSE (pp)", "certainty equivalent: simulated vs theory, gap [CI]",
                         "herding distance h, mean: simulated / theory"], theory_rows, numeric=(4, 5))
    herding = html_table(["run", "population", "LSV mean H ± se", "CSSD (Christie–Huang)",
                          "CSAD (Chang–Cheng–Khorana)", "cumulative return, median [5 %, 95 %]",
                          "Sharpe ratio, median [5 %, 95 %]", "max drawdown, median [5 %, 95 %]"],
                         herding_rows)
    return theory, herding


def provenance_html(run, run_path, analysis, analysis_path):
    attrs = run.attrs
    rows = [
        ["run file", os.path.abspath(run_path)],
        ["herdsim version (writer)", attr_str(attrs.get("herdsim_version", "?"))],
        ["seed", attr_str(attrs.get("seed", "?"))],
        ["created", attr_str(attrs.get("created", "?"))],
        ["command line", attr_str(attrs.get("command_line", "?"))],
        ["complete", "yes" if int(attrs.get("complete", 0)) == 1 else "NO (an interrupted or failed run)"],
    ]
    if analysis:
        opts = analysis.get("options") or {}
        rows += [
            ["analysis file", os.path.abspath(analysis_path)],
            ["analysis by herdsim", str(analysis.get("herdsim_version", "?"))],
            ["analysis created", str(analysis.get("created", "?"))],
            ["analysis options",
             ", ".join(f"{k} = {'default' if v is None else v}" for k, v in opts.items())],
        ]
    else:
        rows.append(["analysis", "none: only the figures drawn from the run file are shown"])
    scenario = attr_str(attrs.get("scenario", ""))
    return (html_table(["item", "value"], rows) + "\n<details><summary>Scenario (after overrides)</summary>\n"
            f"<pre>{esc(scenario)}</pre>\n</details>")


def group_info_html(g):
    wealth_update = (g.info or {}).get("wealth_update", "")
    parts = [f"{g.steps} steps, dt = {g.dt:g} years", f"rows recorded every {g.every} step(s)",
             f"{len(g.paths)} of {g.paths_total} paths recorded"]
    if wealth_update:
        parts.append(f"{wealth_update} wealth update")
    if g.info is None:
        parts.append("no analysis for this run group")
    return f"<p class=\"note\">{esc('; '.join(parts))}.</p>"


def contents_html(groups, across=None):
    """A list of links to each run group and population section (anchors set while drawing), after the
    figures across sweep points where there are some (across: that section's title)."""
    items = [f"<li><a href=\"#across\">{esc(across)}</a></li>"] if across else []
    for g in groups:
        pops = ", ".join(f"<a href=\"#{p.anchor}\">{esc(p.name)}</a>" for p in g.populations)
        items.append(f"<li><a href=\"#{g.tag}\">{esc(g.title())}</a>: {pops}</li>")
    return "<h2>Contents</h2>\n<ul>" + "".join(items) + "</ul>"


def figure_html(fig):
    return (f"<figure><img src=\"{esc(fig['file'])}\" alt=\"{esc(fig['title'])}\">"
            f"<figcaption><b>{esc(fig['title'])}.</b> <i>How to read it:</i> {esc(fig['how'])}"
            + (f" <span class=\"note\">{esc(fig['note'])}</span>" if fig["note"] else "")
            + "</figcaption></figure>")


# ----------------------------------------------------------------------------------------------
# Driver


ACROSS_HOW = ("Each line is one population: its value at each sweep point (markers) with the confidence band "
              "of the analysis. A line that rises or falls with the swept parameter is the effect of that "
              "parameter on the measure; overlapping bands mean the points do not differ significantly.")
ACROSS_FILES_HOW = ("Each line is one population: its value in each run file (markers; a sweep file gives one "
                    "point per sweep point) with the confidence band of the analysis. The x axis is the scenario "
                    "value that differs between the files where it is a number, else the file names; "
                    "overlapping bands mean the files do not differ significantly.")


def across_title(across):
    return "Across files" if across.get("over") == "files" else "Across sweep points"


def across_section(across, out_dir):
    """The section of figures across sweep points or files (the analysis's "across"); returns (HTML,
    figures). Figures are sweep_<measure>.png for a sweep file, across_<measure>.png across files."""
    files = across.get("over") == "files"
    figures, skipped = sweep_figures.render(across, out_dir, "across" if files else "sweep", save)
    parts = [f"<h2 id=\"across\">{across_title(across)}</h2>",
             f"<p class=\"note\">{esc(len(across.get('points') or []))} points; "
             f"{esc(sweep_figures.x_description(across))}</p>"]
    how = ACROSS_FILES_HOW if files else ACROSS_HOW
    parts += [figure_html({**f, "how": how}) for f in figures]
    if skipped:
        parts.append("<p class=\"skip\">Not shown:</p><ul class=\"skip\">"
                     + "".join(f"<li>{esc(s)}</li>" for s in skipped) + "</ul>")
    return "\n".join(parts), len(figures)


def render_population(run, pop, out_dir, used_names):
    """Draws every figure of one population; returns (HTML, number of figures written)."""
    base = f"{run.tag}_{safe_name(pop.name)}"
    while base in used_names:  # two names that reduce to the same safe name
        base += "_"
    used_names.add(base)
    pop.anchor = base
    parts = [f"<h3 id=\"{base}\">{esc(pop.name)} <span class=\"note\">({esc(pop.kind)}"
             + (f", policy {esc(pop.info['policy'])}" if pop.info.get("policy") else "")
             + f", {pop.count()} agent{'s' if pop.count() != 1 else ''})</span></h3>"]
    notes = pop.info.get("notes") or []
    if notes:
        parts.append("<ul class=\"note\">" + "".join(f"<li>{esc(n)}</li>" for n in notes) + "</ul>")
    figures, written = draw_figures(FIGURES, base, out_dir, lambda plot, path: plot(run, pop, path))
    return "\n".join(parts + figures), written


def draw_figures(figures, base, out_dir, draw):
    """Draws each (suffix, title, how, plot) of figures into out_dir/<base>_<suffix>.png by draw(plot, path),
    which returns a caption note or raises Skip; returns (HTML parts: the figures, then what was not shown
    and why; figures written)."""
    parts, skipped, written = [], [], 0
    for suffix, title, how, plot in figures:
        file = f"{base}_{suffix}.png"
        try:
            note = draw(plot, os.path.join(out_dir, file))
        except Skip as e:
            plt.close("all")
            skipped.append(f"{title}: {e}")
            continue
        parts.append(figure_html({"file": file, "title": title, "how": how, "note": note}))
        written += 1
    if skipped:
        parts.append("<p class=\"skip\">Not shown:</p><ul class=\"skip\">"
                     + "".join(f"<li>{esc(s)}</li>" for s in skipped) + "</ul>")
    return parts, written


# What market_figures.py borrows from this script.
MARKET_HELPERS = types.SimpleNamespace(save=save, Skip=Skip, signed_term=signed_term, esc=esc, fmt=fmt,
                                       html_table=html_table, draw_figures=draw_figures)


def file_sections(run, run_path, analysis, analysis_path, out_dir, file_tag, used_names, across=None):
    """The body of one run file: warnings, headline, provenance, contents, then (across given, the set's or
    the sweep's "across") the figures across points, then one section per run group. Returns (HTML parts,
    figures written)."""
    groups = run_groups(run, analysis, file_tag)
    body = []
    if int(run.attrs.get("complete", 0)) != 1:
        body.append("<p class=\"warn\">This run file is not complete (the run failed or was "
                    "interrupted): the figures show the rows written so far.</p>")
        print(f"herdsim report: warning: {run_path} is not complete; reporting the rows written so far",
              file=sys.stderr)
    if not groups:
        body.append("<p class=\"warn\">The run file holds no run group (recording was disabled).</p>")
    theory_table, herding_table = headline_rows(groups)
    body += ["<h2>Headline</h2>",
             "<p>Agreement with theory (RMSE of decisions against the theoretical plan; certainty "
             "equivalent in currency units with its confidence interval; herding distance: 0 = own "
             "Merton plan, 1 = the reference). A dash means not defined for this population.</p>",
             theory_table,
             "<p>Herding statistics and investor outcomes (over agents; returns and drawdowns as "
             "fractions, 0.1 = 10 %).</p>",
             herding_table,
             "<h2>Provenance</h2>", provenance_html(run, run_path, analysis, analysis_path)]
    toc_at = len(body)
    total = 0
    if across:
        text, written = across_section(across, out_dir)
        body.append(text)
        total += written
    for g in groups:
        body.append(f"<h2 id=\"{g.tag}\">{esc(g.title())}</h2>")
        body.append(group_info_html(g))
        if (g.info or {}).get("market"):
            text, written = market_figures.render_market(plt, run, g.name, g.info["market"], out_dir,
                                                         f"{g.tag}_market", MARKET_HELPERS)
            body.append(text)
            total += written
        for pop in g.populations:
            text, written = render_population(g, pop, out_dir, used_names)
            body.append(text)
            total += written
    body.insert(toc_at, contents_html(groups, across=across_title(across) if across else None))
    return body, total


def split_analysis(analysis, run_paths):
    """(one analysis or None per run file, the across object or None) from a single analysis or a set;
    InputError when the analysis is of the other kind or counts other files."""
    if analysis is None:
        return [None] * len(run_paths), None
    if len(run_paths) == 1:
        if analysis.get("schema") != ANALYSIS_SCHEMA:
            raise InputError("the analysis is a set of several run files but one run file was given")
        return [analysis], analysis.get("across")
    analyses = analysis.get("analyses")
    if analysis.get("schema") != ANALYSIS_SET_SCHEMA or not isinstance(analyses, list):
        raise InputError(f"{len(run_paths)} run files need an analysis set ('{ANALYSIS_SET_SCHEMA}', written by "
                         "`herdsim compare` on the same files)")
    if len(analyses) != len(run_paths):
        raise InputError(f"the analysis set holds {len(analyses)} analyses for {len(run_paths)} run files")
    return analyses, analysis.get("across")


def write_report(run_paths, out_dir, analysis_path):
    """Writes the figures and index.html of one run file (a path) or several (a list: one section per
    file after the figures across files); returns (index path, figures written)."""
    single = isinstance(run_paths, str)
    run_paths = [run_paths] if single else list(run_paths)
    analyses, across = split_analysis(load_analysis(analysis_path), run_paths)
    os.makedirs(out_dir, exist_ok=True)
    used_names, total = set(), 0
    if len(run_paths) == 1:
        with open_run_file(run_paths[0]) as run:
            body, total = file_sections(run, run_paths[0], analyses[0], analysis_path, out_dir, "", used_names,
                                        across)
        title = os.path.basename(run_paths[0])
        body.insert(0, f"<h1>herdsim report: {esc(title)}</h1>")
    else:
        names = [os.path.basename(p) for p in run_paths]
        title = ", ".join(names)
        body = [f"<h1>herdsim report: {len(run_paths)} run files</h1>",
                "<h2>Contents</h2>\n<ul>"
                + (f"<li><a href=\"#across\">{esc(across_title(across))}</a></li>" if across else "")
                + "".join(f"<li><a href=\"#f{k}\">Run file {k + 1}: {esc(n)}</a></li>" for k, n in enumerate(names))
                + "</ul>"]
        if across:
            text, written = across_section(across, out_dir)
            body.append(text)
            total += written
        for k, path in enumerate(run_paths):
            with open_run_file(path) as run:
                parts, written = file_sections(run, path, analyses[k], analysis_path, out_dir, f"f{k}_", used_names)
            # One section per file; its run groups and figures are prefixed f<k>_ so that names stay unique.
            body.append(f"<h1 id=\"f{k}\" class=\"file\">Run file {k + 1} of {len(run_paths)}: {esc(names[k])}</h1>")
            body += parts
            total += written
    page = ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>herdsim report: {esc(title)}</title>\n<style>{CSS}</style>\n"
            "</head>\n<body>\n" + "\n".join(body)
            + f"\n<p class=\"note\">{total} figures.</p>\n</body>\n</html>\n")
    index = os.path.join(out_dir, "index.html")
    with open(index, "w", encoding="utf-8") as out:
        out.write(page)
    return index, total


def main(argv=None):
    parser = argparse.ArgumentParser(description="Figures and an HTML page from a herdsim run file.")
    parser.add_argument("run", metavar="RUN.h5", nargs="+",
                        help="run file(s) written by herdsim run; several get one section each and the figures "
                             "across files")
    parser.add_argument("-o", "--output", required=True, metavar="DIR", help="output directory")
    parser.add_argument("--analysis", metavar="ANALYSIS.json",
                        help="analysis written by `herdsim compare RUN.h5 [RUN2.h5 ...] --format json`")
    parser.add_argument("--publish-dir", metavar="DIR",
                        help="where the files are moved after drawing (herdsim report stages them in "
                             "DIR.partial); only named in the final message")
    args = parser.parse_args(argv)
    try:
        index, count = write_report(args.run[0] if len(args.run) == 1 else args.run, args.output,
                                    args.analysis)
    except InputError as e:
        print(f"herdsim report: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as e:
        print(f"herdsim report: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.publish_dir:
        index = os.path.join(args.publish_dir, os.path.basename(index))
    print(f"herdsim report: wrote {index} ({count} figure{'s' if count != 1 else ''})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
