"""`herdsim evaluate` end to end (docs/investagents.md, "The transfer study"): the three InvestAlign problems
for the reference answerers and, where the llama.cpp plugin is built, the tiny test model with and without
its LoRA adapter and a replay of the model's column, reduced to 6 investors and one seed with --set.

Checks: the report's numbers for the reference answerers (overall MSE and the lottery x score tables,
amounts and pp) against values computed independently (tests/tools/investalign_reference.py); valid answer
rates; a replay column equal to the column it replays; a rerun skips every finished problem (files
untouched), a removed problem is redone alone, --redo redoes all; a folder of other seeds, a damaged run
file and bad sources are refused with exit status 2.

usage: test_evaluate.py HERDSIM SCENARIOS_DIR [PLUGIN_DIR MODELS_DIR]
"""
import json
import os
import sys
import tempfile

import h5py

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import investalign_reference as ref  # noqa: E402
import support  # noqa: E402

# Not support.main(): the arguments come in another order.
support.HERDSIM, SCENARIOS = sys.argv[1], sys.argv[2]
PLUGIN_DIR, MODELS = (sys.argv[3], sys.argv[4]) if len(sys.argv) > 4 else (None, None)
ANSWERERS = ["p3_closed_form", "advisor", "merton", "own_theory"]
PROBLEMS = {"P3": "p3.h5", "P1": "p1.h5", "P2": "p2.h5"}
COUNT = 6
REDUCE = ["--seeds", "37", "--threads", "1", "--set", f"population.investors.count={COUNT}",
          "--set", "population.investors.inference.threads=1", "--set", f"population.investors.inference.batch={COUNT}"]


def evaluate(args, expect=0):
    """`herdsim evaluate ARGS`, asserted to exit with `expect`, finding the llama.cpp plugin where it is built."""
    env = dict(os.environ, HERDSIM_PLUGIN_PATH=PLUGIN_DIR) if PLUGIN_DIR else None
    return support.expect(expect, "evaluate", *args, env=env)


def close(what, got, want):
    assert got is not None and abs(got - want) <= 1e-7 * abs(want) + 1e-15, f"{what}: report {got!r}, expected {want!r}"


def check_reference_columns(out, report):
    for column in report["columns"]:
        if column["source"] != "reference":
            continue
        answerer = column["label"]
        for problem, run_file in PROBLEMS.items():
            score = column["problems"][problem]
            assert score["run_file"] == os.path.join(answerer, run_file), score["run_file"]
            assert score["runs"] == 1 and score["agents"] == COUNT, score
            assert score["valid"] == score["requests"] == COUNT * (2 if problem == "P1" else 1), score
            with h5py.File(os.path.join(out, score["run_file"])) as f:
                g = f["populations/investors"]  # one seed: the run is at the root
                wealth = g["wealth"][: ref.T, 0, :]
                theory = g["theory/amount"][...]
            want_amount, want_pp = ref.expected_mse(answerer, problem, wealth, theory)
            close(f"{answerer} {problem} amount", score["mse_amount"], want_amount)
            close(f"{answerer} {problem} pp", score["mse_proportion_pp"], want_pp)
            # The grid's first 6 cells: lottery probability 0.4, scores 0..5 (one row of the table).
            table = score["table"]
            assert table["rows"] == {"param": "lottery_prob", "values": [0.4]}, table["rows"]
            assert table["cols"]["values"] == [0, 1, 2, 3, 4, 5], table["cols"]
            for i, (amount, pp) in enumerate(ref.expected_per_agent(answerer, problem, wealth, theory)):
                close(f"{answerer} {problem} cell {i} amount", table["mse_amount"][0][i], amount)
                close(f"{answerer} {problem} cell {i} pp", table["mse_proportion_pp"][0][i], pp)


def stamps(out, report):
    return {c["problems"][p]["run_file"]: os.stat(os.path.join(out, c["problems"][p]["run_file"])).st_mtime_ns
            for c in report["columns"] for p in PROBLEMS}


