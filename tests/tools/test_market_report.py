#!/usr/bin/env python3
"""`herdsim report` on schema-2 runs (issue 13 item 5): real runs of scenarios/market/*.toml, the report
drawn by the real script, and every market figure opened again: a PNG of a sensible size whose pixels
are not all one colour. The figures' numbers come from compare's JSON, checked in test_market_analysis.py.

Usage: test_market_report.py PATH_TO_HERDSIM SCENARIO_DIR
"""
import os

import matplotlib.image as mpimg
import numpy as np

import support

MARKET_FIGURES = ("price_fundamental", "csad_assets", "acf_abs", "tail")


class MarketReport(support.TempDirTest):
    def report(self, scenario, *overrides):
        h5 = self.path("run.h5")
        res = support.herdsim("run", os.path.join(support.SCENARIOS, "market", scenario), "-o", h5, "-q",
                              *overrides)
        self.assertEqual(res.returncode, 0, res.stderr)
        out = self.path("report")
        res = support.herdsim("report", h5, "-o", out)
        self.assertEqual(res.returncode, 0, res.stderr)
        with open(os.path.join(out, "index.html"), encoding="utf-8") as f:
            return out, f.read()

    def check_png(self, path):
        self.assertGreater(os.path.getsize(path), 10_000, path)
        img = mpimg.imread(path)
        self.assertGreaterEqual(img.shape[0], 300, path)
        self.assertGreaterEqual(img.shape[1], 400, path)
        self.assertGreater(float(np.std(img[..., :3])), 0.02, f"{path} is (nearly) one colour")

    def test_several_assets_draw_every_market_figure(self):
        out, page = self.report("correlated_assets.toml", "--set", "run.paths=100", "--set", "record.every=1")
        self.assertIn("Market <span", page)
        for name in MARKET_FIGURES:
            with self.subTest(figure=name):
                path = os.path.join(out, f"g0_market_{name}.png")
                self.assertTrue(os.path.isfile(path), f"{name} missing; the page says: {page[-2000:]}")
                self.assertIn(f"g0_market_{name}.png", page)
                self.check_png(path)

    def test_one_asset_with_impact_skips_only_the_cross_section(self):
        out, page = self.report("impact.toml", "--set", "run.paths=40")
        for name in ("price_fundamental", "acf_abs", "tail"):
            with self.subTest(figure=name):
                self.check_png(os.path.join(out, f"g0_market_{name}.png"))
        self.assertFalse(os.path.exists(os.path.join(out, "g0_market_csad_assets.png")))
        self.assertIn("CSAD across assets needs at least two", page)
        # The populations' own figures still come (one asset: the decisions against theory too).
        self.check_png(os.path.join(out, "g0_rational_decisions.png"))


if __name__ == "__main__":
    support.main(scenarios=True)
