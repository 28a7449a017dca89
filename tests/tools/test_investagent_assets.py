#!/usr/bin/env python3
"""InvestAgents trading one named asset of a market of several (`asset`, docs/theory.md §7.1 "InvestAgents in
one of N assets") through the real executable, without a model: scenarios/market/investagents_two_assets.toml
(a stock and a bond, correlation 0.3, price impact without cross impact; a Merton advisor of both assets and
InvestAgents on the bond) answered by the p3_closed_form reference answerer, whose answers are exact up to the
answer format's rounding (and by the advisor, merton and own_theory answerers, each checked in the bond). Everything is checked against an independent computation here (numpy, scipy): the
advisor's Merton vector Sigma^{-1} v / (alpha G), its bond component as the InvestAgents' advisor path, and
the one-asset P3 closed form of the bond with that path (docs/theory.md §3.2, eta by a root find); the
InvestAgents' amounts (the bond: the rounded closed form; the stock: 0), theory/amount, the market flow of
each asset (the stock's has nothing of the InvestAgents), `herdsim compare` (the decision MSE against the
bond's theory), `herdsim export`, `herdsim report` (the decisions in the bond), and the validation of `asset`
(exit 2, one message).

usage: test_investagent_assets.py HERDSIM SCENARIOS_DIR
"""
import csv
import json
import math
import os
import sys
import tempfile
import unittest

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import investalign_reference as ref  # noqa: E402
import support  # noqa: E402

# The scenario's market and run.
R = 0.04
MU = np.array([0.07, 0.055])
SIGMA = np.array([0.17, 0.08])
RHO = 0.3
DEPTH = np.array([5000.0, 500.0])
T = 5
PATHS = 2
STOCK, BOND = 0, 1


def scenario():
    return os.path.join(support.SCENARIOS, "market", "investagents_two_assets.toml")


def merton_direction():
    """Sigma^{-1} v: the Merton investors' amounts per unit 1 / (alpha G)."""
    cov = np.diag(SIGMA) @ np.array([[1.0, RHO], [RHO, 1.0]]) @ np.diag(SIGMA)
    return np.linalg.solve(cov, MU - R)


def bond_theory(alpha, theta, x0, leader_alpha):
    """The one-asset P3 closed form of the bond at t = 1..T, the advisor's path its bond holding
    (Sigma^{-1} v)_bond / leader_alpha e^{-r (T - t)} in continuous time."""
    advisor = merton_direction()[BOND] / leader_alpha
    return np.array([ref.p3_one_asset(alpha, theta, x0, t, T, R, MU[BOND] - R, SIGMA[BOND], advisor)
                     for t in range(1, T + 1)])


def budgets(x0):
    return np.array(ref.BUDGET_LIST[:T]) * x0 / 10.0


def answered(path, x0):
    """The proportions an answer of the path (amounts at t = 1..T) gives, over the reference budgets to
    hundredths of a percent, clamped to [0, 100] %."""
    return np.array([ref.centi(a / b) / 10000.0 for a, b in zip(path, budgets(x0))])


def carried_trades(amounts, fundamental):
    """Amounts held (decision step x path) less last step's carried at the fundamental's growth (post-impact
    execution: the fresh position grows with the fundamental from its fill price)."""
    carried = amounts[:-1] * fundamental[1:-1] / fundamental[:-2]
    return amounts - np.vstack([np.zeros((1, amounts.shape[1])), carried])


