"""The market section of `herdsim report` for schema-2 run groups (several assets, or price impact):
price against fundamental (fan chart), CSAD across assets against |R_m| with the fitted CCK curve, the
autocorrelation of |r| with its band, and the log-log tail of |r − mean| with the Hill fits. Reads the
run file through herdsim_load and the analysis's "market" section (docs/analysis.md); called by
herdsim_report.py, which passes its helpers (save, Skip, signed_term) so that each is written once.
"""
import numpy as np

MAX_ASSET_PANELS = 4  # fan charts and tails drawn for the first assets only
MAX_SCATTER_POINTS = 4000  # pooled cross-sections drawn (a deterministic, evenly spaced subset)


def _panels(plt, n, width=5.0, height=4.0):
    fig, axes = plt.subplots(1, n, figsize=(width * n, height), squeeze=False)
    return fig, list(axes[0])


def _log_returns(run, group, impact):
    """(D', N, P) log returns ln(1 + R) as compare computes them (from the second row under impact)."""
    r = np.log1p(run.market(group)["return"])
    if r.ndim == 2:
        r = r[:, None, :]
    return r[1:] if impact and r.shape[0] > 1 else r


def plot_price_fan(plt, run, group, market, fig_path, h):
    """Market price against fundamental (top) and the mispricing ln(S/F) (bottom): median and bands over
    paths, per asset."""
    m = run.market(group)
    if "fundamental" not in m:
        raise h.Skip("the run file has no fundamental")
    t = run.time(group)["t"]
    names = market.get("asset_names") or run.assets(group)
    n = min(len(names), MAX_ASSET_PANELS)
    fig, axes = plt.subplots(2, n, figsize=(5.0 * n, 6.4), squeeze=False, sharex=True,
                             gridspec_kw={"height_ratios": [3, 2]})
    quantiles = [0.05, 0.25, 0.5, 0.75, 0.95]
    for a in range(n):
        top, bottom = axes[0][a], axes[1][a]
        price, fundamental = m["price"][:, a, :], m["fundamental"][:, a, :]
        q = np.nanquantile(price, quantiles, axis=1)
        top.fill_between(t, q[0], q[4], color="tab:red", alpha=0.12, lw=0, label="S: 90 % band")
        top.fill_between(t, q[1], q[3], color="tab:red", alpha=0.25, lw=0, label="S: 50 % band")
        top.plot(t, q[2], color="tab:red", lw=1.6, label="market price S: median")
        f = np.nanquantile(fundamental, quantiles, axis=1)
        top.plot(t, f[2], color="black", lw=1.3, ls="--", label="fundamental F: median")
        top.plot(t, f[0], color="black", lw=0.8, ls=":", label="F: 5 % and 95 %")
        top.plot(t, f[4], color="black", lw=0.8, ls=":")
        top.set_ylabel("price (currency units)")
        top.set_title(names[a])
        top.grid(alpha=0.3)
        top.legend(fontsize=7, loc="upper left")
        mis = np.log(price / fundamental)
        q = np.nanquantile(mis, quantiles, axis=1)
        bottom.fill_between(t, q[0], q[4], color="tab:purple", alpha=0.15, lw=0, label="90 % band")
        bottom.fill_between(t, q[1], q[3], color="tab:purple", alpha=0.3, lw=0, label="50 % band")
        bottom.plot(t, q[2], color="tab:purple", lw=1.5, label="median")
        bottom.axhline(0.0, color="black", lw=0.8)
        bottom.set_xlabel("t (years)")
        bottom.set_ylabel("mispricing ln(S/F) (1)")
        bottom.grid(alpha=0.3)
        bottom.legend(fontsize=7, loc="upper left")
    fig.suptitle("Market price against fundamental over the recorded paths")
    h.save(fig, fig_path)
    paths = m["price"].shape[-1]
    return f"{paths} recorded paths" + (f"; the first {n} of {len(names)} assets" if n < len(names) else "")


