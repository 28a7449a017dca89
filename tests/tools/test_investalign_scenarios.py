#!/usr/bin/env python3
"""The three InvestAlign evaluation scenarios (scenarios/investalign/p3_absolute.toml, p1_relative.toml,
p2_mutual.toml) end to end with a real model: `herdsim run` through the llama.cpp plugin with the tiny
Qwen2 test model, reduced to 6 investors and one seed with --set (`sweep.run.seed=[37]` replaces the file's seed
axis), then `herdsim compare` on each file.
Checks: every answer valid under the grammar, one transcript per agent (and stage), the protocol recorded,
and the MSE table (lottery probability x score) scored against the right problem (P3, P1, P2).
Also scenarios/market/investagents_impact.toml: InvestAgents (`step` protocol) whose trades move the price of
an endogenous market (docs/theory.md §7.2), one path; and scenarios/market/investagents_two_assets.toml:
InvestAgents trading the bond of a two-asset market (`asset`), nothing in the stock, scored against the bond's
theory.

Cost: 24 requests in all (6 + 2 x 6 + 6), 30 for the impact scenario (6 agents x 5 years) and 6 for the two
assets; about 30 s on a loaded 2-core machine.
Usage: test_investalign_scenarios.py PATH_TO_HERDSIM PLUGIN_DIR MODELS_DIR SCENARIO_DIR
"""
import json
import os
import subprocess
import sys
import tempfile
import time
import unittest

import h5py
import numpy as np

HERDSIM = None
PLUGIN_DIR = None
MODELS_DIR = None
SCENARIOS = None

COUNT = 6
SEED = 37
# file, protocol, problem, stages (requests per agent)
CASES = (("p3_absolute.toml", "absolute", "P3", 1),
         ("p1_relative.toml", "relative", "P1", 2),
         ("p2_mutual.toml", "mutual", "P2", 1))


def run(args):
    env = dict(os.environ, HERDSIM_PLUGIN_PATH=PLUGIN_DIR)
    return subprocess.run([HERDSIM] + args, capture_output=True, text=True, env=env, timeout=300)