class InvestAgentsInOneOfTwoAssets(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.out = os.path.join(cls.tmp.name, "bond.h5")
        cls.res = support.herdsim("run", scenario(), "-o", cls.out, "-q", "--set", f"run.paths={PATHS}",
                                  "--set", "population.investors.inference.backend=reference",
                                  "--set", "population.investors.inference.answerer=p3_closed_form")

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def setUp(self):
        self.assertEqual(self.res.returncode, 0, self.res.stderr)

    def test_the_advisor_holds_its_merton_vector(self):
        with h5py.File(self.out, "r") as f:
            self.assertEqual(int(f.attrs["schema_version"]), 2)
            self.assertEqual(f["/"].attrs["asset_names"], "stock,bond")
            theory = f["populations/advisor/theory/amount"][()]  # (N, n, 1): discrete-step Merton
        growth = (1.0 + R) ** (T - 1 - np.arange(T))
        for a in (STOCK, BOND):
            np.testing.assert_allclose(theory[a, :, 0], merton_direction()[a] / (0.2 * growth), rtol=1e-12)

    def test_amounts_and_theory_are_the_bond_p3_closed_form(self):
        with h5py.File(self.out, "r") as f:
            pop = f["populations/investors"]
            self.assertEqual(pop.attrs["asset"], "bond")
            self.assertEqual(pop.attrs["protocol"], "absolute")
            p = {k: pop["params"][k][()] for k in ("alpha", "theta", "wealth0", "leader_alpha")}
            theory = pop["theory/amount"][()]  # (N, n, M)
            amount = pop["amount"][()]  # (D, N, P, M)
            tr = pop["transcripts"]
            self.assertTrue((tr["valid"][()] == 1).all())
            agents, values = tr["agent"][()], tr["values"][()]
        m = len(p["alpha"])
        self.assertEqual(theory.shape, (2, T, m))
        self.assertEqual(amount.shape, (T, 2, PATHS, m))
        np.testing.assert_array_equal(theory[STOCK], 0.0)
        np.testing.assert_array_equal(amount[:, STOCK], 0.0)
        np.testing.assert_array_equal(p["leader_alpha"], 0.2)
        for i in range(m):
            want = bond_theory(p["alpha"][i], p["theta"][i], p["wealth0"][i], p["leader_alpha"][i])
            np.testing.assert_allclose(theory[BOND, :, i], want, rtol=1e-9, err_msg=f"agent {i}")
            # The answer: the closed form over the reference budgets to hundredths of a percent, played
            # as pi_j B_j on every path.
            b = budgets(p["wealth0"][i])
            pi = answered(want, p["wealth0"][i])
            np.testing.assert_allclose(values[agents == i][0, :T], pi, rtol=0, atol=1e-12)
            for path in range(PATHS):
                np.testing.assert_allclose(amount[:, BOND, path, i], pi * b, rtol=1e-12)
        # The herding pulls the answers off the investors' own bond Merton path (the check can fail).
        discount = np.exp(-R * (T - np.arange(1, T + 1)))
        own = (MU[BOND] - R) / (p["alpha"][None, :] * SIGMA[BOND] ** 2) * discount[:, None]
        self.assertGreater(np.abs(theory[BOND] - own).max(), 0.1)

    def test_every_reference_answerer_answers_in_the_bond(self):
        discount = np.exp(-R * (T - np.arange(1, T + 1)))
        for answerer in ("advisor", "merton", "own_theory"):
            with self.subTest(answerer=answerer):
                out = os.path.join(self.tmp.name, f"{answerer}.h5")
                res = support.herdsim("run", scenario(), "-o", out, "-q", "--set", "run.paths=1",
                                      "--set", "population.investors.inference.backend=reference",
                                      "--set", f"population.investors.inference.answerer={answerer}")
                self.assertEqual(res.returncode, 0, res.stderr)
                with h5py.File(out, "r") as f:
                    pop = f["populations/investors"]
                    p = {k: pop["params"][k][()] for k in ("alpha", "theta", "wealth0", "leader_alpha")}
                    amount = pop["amount"][()]
                np.testing.assert_array_equal(amount[:, STOCK], 0.0)
                for i in range(len(p["alpha"])):
                    if answerer == "advisor":  # its bond holding, component "bond" of its Merton vector
                        path = merton_direction()[BOND] / p["leader_alpha"][i] * discount
                    elif answerer == "merton":  # the investor's own Merton path in the bond alone
                        path = (MU[BOND] - R) / (p["alpha"][i] * SIGMA[BOND] ** 2) * discount
                    else:
                        path = bond_theory(p["alpha"][i], p["theta"][i], p["wealth0"][i], p["leader_alpha"][i])
                    played = answered(path, p["wealth0"][i]) * budgets(p["wealth0"][i])
                    np.testing.assert_allclose(amount[:, BOND, 0, i], played, rtol=1e-12, err_msg=f"agent {i}")

    def test_the_investagents_flow_is_in_the_bond_only(self):
        with h5py.File(self.out, "r") as f:
            advisor = f["populations/advisor/amount"][()][:, :, :, 0]  # (D, N, P)
            investors = f["populations/investors/amount"][()].sum(axis=-1)
            fundamental = f["market/fundamental"][()]  # (S, N, P)
            price = f["market/price"][()]
            flow = f["market/flow"][()]  # (D, N, P)
        for a, held in ((STOCK, advisor[:, STOCK]), (BOND, advisor[:, BOND] + investors[:, BOND])):
            np.testing.assert_allclose(flow[:, a], carried_trades(held, fundamental[:, a]), rtol=1e-9, atol=1e-12)
            # lambda = 1 on the diagonal, no cross impact: each price moves by its own flow over its depth.
            gap = np.diff(np.log(price[:, a] / fundamental[:, a]), axis=0)
            np.testing.assert_allclose(gap, flow[:, a] / DEPTH[a], rtol=1e-9, atol=1e-12)
        # The stock's flow is the advisor's alone; in the bond the InvestAgents' trades are most of it.
        self.assertGreater(np.abs(carried_trades(investors[:, BOND], fundamental[:, BOND])).max(),
                           0.5 * np.abs(flow[:, BOND]).max())

    def test_compare_scores_the_bond_against_its_theory(self):
        res = support.herdsim("compare", self.out, "--format", "json", "-q", "--no-sidecar")
        self.assertEqual(res.returncode, 0, res.stderr)
        pops = {p["name"]: p for p in json.loads(res.stdout)["runs"][0]["populations"]}
        inv = pops["investors"]
        self.assertEqual((inv["asset"], inv["protocol"], inv["problem"]), ("bond", "absolute", "P3"))
        self.assertNotIn("asset", pops["advisor"])
        with h5py.File(self.out, "r") as f:
            pop = f["populations/investors"]
            amount = pop["amount"][()][:, BOND]  # (D, P, M)
            theory = pop["theory/amount"][()][BOND]  # (n, M)
            wealth = pop["wealth"][()][:T]  # (D, P, M): X_k at each decision
        gap = amount - theory[:, None, :]
        de = inv["decision_error"]
        self.assertIsNotNone(de, inv["notes"])
        self.assertTrue(math.isclose(de["amount"]["mse"], float(np.mean(gap**2)), rel_tol=1e-9))
        self.assertTrue(math.isclose(de["proportion_pp"]["mse"], float(np.mean((100 * gap / wealth) ** 2)),
                                     rel_tol=1e-9))
        # Only the answer format's rounding: at most half a hundredth of a percent of a budget of 16.88.
        self.assertLessEqual(de["amount"]["mse"], (0.5e-4 * 16.88) ** 2)
        self.assertGreater(de["amount"]["mse"], 0.0)
        res = support.herdsim("compare", self.out, "-q", "--no-sidecar")
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertIn("protocol absolute on leader advisor, scored against P3, trading asset bond", res.stdout)

    def test_export_writes_nothing_in_the_stock(self):
        out = os.path.join(self.tmp.name, "investors.csv")
        res = support.herdsim("export", self.out, "--population", "investors", "-o", out)
        self.assertEqual(res.returncode, 0, res.stderr)
        with open(out) as f:
            rows = [r for r in csv.DictReader(f) if r["amount_stock"] != ""]
        self.assertEqual(len(rows), T * PATHS * 6)
        self.assertTrue(all(float(r["amount_stock"]) == 0.0 and float(r["theory_amount_stock"]) == 0.0
                            for r in rows))
        self.assertTrue(all(float(r["amount_bond"]) > 0.0 for r in rows))

    def test_report_draws_the_decisions_in_the_bond(self):
        out = os.path.join(self.tmp.name, "report")
        res = support.herdsim("report", self.out, "-o", out)
        self.assertEqual(res.returncode, 0, res.stderr)
        # The InvestAgents' decisions against their theory, in the asset they trade; the advisor's, in two
        # assets, are in the market section instead.
        self.assertGreater(os.path.getsize(os.path.join(out, "g0_investors_decisions.png")), 10_000)
        self.assertFalse(os.path.exists(os.path.join(out, "g0_advisor_decisions.png")))

    def test_asset_is_validated_with_one_message(self):
        res = support.herdsim("validate", scenario(), "--set", "population.investors.asset=gold")
        self.assertEqual(res.returncode, 2, res.stderr)
        lines = res.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, res.stderr)
        self.assertIn("asset", lines[0].split("there is no asset")[0])  # the key, then the reason
        self.assertIn("there is no asset named \"gold\"; the market's assets are \"stock\", \"bond\"", lines[0])
        with open(scenario()) as f:
            text = f.read()
        self.assertIn('asset = "bond"\n', text)
        path = support.write_scenario(self.tmp.name, "no_asset.toml", text.replace('asset = "bond"\n', ""))
        res = support.herdsim("run", path, "-o", os.path.join(self.tmp.name, "no.h5"),
                              "--set", "population.investors.inference.backend=reference",
                              "--set", "population.investors.inference.answerer=p3_closed_form")
        self.assertEqual(res.returncode, 2, res.stderr)
        lines = [line for line in res.stderr.strip().splitlines() if "population[" in line]
        self.assertEqual(len(lines), 1, res.stderr)
        self.assertIn("1 problem(s)", res.stderr)
        self.assertIn("population[1].asset: is required for kind = \"investagent\" in a market of several "
                      "assets: its prompts are about a single stock", lines[0])
        self.assertFalse(os.path.exists(os.path.join(self.tmp.name, "no.h5")))


if __name__ == "__main__":
    support.main(scenarios=True)
