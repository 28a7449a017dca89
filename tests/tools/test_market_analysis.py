#!/usr/bin/env python3
"""The market section of `herdsim compare` on schema-2 runs (issue 13 items 5, 8): real runs of
scenarios/market/*.toml and of a pre-impact scenario written here, read back with h5py, and every number
recomputed here with numpy from the recorded prices (none of herdsim's code). The pre-impact run checks
the AR(1) of docs/theory.md §7.2: constant-amount holders make the lag-1 autocorrelation of returns
-lambda * sum_i P_i / depth.

Usage: test_market_analysis.py PATH_TO_HERDSIM SCENARIO_DIR
"""
import json
import math
import os

import h5py
import numpy as np

import support

# Merton holders with r = 0 hold the constant amount mu / (alpha sigma^2) (arithmetic steps, G = 1): the
# flow of step k is then -H R_{k-1}, H = count * mu / (alpha sigma^2).
MU, SIGMA, ALPHA, COUNT, LAMBDA, DEPTH, PATHS, STEPS = 0.07, 0.17, 0.2, 100, 1.0, 4000.0, 200, 120
PRE_IMPACT = f"""
[run]
seed = 5
paths = {PATHS}
horizon = 10
steps_per_year = 12

[market]
mu = {MU}
r = 0.0
sigma = {SIGMA}
price0 = 1.0

[market.impact]
lambda = {LAMBDA}
depth = {DEPTH}
execution = "pre_impact"

[[population]]
name = "holders"
kind = "merton"
count = {COUNT}
alpha = {ALPHA}
wealth = 100.0

[record]
max_agents = 3
"""


def pooled_acf(x, lag):
    """Autocorrelation of a (periods, paths) panel around the pooled mean; lags stay within a path."""
    d = x - x.mean()
    return float((d[:-lag] * d[lag:]).sum() / (d * d).sum())


def hill(x, q):
    a = np.sort(np.abs(x - x.mean()).ravel())[::-1]
    k = int(math.floor(q * a.size))
    return k / np.log(a[:k] / a[k]).sum()


def compare_json(test, h5, *extra):
    out = test.path("analysis.json")
    res = support.herdsim("compare", h5, "--format", "json", "-o", out, *extra)
    test.assertEqual(res.returncode, 0, res.stderr)
    with open(out) as f:
        return json.load(f)