def main():
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "study")
        sources = []
        if MODELS:
            model = os.path.join(MODELS, "tiny-qwen2.gguf")
            lora = os.path.join(MODELS, "tiny-qwen2-lora.gguf")
            sources = [f"base={model}", f"{model}+{lora}"]
        first = evaluate(["-o", out] + sources + REDUCE)
        assert "report.md" in first.stdout, first.stdout
        report = json.load(open(os.path.join(out, "report.json")))
        assert report["schema"] == "herdsim-evaluation" and report["problems"] == ["P3", "P1", "P2"]
        labels = [c["label"] for c in report["columns"]]
        want_labels = (["base", "tiny-qwen2+tiny-qwen2-lora"] if MODELS else []) + ANSWERERS
        assert labels == want_labels, labels
        check_reference_columns(out, report)
        for c in report["columns"]:
            for p in PROBLEMS:
                assert c["problems"][p]["valid_rate"] == 1.0, (c["label"], p, c["problems"][p])
        md = open(os.path.join(out, "report.md")).read()
        for label in labels:
            assert f"| {label} |" in md, label
        assert "## P1: MSE (amount) by lottery probability" in md

        # A rerun skips every finished problem and leaves its file alone.
        before = stamps(out, report)
        again = evaluate(["-o", out] + sources + REDUCE)
        assert again.stderr.count("(finished before: skipped)") == len(before), again.stderr
        assert stamps(out, report) == before
        assert json.load(open(os.path.join(out, "report.json")))["columns"] == report["columns"]

        # A removed problem is redone alone.
        os.remove(os.path.join(out, "advisor", "p1.h5"))
        again = evaluate(["-o", out] + sources + REDUCE)
        assert again.stderr.count("(finished before: skipped)") == len(before) - 1, again.stderr
        after = stamps(out, report)
        assert [k for k in before if before[k] != after[k]] == [os.path.join("advisor", "p1.h5")]
        check_reference_columns(out, json.load(open(os.path.join(out, "report.json"))))

        # Other seeds in the same folder: refused, nothing touched.
        e = evaluate(["-o", out, "--seeds", "42"] + REDUCE[2:], 2).stderr
        assert "another configuration" in e and "--redo" in e, e
        assert stamps(out, report) == after
        # A damaged run file under a final name: refused with the way out.
        with open(os.path.join(out, "merton", "p2.h5"), "wb") as f:
            f.write(b"not a run file")
        e = evaluate(["-o", out] + sources + REDUCE, 2).stderr
        assert "merton/p2.h5 cannot be resumed" in e and "--redo" in e, e
        # --redo runs everything again.
        evaluate(["-o", out, "--redo"] + sources + REDUCE)
        redone = stamps(out, report)
        assert all(redone[k] != after[k] for k in after)
        check_reference_columns(out, json.load(open(os.path.join(out, "report.json"))))

        if MODELS:
            # A replay of the base model's column (its folder) scores exactly as the base model.
            out2 = os.path.join(tmp, "replayed")
            evaluate(["-o", out2, "--answerers", "none", "replay:" + os.path.join(out, "base") + "/"] + REDUCE)
            replayed = json.load(open(os.path.join(out2, "report.json")))["columns"]
            assert [c["label"] for c in replayed] == ["replay-base"]
            base = next(c for c in json.load(open(os.path.join(out, "report.json")))["columns"] if c["label"] == "base")
            for p in PROBLEMS:
                for key in ("mse_amount", "mse_proportion_pp", "valid", "requests", "table"):
                    assert replayed[0]["problems"][p][key] == base["problems"][p][key], (p, key)

        # Bad input: one line, exit 2, before any run.
        e = evaluate(["-o", os.path.join(tmp, "x"), os.path.join(tmp, "missing.gguf")], 2).stderr
        assert "missing.gguf" in e and "does not exist" in e, e
        e = evaluate(["-o", os.path.join(tmp, "x"), "advisor=reference:merton"], 2).stderr
        assert "two columns are labelled 'advisor'" in e, e
        e = evaluate(["-o", os.path.join(tmp, "x"), "--answerers", "oracle"], 2).stderr
        assert "p3_closed_form" in e, e
        e = evaluate(["-o", os.path.join(tmp, "x"), "--problems", "P4"], 2).stderr
        assert "P4" in e, e
        assert not os.path.exists(os.path.join(tmp, "x", "advisor", "p3.h5"))
    print("evaluate: OK")


if __name__ == "__main__":
    main()
