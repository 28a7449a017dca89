"""The reference answerers (backend = "reference", sim/investalign/reference.hpp) through the real executable:
each answerer on each InvestAlign evaluation scenario (P3, P1, P2: the 66-investor grid, two seeds), scored
by `herdsim compare`, against MSEs computed independently here (tests/tools/investalign_reference.py);
every answer valid; bad keys refused with exit status 2.

usage: test_reference_answerers.py HERDSIM SCENARIOS_DIR
"""
import json
import os
import sys
import unittest

import h5py

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import investalign_reference as ref  # noqa: E402
import support  # noqa: E402

PROBLEMS = {"P3": "p3_absolute.toml", "P1": "p1_relative.toml", "P2": "p2_mutual.toml"}
ANSWERERS = ["p3_closed_form", "advisor", "merton", "own_theory"]
SEEDS = "[37, 42]"


def run(args, expect=0):
    p = support.herdsim(*args)
    assert p.returncode == expect, (args, p.returncode, p.stdout, p.stderr)
    return p


def reference_sets(answerer):
    return ["--set", "population.investors.inference.backend=reference",
            "--set", f"population.investors.inference.answerer={answerer}",
            "--set", f"sweep.run.seed={SEEDS}"]


def check_close(what, got, want):
    assert abs(got - want) <= 1e-7 * abs(want) + 1e-15, f"{what}: herdsim compare {got!r}, expected {want!r}"


class ReferenceAnswerers(support.TempDirTest):
    def test_each_answerer_scores_what_an_independent_computation_gives(self):
        summary = []
        for problem, scenario in PROBLEMS.items():
            for answerer in ANSWERERS:
                out = self.path(f"{answerer}-{problem}.h5")
                run(["run", os.path.join(support.SCENARIOS, "investalign", scenario), "-q", "-o", out]
                    + reference_sets(answerer))
                analysis = json.loads(run(["compare", out, "--format", "json", "--no-sidecar", "-q"]).stdout)
                with h5py.File(out) as f:
                    assert f.attrs["complete"] == 1
                    for r in analysis["runs"]:
                        pop = next(p for p in r["populations"] if p["name"] == "investors")
                        assert pop["problem"] == problem, pop["problem"]
                        g = f[r["group"].lstrip("/")]["populations/investors"]
                        wealth = g["wealth"][: ref.T, 0, :]
                        theory = g["theory/amount"][...]
                        tr = g["transcripts"]
                        assert tr["valid"][...].all(), f"{answerer} {problem}: an invalid answer"
                        assert all(s == b"ok" for s in tr["status"][...])
                        backend = json.loads(g.attrs["backend_description"])
                        assert backend == {"backend": "reference", "answerer": answerer}, backend
                        want_amount, want_pp = ref.expected_mse(answerer, problem, wealth, theory)
                        de = pop["decision_error"]
                        check_close(f"{answerer} {problem} {r['group']} amount", de["amount"]["mse"], want_amount)
                        check_close(f"{answerer} {problem} {r['group']} pp", de["proportion_pp"]["mse"], want_pp)
                        summary.append((problem, answerer, r["group"], want_amount, want_pp))
        for row in summary:
            print("%s %-15s %-11s MSE %.6g (amount)  %.6g (pp^2)" % row)
        # own_theory scores only the format's rounding: an amount error of at most half a hundredth of a
        # percent of a budget of at most 16.88, squared.
        for problem, answerer, _, amount, _ in summary:
            if answerer == "own_theory":
                assert amount <= (0.5e-4 * 16.88) ** 2, (problem, amount)

    def test_bad_keys_are_refused_with_one_message_and_nothing_run(self):
        p3 = os.path.join(support.SCENARIOS, "investalign", "p3_absolute.toml")
        bad = self.path("bad.h5")
        e = run(["run", p3, "-o", bad, "--set", "population.investors.inference.backend=reference"], 2).stderr
        assert "answerer" in e and "is required" in e, e
        e = run(["run", p3, "-o", bad] + reference_sets("oracle"), 2).stderr
        assert "answerer" in e and "p3_closed_form" in e, e
        e = run(["run", p3, "-o", bad, "--set", "population.investors.inference.answerer=advisor"], 2).stderr
        assert "answerer" in e and "applies only" in e, e
        assert not os.path.exists(bad)


if __name__ == "__main__":
    support.main(scenarios=True)