class MarketAnalysis(support.TempDirTest):
    def run_scenario(self, path, name, *args):
        out = self.path(name)
        res = support.herdsim("run", path, "-o", out, "-q", *args)
        self.assertEqual(res.returncode, 0, res.stderr)
        return out

    def test_pre_impact_constant_holders_give_the_ar1_coefficient(self):
        h5 = self.run_scenario(self.scenario(PRE_IMPACT, "pre.toml"), "pre.h5")
        holding = COUNT * MU / (ALPHA * SIGMA ** 2)
        phi = -LAMBDA * holding / DEPTH  # about -0.30
        with h5py.File(h5, "r") as f:
            ret = f["market/return"][()][:, 0, :]  # (D, P): one asset
            amount = f["populations/holders/amount"][()]
        np.testing.assert_allclose(amount, MU / (ALPHA * SIGMA ** 2), rtol=1e-12)  # constant amounts
        r = np.log1p(ret)
        # Steps 0 and 1 carry the opening purchase (flow H at step 0, -H R_0 at step 1): the stationary
        # AR(1) starts at step 2.
        rho = pooled_acf(r[2:], 1)
        n = r[2:].size
        tol = 4 * math.sqrt((1 - phi ** 2) / n) + 0.01  # sampling, and the log/simple-return difference
        self.assertLess(abs(rho - phi), tol, f"rho(1) = {rho}, -lambda H / depth = {phi}")
        self.assertLess(abs(pooled_acf(r[2:], 2) - phi ** 2), tol)
        # compare's ACF (from the second step on) is numpy's on the same rows.
        facts = compare_json(self, h5)["runs"][0]["market"]["per_asset"][0]["stylised_facts"]
        self.assertAlmostEqual(facts["acf_r"]["acf"][0], pooled_acf(r[1:], 1), places=10)
        self.assertEqual(facts["acf_r"]["observations"], r[1:].size)
        self.assertAlmostEqual(facts["acf_r"]["band"], 1.96 / math.sqrt(r[1:].size), places=12)
        self.assertLess(facts["acf_r"]["acf"][0], -0.2)

    def test_impact_scenario_market_section_and_price_taker_gap(self):
        h5 = self.run_scenario(os.path.join(support.SCENARIOS, "market", "impact.toml"), "impact.h5")
        run = compare_json(self, h5)["runs"][0]
        market = run["market"]
        self.assertEqual(market["assets"], 1)
        self.assertTrue(market["impact"])
        self.assertIsNone(market["herding_across_assets"])
        with h5py.File(h5, "r") as f:
            price, fundamental = f["market/price"][()][:, 0, :], f["market/fundamental"][()][:, 0, :]
            ret = f["market/return"][()][:, 0, :]
        r = np.log1p(ret[1:])
        asset = market["per_asset"][0]
        facts = asset["stylised_facts"]
        d = r - r.mean()
        self.assertAlmostEqual(facts["excess_kurtosis"], (d ** 4).mean() / (d ** 2).mean() ** 2 - 3, places=9)
        for h in facts["hill"]:
            self.assertAlmostEqual(h["index"], hill(r, h["tail_fraction"]), places=9)
        self.assertEqual([h["tail_fraction"] for h in facts["hill"]], [0.05, 0.025])
        self.assertEqual(len(facts["acf_abs"]["acf"]), 20)
        self.assertAlmostEqual(facts["acf_abs"]["acf"][4], pooled_acf(np.abs(r), 5), places=10)
        self.assertAlmostEqual(facts["acf_squared"]["acf"][0], pooled_acf(r ** 2, 1), places=10)
        m = np.log(price / fundamental)
        mis = asset["mispricing"]
        self.assertAlmostEqual(mis["mean"], m.mean(), places=12)
        self.assertAlmostEqual(mis["sd"], m.std(), places=12)
        self.assertAlmostEqual(mis["max_abs"], np.abs(m).max(), places=12)
        self.assertEqual(asset["episodes"]["bubbles"], count_runs(m > 0.1, 3))
        self.assertEqual(asset["episodes"]["crashes"], count_runs(m < -0.1, 3))
        # The price-taker gap: the rational holders' CE against their price-taker theory, as in their
        # population entry.
        gap = {g["population"]: g for g in market["price_taker_gap"]}
        rational = next(p for p in run["populations"] if p["name"] == "rational")
        self.assertEqual(gap["rational"]["certainty_equivalent"]["gap"], rational["certainty_equivalent"]["gap"])
        self.assertIsNone(gap["noise"]["certainty_equivalent"])
        md = support.herdsim("compare", h5, "--format", "markdown", "-o", self.path("a.md"))
        self.assertEqual(md.returncode, 0, md.stderr)
        with open(self.path("a.md")) as f:
            text = f.read()
        self.assertIn("### Market (1 asset, prices moved by the agents' flow)", text)
        self.assertIn("Price-taker gap", text)

    def test_correlated_assets_herding_across_assets(self):
        h5 = self.run_scenario(os.path.join(support.SCENARIOS, "market", "correlated_assets.toml"), "assets.h5",
                               "--set", "record.every=1", "--set", "run.paths=100")
        market = compare_json(self, h5)["runs"][0]["market"]
        self.assertEqual(market["asset_names"], ["stock", "bond", "gold"])
        self.assertFalse(market["impact"])
        with h5py.File(h5, "r") as f:
            ret = f["market/return"][()]  # (D, N, P)
        # Cross-sections pooled path-major: path 0's periods first.
        panel = ret.transpose(2, 0, 1).reshape(-1, 3)
        rm = panel.mean(axis=1)
        csad = np.abs(panel - rm[:, None]).mean(axis=1)
        h = market["herding_across_assets"]
        self.assertEqual(h["observations"], panel.shape[0])
        np.testing.assert_allclose(h["csad"]["series"]["csad"], csad, rtol=1e-12)
        x = np.column_stack([np.ones_like(rm), np.abs(rm), rm ** 2])
        coef = np.linalg.lstsq(x, csad, rcond=None)[0]
        got = [c["estimate"] for c in h["csad"]["coefficients"]]
        np.testing.assert_allclose(got, coef, rtol=1e-8)
        self.assertTrue(h["csad"]["newey_west"])
        self.assertEqual([c["tail_fraction"] for c in h["cssd"]], [0.01, 0.05])
        # Exogenous prices: the fundamental is the price, no mispricing.
        for asset in market["per_asset"]:
            self.assertEqual(asset["mispricing"]["max_abs"], 0.0)
        # The Merton investors' decisions against theory/amount, per asset: they play their plan.
        gap = {g["population"]: g for g in market["price_taker_gap"]}
        self.assertEqual(gap["rational"]["decision_rmse_amount_per_asset"], [0.0, 0.0, 0.0])
        # Terminal wealth against the closed form of docs/theory.md §7.1 (arithmetic steps: X_n normal with
        # mean x0 G^n + sum_k G^(n-1-k) P_k.v dt and variance sum_k G^(2(n-1-k)) P_k' Sigma P_k dt), written
        # here from the scenario's parameters, and the CE of compare's price-taker gap against it.
        mu, sigma = np.array([0.07, 0.045, 0.06]), np.array([0.17, 0.06, 0.20])
        corr = np.array([[1.0, 0.3, -0.2], [0.3, 1.0, 0.1], [-0.2, 0.1, 1.0]])
        cov, v, dt, n, growth = np.diag(sigma) @ corr @ np.diag(sigma), mu - 0.04, 1 / 12, 120, 1 + 0.04 / 12
        with h5py.File(h5, "r") as f:
            plan = f["populations/rational/theory/amount"][()]  # (N, n, M)
            final = f["populations/rational/wealth"][()][-1]  # (P, M)
            alpha = f["populations/rational/params/alpha"][()]
        ce_theory = []
        for i in range(plan.shape[2]):
            w = growth ** (n - 1 - np.arange(n))
            mean = 10.0 * growth ** n + np.sum(w * (v @ plan[:, :, i]) * dt)
            var = np.sum(w ** 2 * np.einsum("ak,ab,bk->k", plan[:, :, i], cov, plan[:, :, i]) * dt)
            x = final[:, i]
            self.assertLess(abs(x.mean() - mean), 4 * math.sqrt(var / x.size))
            self.assertLess(abs(x.var() / var - 1), 4 * math.sqrt(2 / x.size))
            ce_theory.append(mean - alpha[i] / 2 * var)
        ce = gap["rational"]["certainty_equivalent"]
        self.assertTrue(ce["exact"])
        self.assertAlmostEqual(ce["theory"], np.mean(ce_theory), places=9)
        self.assertLess(abs(ce["gap"]), 2 * (ce["ci_high"] - ce["ci_low"]))  # within about 4 standard errors

    def test_feedback_scenario_mispricing_and_episodes(self):
        h5 = self.run_scenario(os.path.join(support.SCENARIOS, "market", "feedback.toml"), "fb.h5",
                               "--set", "run.paths=50")
        market = compare_json(self, h5)["runs"][0]["market"]
        with h5py.File(h5, "r") as f:
            m = np.log(f["market/price"][()][:, 0, :] / f["market/fundamental"][()][:, 0, :])
            flow = f["market/flow"][()]
        asset = market["per_asset"][0]
        self.assertAlmostEqual(asset["flow_mean_abs"], np.abs(flow).mean(), places=9)
        self.assertAlmostEqual(asset["mispricing"]["sd"], m.std(), places=12)
        ep = asset["episodes"]
        self.assertEqual(ep["threshold"], 0.1)
        self.assertEqual(ep["bubbles"], count_runs(m > 0.1, 3))
        self.assertEqual(ep["crashes"], count_runs(m < -0.1, 3))
        self.assertEqual(len(ep["bubble_list"]), ep["bubbles"])


def count_runs(mask, min_rows):
    """Runs of at least min_rows consecutive True rows, per path (column)."""
    n = 0
    for col in mask.T:
        length = 0
        for v in list(col) + [False]:
            if v:
                length += 1
            else:
                n += length >= min_rows
                length = 0
    return n


if __name__ == "__main__":
    support.main(scenarios=True)