def plot_csad_assets(plt, run, group, market, fig_path, h):
    """CSAD across assets against |R_m|, pooled (path, step) cross-sections, with the CCK fit and bin means."""
    herding = market.get("herding_across_assets")
    if not herding:
        raise h.Skip("one asset: CSAD across assets needs at least two (see the populations' CSAD across agents)")
    csad = herding["csad"]
    series = csad.get("series") or {}
    x = np.asarray(series.get("abs_market_return") or [], dtype=float)
    y = np.asarray(series.get("csad") or [], dtype=float)
    if x.size == 0:
        raise h.Skip("the analysis has no CSAD series")
    coefs = {c["name"]: c["estimate"] for c in csad.get("coefficients") or []}
    fig, (ax,) = _panels(plt, 1, width=7.0, height=4.6)
    step = max(1, x.size // MAX_SCATTER_POINTS)
    ax.scatter(x[::step], y[::step], s=5, color="tab:purple", alpha=0.25, lw=0,
               label="(path, step) cross-sections" + ("" if step == 1 else f" (one in {step} drawn)"))
    # Means of CSAD in 20 bins of equal counts: the fit, on every point, goes through these.
    order = np.argsort(x)
    bins = np.array_split(order, 20)
    ax.plot([x[b].mean() for b in bins], [y[b].mean() for b in bins], "o", color="black", ms=4,
            label="mean CSAD in 20 bins of |R_m| (equal counts)")
    if all(k in coefs and coefs[k] is not None for k in ("const", "gamma1", "gamma2")):
        a, g1, g2 = coefs["const"], coefs["gamma1"], coefs["gamma2"]
        grid = np.linspace(0.0, x.max(), 200)
        ax.plot(grid, a + g1 * grid + g2 * grid * grid, color="tab:orange", lw=2,
                label=f"CCK fit: {a:.3g}{h.signed_term(g1, '·|R_m|')}{h.signed_term(g2, '·R_m²')}")
    ax.set_xlabel("|equal-weighted market return R_m| (1, return units per step)")
    ax.set_ylabel("CSAD across assets (1, return units per step)")
    ax.set_title("CSAD across assets against |R_m|")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    h.save(fig, fig_path)
    return f"{herding.get('observations')} cross-sections of {herding.get('assets')} assets: {csad.get('verdict', '')}."


def plot_acf_abs(plt, run, group, market, fig_path, h):
    """Autocorrelation of |r| per asset at lags 1..20 with the 95 % band of independence."""
    assets = [a for a in market.get("per_asset") or [] if a.get("stylised_facts")]
    if not assets:
        raise h.Skip("the analysis has no stylised facts (too few recorded steps)")
    fig, (ax,) = _panels(plt, 1, width=7.0, height=4.4)
    width = 0.8 / len(assets)
    band = None
    for j, a in enumerate(assets):
        acf = np.asarray([np.nan if v is None else v for v in a["stylised_facts"]["acf_abs"]["acf"]], dtype=float)
        lags = np.arange(1, acf.size + 1)
        ax.bar(lags - 0.4 + width * (j + 0.5), acf, width=width, label=a["name"])
        band = a["stylised_facts"]["acf_abs"]["band"]
    ax.axhline(band, color="black", ls="--", lw=1, label=f"±1.96/√n = ±{band:.3g}")
    ax.axhline(-band, color="black", ls="--", lw=1)
    ax.axhline(0.0, color="0.5", lw=0.8)
    ax.set_xticks(np.arange(1, len(assets[0]["stylised_facts"]["acf_abs"]["acf"]) + 1))
    ax.set_xlabel("lag (recorded steps)")
    ax.set_ylabel("autocorrelation of |r| (1)")
    ax.set_title("Volatility clustering: autocorrelation of |log return|")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)
    h.save(fig, fig_path)
    return "Bars outside the dashed band differ from 0 at the 5 % level (one lag in twenty does by chance)."


def plot_tail(plt, run, group, market, fig_path, h):
    """Log-log survival function of |r − mean| with the Hill power laws at the 5 % and 2.5 % tails."""
    assets = [a for a in market.get("per_asset") or [] if a.get("stylised_facts")]
    if not assets:
        raise h.Skip("the analysis has no stylised facts (too few recorded steps)")
    r = _log_returns(run, group, bool(market.get("impact")))
    n_panels = min(len(assets), MAX_ASSET_PANELS)
    fig, axes = _panels(plt, n_panels)
    names = market.get("asset_names") or []
    for ax, a in zip(axes, assets[:n_panels]):
        x = r[:, names.index(a["name"]), :].ravel()
        d = np.sort(np.abs(x - x.mean()))[::-1]
        n = d.size
        surv = np.arange(1, n + 1) / n  # P(|r − mean| >= d_(i))
        top = max(10, n // 5)
        ax.loglog(d[:top], surv[:top], ".", ms=3, color="tab:blue", label="empirical (largest 20 %)")
        for hill, color in zip(a["stylised_facts"]["hill"], ("tab:red", "tab:green")):
            k, u, alpha = hill["k"], hill["threshold"], hill["index"]
            if not (k and u and alpha):
                continue
            grid = np.geomspace(u, d[0], 50)
            ax.loglog(grid, (k / n) * (grid / u) ** (-alpha), color=color, lw=1.6,
                      label=f"Hill, {100 * hill['tail_fraction']:g} % tail: α = {alpha:.2f} (k = {k})")
        ax.set_xlabel("|log return − mean| (1, per step)")
        ax.set_ylabel("share of returns at least as large (1)")
        ax.set_title(a["name"])
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7, loc="lower left")
    fig.suptitle("Tails of the returns (normal returns give α near 6 at the 5 % tail)")
    h.save(fig, fig_path)
    return ""


