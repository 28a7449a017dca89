"""The report's figures across sweep points: each measure against the swept parameter, one line per
population with its confidence band (docs/analysis.md, "Across sweep points and files").

Drawn from the analysis's "across" object (written by `herdsim compare` for a file with several run
groups, or for several run files: then the x axis is the differing scenario value or the file names). Used by
herdsim_report.py, which lays the figures out in index.html; a measure whose panel
would be empty or trivial is returned as a sentence instead of a figure.
"""
import os

import numpy as np
import matplotlib.pyplot as plt
from matplotlib.transforms import offset_copy

# Units of the analysis, in words for an axis.
UNITS = {"pp^2": "percentage points²", "currency^2": "currency units²", "currency": "currency units",
         "fraction": "fraction; 0.1 = 10 %", "per sqrt(year)": "annualised", "": "1"}

# Measures that cannot be negative: their axis starts at 0 (a band's lower end may not).
NON_NEGATIVE = {"decision_mse_pp", "decision_mse_amount", "h_simulated", "h_theory", "volatility",
                "max_drawdown"}

# What a swept key's last part means, in the words of the questionnaire and the theory.
PARAM_WORDS = {
    "lottery_prob": "lottery probability", "score": "dependence score", "alpha": "risk aversion α",
    "theta": "herding weight θ (dependence score = θ / 1e-8)", "sigma": "volatility σ (per √year)",
    "mu": "drift μ (per year)", "r": "risk-free rate r (per year)", "count": "number of agents",
    "seed": "seed", "paths": "paths", "horizon": "horizon (years)", "steps_per_year": "steps per year",
    "wealth": "initial wealth (currency units)", "k": "network degree k", "p": "rewiring probability p",
}

# What a pure number means, on its axis.
MEANING = {"h_simulated": "0 = own Merton plan, 1 = the reference",
           "h_theory": "0 = own Merton plan, 1 = the reference",
           "w_simulated": "weight on the own Merton plan", "w_theory": "weight on the own Merton plan",
           "lsv_mean_h": "0 = independent trades",
           "cssd_beta_l": "coefficient; < 0 = herding", "cssd_beta_u": "coefficient; < 0 = herding",
           "csad_gamma2": "coefficient; < 0 = herding"}

# Measures whose 0 is a reference (theory, no herding): a line marks it.
ZERO_LINE = {"ce_gap", "lsv_mean_h", "cssd_beta_l", "cssd_beta_u", "csad_gamma2", "cumulative_return"}

MARKERS = ("o", "s", "^", "v", "D", "P", "X")
DASHES = ("-", "--", ":", "-.")


def param_words(key):
    """'population.followers.theta' -> 'followers: herding weight θ (...)'; 'market.sigma' -> 'volatility σ
    (per √year)'; an unknown key is shown as it is."""
    parts = key.split(".")
    words = PARAM_WORDS.get(parts[-1])
    if words is None and len(parts) >= 2:
        words = PARAM_WORDS.get(parts[-2])  # e.g. alpha.lottery_prob.low: name the quantity
        if words is not None:
            words = f"{words}, {parts[-1]}"
    if words is None:
        return key
    if parts[0] == "population" and len(parts) >= 3:
        return f"{parts[1]}: {words}"
    return words


def pretty(label):
    """The analysis's ASCII label with its Greek letters and dashes."""
    for plain, fine in (("gamma2", "γ2"), ("beta_L", "β_L"), ("beta_U", "β_U"),
                        ("Chang-Cheng-Khorana", "Chang–Cheng–Khorana"), ("Christie-Huang", "Christie–Huang")):
        label = label.replace(plain, fine)
    return label


def short_words(key):
    """param_words without its parenthesis: for a legend."""
    return param_words(key).split(" (")[0]


def as_float(v):
    return float("nan") if v is None or isinstance(v, str) else float(v)


def numeric_column(points, i):
    """The i-th values of the points as floats, or None when one is text or absent."""
    values = [p["values"][i] for p in points]
    if any(v is None or isinstance(v, str) for v in values):
        return None
    return np.array(values, dtype=float)


def choose_x(across):
    """(index of the x parameter or None, indices of the other varying parameters). x is the numeric
    parameter with the most distinct values (the last such, the fastest-varying sweep axis, on ties)."""
    points, params = across["points"], across["params"]
    varying, best, best_count = [], None, 1
    for i in range(len(params)):
        distinct = {repr(p["values"][i]) for p in points}
        if len(distinct) < 2:
            continue
        varying.append(i)
        column = numeric_column(points, i)
        if column is not None and np.isfinite(column).all() and len(distinct) >= best_count:
            best, best_count = i, len(distinct)
    return best, [i for i in varying if i != best]


def value_text(v):
    if v is None:
        return "—"
    return v if isinstance(v, str) else f"{v:.4g}"


def series_of(across, table, x_index, others):
    """[(population, other-values label, x, mean, low, high)] with points ordered by x."""
    points = across["points"]
    groups = {}
    for j, p in enumerate(points):
        key = tuple(repr(p["values"][i]) for i in others)
        label = ", ".join(f"{short_words(across['params'][i])} = {value_text(p['values'][i])}" for i in others)
        groups.setdefault(key, (label, []))[1].append(j)
    out = []
    for pi, pop in enumerate(across["populations"]):
        for label, rows in groups.values():
            if x_index is not None:
                rows = sorted(rows, key=lambda j: points[j]["values"][x_index])
                x = np.array([points[j]["values"][x_index] for j in rows], dtype=float)
            else:
                x = np.array(rows, dtype=float)
            cells = [table["values"][j][pi] for j in rows]
            mean = np.array([as_float((c or {}).get("mean")) for c in cells])
            low = np.array([as_float((c or {}).get("ci_low")) for c in cells])
            high = np.array([as_float((c or {}).get("ci_high")) for c in cells])
            out.append((pop, label, x, mean, low, high))
    return out