class EvaluationScenarios(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        model = os.path.join(MODELS_DIR, "tiny-qwen2.gguf")
        cls.out, cls.res, cls.seconds = {}, {}, {}
        for name, _, _, _ in CASES:
            scenario = os.path.join(SCENARIOS, "investalign", name)
            out = os.path.join(cls.tmp.name, name.replace(".toml", ".h5"))
            t0 = time.monotonic()
            cls.res[name] = run(["run", scenario, "-o", out, "-q",
                                 "--threads", "1",
                                 "--set", f"sweep.run.seed=[{SEED}]",
                                 "--set", f"population.investors.count={COUNT}",
                                 "--set", f"population.investors.inference.model={model}",
                                 "--set", "population.investors.inference.threads=1",
                                 "--set", f"population.investors.inference.batch={COUNT}"])
            cls.seconds[name] = time.monotonic() - t0
            cls.out[name] = out
        print("\nwall time per scenario run (s): " +
              ", ".join(f"{n} {s:.1f}" for n, s in cls.seconds.items()), file=sys.stderr)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def group(self, f):
        """The run group: a one-point sweep is written as a plain run, at the root."""
        self.assertFalse([g for g in f if g.startswith("sweep_")], list(f))
        self.assertIn("populations", f)
        return f

    def test_runs_and_transcripts(self):
        for name, protocol, _, stages in CASES:
            with self.subTest(scenario=name):
                res = self.res[name]
                self.assertEqual(res.returncode, 0, res.stderr)
                with h5py.File(self.out[name], "r") as f:
                    self.assertEqual(int(f.attrs["complete"]), 1)
                    g = self.group(f)
                    pop = g["populations/investors"]
                    self.assertEqual(pop.attrs["protocol"], protocol)
                    self.assertEqual(int(pop.attrs["count"]), COUNT)
                    t = pop["transcripts"]
                    agents = t["agent"][()]
                    stage = t["stage"][()]
                    # One transcript per agent and stage: as many as the agents (relative: twice).
                    self.assertEqual(len(agents), COUNT * stages)
                    for s in range(stages):
                        self.assertEqual(sorted(agents[stage == s].tolist()), list(range(COUNT)))
                    # 100% valid answers: the grammar admits nothing else.
                    status = t["status"].asstr()[()].tolist()
                    self.assertTrue((t["valid"][()] == 1).all(), status)
                    self.assertEqual(set(status), {"ok"})
                    self.assertEqual(int(pop.attrs["inference_requests"]), COUNT * stages)
                    self.assertEqual(int(pop.attrs["inference_invalid"]), 0)
                    for text in t["output"].asstr()[()]:
                        json.loads(text)
                    values = t["values"][()]
                    self.assertTrue(np.isfinite(values[stage == 0]).all())
                    self.assertTrue(np.isfinite(values[stage == 1, :9]).all())  # relative: 9 changes
                    self.assertEqual(pop["theory/amount"].shape, (10, COUNT))
                    self.assertTrue(np.isfinite(pop["theory/amount"][()]).all())

    def test_mutual_peers_are_other_investors(self):
        name = "p2_mutual.toml"
        self.assertEqual(self.res[name].returncode, 0, self.res[name].stderr)
        with h5py.File(self.out[name], "r") as f:
            pop = self.group(f)["populations/investors"]
            peer = pop["params/peer"][()].astype(int)
            self.assertEqual(peer.shape, (COUNT,))
            self.assertTrue(((peer >= 0) & (peer < COUNT) & (peer != np.arange(COUNT))).all(), peer)
        # The same investors without a peer (P3): a score-0 investor plays its own Merton path in both
        # problems; an investor who weighs a peer has a different P2 optimum.
        with h5py.File(self.out["p3_absolute.toml"], "r") as f:
            p3 = self.group(f)["populations/investors/theory/amount"][()]
        with h5py.File(self.out[name], "r") as f:
            pop = self.group(f)["populations/investors"]
            p2 = pop["theory/amount"][()]
            score = pop["params/score"][()]
        self.assertEqual(score[0], 0.0)
        np.testing.assert_allclose(p2[:, 0], p3[:, 0], rtol=1e-9)
        self.assertGreater(np.abs(p2[:, score > 0] - p3[:, score > 0]).max(), 1e-9)

    def test_compare_scores_against_the_right_problem(self):
        for name, protocol, problem, _ in CASES:
            with self.subTest(scenario=name):
                self.assertEqual(self.res[name].returncode, 0, self.res[name].stderr)
                res = run(["compare", self.out[name], "--format", "json", "-q", "--no-sidecar"])
                self.assertEqual(res.returncode, 0, res.stderr)
                doc = json.loads(res.stdout)
                self.assertEqual(len(doc["runs"]), 1)
                pops = {p["name"]: p for p in doc["runs"][0]["populations"]}
                inv = pops["investors"]
                self.assertEqual(inv["protocol"], protocol)
                self.assertEqual(inv["problem"], problem)
                de = inv["decision_error"]
                self.assertIsNotNone(de, inv["notes"])
                self.assertTrue(np.isfinite(de["amount"]["mse"]) and de["amount"]["mse"] >= 0.0)
                table = de["table"]
                self.assertEqual(table["rows"]["param"], "lottery_prob")
                self.assertEqual(table["cols"]["param"], "theta_score")
                self.assertEqual(sum(sum(row) for row in table["agents"]), COUNT)
                # The text report: the population's heading names the problem, then the MSE tables.
                res = run(["compare", self.out[name], "-q", "--no-sidecar"])
                self.assertEqual(res.returncode, 0, res.stderr)
                self.assertIn(f"protocol {protocol} on leader advisor, scored against {problem}", res.stdout)
                self.assertIn("Decision MSE (amount", res.stdout)
                self.assertIn("Decision MSE (proportion, pp", res.stdout)


class EndogenousMarketScenario(unittest.TestCase):
    """scenarios/market/investagents_impact.toml: the LLM investors' answers are trades that move the price."""

    STEPS = 5  # the scenario's horizon x steps_per_year

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.out = os.path.join(cls.tmp.name, "llm_impact.h5")
        model = os.path.join(MODELS_DIR, "tiny-qwen2.gguf")
        cls.res = run(["run", os.path.join(SCENARIOS, "market", "investagents_impact.toml"), "-o", cls.out, "-q",
                       "--threads", "1", "--set", "run.paths=1",
                       "--set", f"population.investors.inference.model={model}",
                       "--set", "population.investors.inference.threads=1"])

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_answers_are_trades_that_move_the_price(self):
        self.assertEqual(self.res.returncode, 0, self.res.stderr)
        with h5py.File(self.out, "r") as f:
            self.assertEqual(int(f.attrs["complete"]), 1)
            self.assertEqual(int(f.attrs["schema_version"]), 2)
            pop = f["populations/investors"]
            count = int(pop.attrs["count"])
            # The step protocol: one request per agent, path and year, all valid under the grammar.
            self.assertEqual(int(pop.attrs["inference_requests"]), count * self.STEPS)
            self.assertEqual(int(pop.attrs["inference_invalid"]), 0)
            self.assertTrue((pop["transcripts/valid"][()] == 1).all())
            investors = pop["amount"][()][:, 0, :, :]
            self.assertGreater(np.abs(investors).max(), 0.0)
            # The flow is every population's trade: H_k - H_{k-1} x (fundamental growth), H the amounts held
            # (post-impact execution: the fresh position grows with the fundamental from its fill price).
            held = sum(f[f"populations/{p}/amount"][()][:, 0, :, :].sum(axis=-1)
                       for p in ("advisor", "investors", "noise"))
            fundamental = f["market/fundamental"][()][:, 0, :]
            price = f["market/price"][()][:, 0, :]

            def trades(amounts):
                """Amounts held (decision step x path) less last step's carried at the fundamental's growth."""
                carried = amounts[:-1] * fundamental[1:-1] / fundamental[:-2]
                return amounts - np.vstack([np.zeros((1, amounts.shape[1])), carried])

            flow = f["market/flow"][()][:, 0, :]
            np.testing.assert_allclose(flow, trades(held), rtol=1e-9, atol=1e-9)
            # ... and moves the market price off the fundamental by lambda x flow / depth each step.
            gap = np.diff(np.log(price / fundamental), axis=0)
            np.testing.assert_allclose(gap, 1.0 * flow / 500.0, rtol=1e-9, atol=1e-12)
            # Without the investors' trades the flow would differ: their share is not negligible.
            self.assertGreater(np.abs(trades(investors.sum(axis=-1))).max(), 1e-3 * np.abs(flow).max())


class TwoAssetScenario(unittest.TestCase):
    """scenarios/market/investagents_two_assets.toml: InvestAgents answering single-stock prompts about the bond
    of a two-asset market trade the bond only; compare scores them against the bond's theory."""

    STEPS = 5
    BUDGETS = np.array([10.00, 10.59, 11.22, 11.89, 12.60])  # B_1..B_5 of a budget of 10

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.out = os.path.join(cls.tmp.name, "llm_bond.h5")
        model = os.path.join(MODELS_DIR, "tiny-qwen2.gguf")
        cls.res = run(["run", os.path.join(SCENARIOS, "market", "investagents_two_assets.toml"), "-o", cls.out,
                       "-q", "--threads", "1", "--set", "run.paths=1",
                       "--set", f"population.investors.inference.model={model}",
                       "--set", "population.investors.inference.threads=1"])

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_answers_are_bond_trades_scored_against_the_bond(self):
        self.assertEqual(self.res.returncode, 0, self.res.stderr)
        with h5py.File(self.out, "r") as f:
            pop = f["populations/investors"]
            count = int(pop.attrs["count"])
            self.assertEqual(pop.attrs["asset"], "bond")
            self.assertEqual(f["/"].attrs["asset_names"], "stock,bond")
            t = pop["transcripts"]
            self.assertEqual(int(pop.attrs["inference_requests"]), count)
            self.assertTrue((t["valid"][()] == 1).all())
            values = t["values"][()][np.argsort(t["agent"][()])]  # (agents, T) proportions
            amount = pop["amount"][()]  # (D, N, P, M)
            # The answers' proportions of the reference budgets in the bond, nothing in the stock.
            np.testing.assert_array_equal(amount[:, 0], 0.0)
            np.testing.assert_allclose(amount[:, 1, 0, :], values.T * self.BUDGETS[:, None], rtol=1e-12)
            np.testing.assert_array_equal(pop["theory/amount"][()][0], 0.0)
            theory = pop["theory/amount"][()][1]
            self.assertTrue((theory > 0).all())
            # The stock's flow is the advisor's alone.
            advisor = f["populations/advisor/amount"][()][:, 0, 0, 0]
            fundamental = f["market/fundamental"][()][:, 0, 0]
            carried = np.concatenate([[0.0], advisor[:-1] * fundamental[1:-1] / fundamental[:-2]])
            np.testing.assert_allclose(f["market/flow"][()][:, 0, 0], advisor - carried, rtol=1e-9, atol=1e-12)
        res = run(["compare", self.out, "--format", "json", "-q", "--no-sidecar"])
        self.assertEqual(res.returncode, 0, res.stderr)
        inv = {p["name"]: p for p in json.loads(res.stdout)["runs"][0]["populations"]}["investors"]
        self.assertEqual((inv["asset"], inv["problem"]), ("bond", "P3"))
        de = inv["decision_error"]
        self.assertIsNotNone(de, inv["notes"])
        want = float(np.mean((amount[:, 1, 0, :] - theory) ** 2))
        self.assertAlmostEqual(de["amount"]["mse"], want, delta=1e-9 * max(1.0, want))


if __name__ == "__main__":
    HERDSIM, PLUGIN_DIR, MODELS_DIR, SCENARIOS = sys.argv[1:5]
    unittest.main(argv=sys.argv[:1])