# (file suffix, title, how to read it, plot function), in page order.
FIGURES = (
    ("price_fundamental", "Market price against fundamental",
     "Top: the market price (red: median and central 50 % and 90 % over paths), moved by the agents' flow, "
     "and the fundamental (black dashed median, dotted 5 % and 95 %), the exogenous GBM the same seed gives "
     "without impact. Bottom: the mispricing ln(S/F) over the same paths. A band above 0 is a market that "
     "trades above its fundamental (a bubble when it lasts, see the episodes); a flat 0 means prices are "
     "exogenous.",
     plot_price_fan),
    ("csad_assets", "CSAD across assets and the CCK regression",
     "Each small point is one path's cross-section at one step: the mean absolute deviation of the asset "
     "returns from their equal-weighted mean, against the absolute market return. Black dots average the "
     "points in bins; the orange curve is the Chang–Cheng–Khorana fit on every point. A curve bending down "
     "at large |R_m| (a significantly negative γ2) is the signature of herding across assets.",
     plot_csad_assets),
    ("acf_abs", "Autocorrelation of |r|",
     "The autocorrelation of the absolute log return at each lag, pooled over paths. Positive, slowly "
     "decaying bars are volatility clustering (a stylised fact of real markets); a GBM gives bars inside "
     "the dashed band.",
     plot_acf_abs),
    ("tail", "Return tails and the Hill index",
     "Log-log plot of the share of returns whose distance from the mean is at least x. A straight line is a "
     "power law whose slope is −α; the coloured lines are the Hill fits from the largest 5 % and 2.5 %. "
     "Fat tails (real markets: α about 3) give a small α; normal returns curve down and give α near 6.",
     plot_tail),
)


def render_market(plt, run, group, market, out_dir, base, h):
    """(HTML, figures written) of a run group's market section; h carries save, Skip, signed_term, esc, fmt,
    html_table and draw_figures from herdsim_report."""
    parts = [f"<h3 id=\"{base}\">Market <span class=\"note\">({market.get('assets')} asset(s), "
             + ("prices moved by the agents' flow" if market.get("impact") else "exogenous prices") + ")</span></h3>"]
    rows = []
    for a in market.get("per_asset") or []:
        f, mis, ep = a.get("stylised_facts") or {}, a.get("mispricing") or {}, a.get("episodes") or {}
        hill = f.get("hill") or []
        rows.append([a["name"], h.fmt(f.get("excess_kurtosis"), 3)]
                    + [h.fmt(x.get("index"), 3) for x in hill[:2]] + ["—"] * (2 - len(hill[:2]))
                    + [h.fmt((f.get("acf_abs") or {}).get("acf", [None])[0], 3),
                       f"{h.fmt(mis.get('mean'), 3)} / {h.fmt(mis.get('sd'), 3)} / {h.fmt(mis.get('max_abs'), 3)}"
                       if mis else "—",
                       f"{ep.get('bubbles')} / {ep.get('crashes')}" if ep else "—"])
    parts.append(h.html_table(["asset", "excess kurtosis", "Hill α, 5 % tail", "Hill α, 2.5 % tail",
                               "ρ(|r|, lag 1)", "mispricing ln(S/F): mean / sd / max |m|",
                               "bubbles / crashes"], rows, numeric=(1, 2, 3, 4)))
    notes = market.get("notes") or []
    if notes:
        parts.append("<ul class=\"note\">" + "".join(f"<li>{h.esc(n)}</li>" for n in notes) + "</ul>")
    figures, written = h.draw_figures(FIGURES, base, out_dir,
                                      lambda plot, path: plot(plt, run, group, market, path, h))
    return "\n".join(parts + figures), written