def trivial_reason(measure):
    if measure.startswith("decision_mse"):
        return "exactly 0 at every point: these agents play the theoretical plan"
    return "exactly 0 at every point"


def draw_measure(across, table, x_index, others, path, save):
    """One figure of one measure; returns its caption note. Raises ValueError(reason) when nothing
    non-trivial is left to draw."""
    lines, left_out = [], []
    for pop, label, x, mean, low, high in series_of(across, table, x_index, others):
        name = pop + (f" ({label})" if label else "")
        finite = np.isfinite(mean)
        if not finite.any():
            continue  # the population has no such measure: not worth a sentence per measure
        if not np.any(mean[finite]) and not np.any(np.nan_to_num(high[finite])) \
                and not np.any(np.nan_to_num(low[finite])):
            if pop not in left_out:
                left_out.append(pop)
            continue
        lines.append((pop, name, x, mean, low, high))
    if not lines:
        if left_out:
            raise ValueError(f"{', '.join(left_out)}: {trivial_reason(table['measure'])}")
        raise ValueError("no population has a value at any sweep point")
    pops = list(dict.fromkeys(p for p, *_ in lines))
    colors = plt.get_cmap("tab10").colors
    labels = list(dict.fromkeys(n.split(" (", 1)[1] if " (" in n else "" for _, n, *_ in lines))
    fig, ax = plt.subplots(figsize=(8.5, 4.8))
    means = np.concatenate([m[np.isfinite(m)] for *_, m, _, _ in lines])
    positive = means[means > 0]
    log_y = (table["measure"] in NON_NEGATIVE and positive.size == means.size and positive.size > 1
             and positive.max() > 1000 * positive.min())
    for n, (pop, name, x, mean, low, high) in enumerate(lines):
        color = colors[pops.index(pop) % len(colors)]
        # Lines a few points apart sideways, so that populations with equal values stay visible.
        dodge = offset_copy(ax.transData, fig=fig, x=4.0 * (n - (len(lines) - 1) / 2), y=0, units="points")
        k = labels.index(name.split(" (", 1)[1] if " (" in name else "")
        ok = np.isfinite(mean)
        ax.plot(x[ok], mean[ok], DASHES[k % len(DASHES)], marker=MARKERS[k % len(MARKERS)], color=color,
                ms=5, lw=1.5, label=name, transform=dodge)
        band = ok & np.isfinite(low) & np.isfinite(high)
        if band.any():
            lo = np.maximum(low, positive.min() / 10) if log_y else low
            ax.fill_between(x[band], lo[band], high[band], color=color, alpha=0.15, lw=0.6,
                            edgecolor=color, transform=dodge)
    if x_index is not None:
        xs = np.array([p["values"][x_index] for p in across["points"]], dtype=float)
        ax.set_xlabel(param_words(across["params"][x_index]))
        if xs.min() > 0 and xs.max() >= 99.9 * xs.min():  # two decades or more
            ax.set_xscale("log")
        ax.set_xticks(sorted(set(xs)))
        ax.set_xticklabels([f"{v:.3g}" for v in sorted(set(xs))])
        ax.minorticks_off()
    else:
        ax.set_xticks(range(len(across["points"])))
        ax.set_xticklabels([p["label"] for p in across["points"]], rotation=20, ha="right", fontsize=8)
        ax.set_xlabel("run file" if across.get("over") == "files" else "sweep point")
    units = MEANING.get(table["measure"]) or UNITS.get(table["units"], table["units"])
    if table["measure"] in ZERO_LINE:
        ax.axhline(0.0, color="0.4", lw=0.9)
    label = pretty(table["label"])
    ax.set_ylabel(f"{label}\n({units})")
    if log_y:
        ax.set_yscale("log")
    elif table["measure"] in NON_NEGATIVE:
        ax.set_ylim(bottom=0.0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), title="population")
    ax.set_title(f"{label[0].upper() + label[1:]} — across {across.get('over', 'sweep points')}", fontsize=11)
    save(fig, path)
    confidence = across.get("confidence", 0.95)
    note = f"Bands: {confidence:.0%} intervals, {table['interval']}. Lines are set a few points apart sideways."
    if log_y:
        note += " Logarithmic axis: the values span more than three decades."
    if left_out:
        note += f" Not drawn: {', '.join(left_out)}, {trivial_reason(table['measure'])}."
    return note


def render(across, out_dir, prefix, save):
    """Draws one figure per measure of the across object into out_dir. Returns (figures, skipped):
    figures as dicts {file, title, note}, skipped as 'title: reason' sentences."""
    x_index, others = choose_x(across)
    figures, skipped = [], []
    for table in across.get("measures") or []:
        title = pretty(table["label"])
        title = title[0].upper() + title[1:]
        file = f"{prefix}_{table['measure']}.png"
        try:
            note = draw_measure(across, table, x_index, others, os.path.join(out_dir, file), save)
        except ValueError as e:
            plt.close("all")
            skipped.append(f"{title}: {e}")
            continue
        figures.append({"file": file, "title": title, "note": note})
    return figures, skipped


def x_description(across):
    """A sentence on what the x axis is."""
    x_index, others = choose_x(across)
    if x_index is None:
        if across.get("over") == "files":
            return "the x axis lists the run files by name (no numeric scenario value differs between them)."
        return "the x axis lists the points (no numeric parameter varies)."
    text = f"the x axis is {across['params'][x_index]} ({param_words(across['params'][x_index])})"
    if others:
        text += "; line styles tell apart " + ", ".join(
            f"{across['params'][i]} ({short_words(across['params'][i])})" for i in others)
    return text + "."

