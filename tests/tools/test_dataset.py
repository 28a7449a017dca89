#!/usr/bin/env python3
"""End-to-end tests of `herdsim dataset`: chat JSONL, answers, the card, the split, determinism, bad flags.

Usage: test_dataset.py PATH_TO_HERDSIM
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import unittest

HERDSIM = None
FILES = ("train.jsonl", "test.jsonl", "samples.jsonl", "dataset_card.json")
SMALL = ("--lottery", "0.5,0.9", "--scores", "0,5,10")
KEYS = {
    "absolute": ("Investment Proportion Sequence", 10, 0.0),
    "mutual": ("Investment Proportion Sequence", 10, 0.0),
    "relative": ("Investment Proportion Change Sequence", 9, -100.0),
}
TWO_DECIMALS = re.compile(r"^-?(0|[1-9][0-9]?|100)\.[0-9]{2}$")


def run(*args):
    return subprocess.run([HERDSIM, "dataset", *args], capture_output=True, text=True, timeout=600)


def fnv1a64(data):
    h = 14695981039346656037
    for b in data:
        h ^= b
        h = (h * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def raw_values(answer_text, key):
    """The literal number tokens of the answer's value array, as written."""
    body = answer_text[answer_text.index(f'"{key}"') + len(key) + 2:]
    body = body[body.index("[") + 1: body.index("]")]
    return [tok.strip() for tok in body.split(",")]


class DatasetCommand(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.dir_a = os.path.join(cls.tmp.name, "a")
        cls.dir_b = os.path.join(cls.tmp.name, "b")
        for d in (cls.dir_a, cls.dir_b):
            res = run("-o", d, "--problem", "all", *SMALL, "--seed", "3")
            assert res.returncode == 0, res.stderr
        cls.stdout = res.stdout

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_files_are_complete(self):
        for name in FILES:
            self.assertTrue(os.path.isfile(os.path.join(self.dir_a, name)), name)
        self.assertEqual([f for f in os.listdir(self.dir_a) if f.endswith(".partial")], [])
        self.assertIn("wrote", self.stdout)

    def test_chat_lines_and_answers(self):
        samples = read_jsonl(os.path.join(self.dir_a, "samples.jsonl"))
        by_split = {"train": [], "test": []}
        for s in samples:
            by_split[s["split"]].append(s)
        for split in ("train", "test"):
            lines = read_jsonl(os.path.join(self.dir_a, f"{split}.jsonl"))
            self.assertEqual(len(lines), len(by_split[split]))
            for i, (line, meta) in enumerate(zip(lines, by_split[split])):
                self.assertEqual(meta["line"], i)
                self.assertEqual(list(line.keys()), ["messages"])
                roles = [m["role"] for m in line["messages"]]
                self.assertEqual(roles, ["system", "user", "assistant"])
                for m in line["messages"]:
                    self.assertIsInstance(m["content"], str)
                    self.assertTrue(m["content"])
                key, length, low = KEYS[meta["problem"]]
                text = line["messages"][2]["content"]
                answer = json.loads(text)
                self.assertEqual(list(answer.keys()), ["Decision Explanation", key])
                self.assertLessEqual(len(answer["Decision Explanation"]), 400)
                values = answer[key]
                self.assertEqual(len(values), length)
                for v in values:
                    self.assertGreaterEqual(v, low)
                    self.assertLessEqual(v, 100.0)
                for tok in raw_values(text, key):
                    self.assertRegex(tok, TWO_DECIMALS)
                # The answer is the stored target, in percent.
                for v, t in zip(values, meta["target"]):
                    self.assertAlmostEqual(v, 100.0 * t, places=9)
                self.assertIn(f'{meta["investor"]["lottery_prob"]:g}', line["messages"][1]["content"])

    def test_counts_and_hashes_match_the_card(self):
        with open(os.path.join(self.dir_a, "dataset_card.json")) as f:
            card = json.load(f)
        self.assertEqual(card["format"], "herdsim-investalign-dataset")
        self.assertEqual(card["seed"], 3)
        self.assertEqual(card["problems"], ["absolute", "relative", "mutual"])
        self.assertEqual(card["parameters"]["lottery_convention"]["name"], "w10s3")
        self.assertEqual(card["parameters"]["eta_formula"], "correct")
        self.assertIn("proportion", card["conventions"])
        samples = read_jsonl(os.path.join(self.dir_a, "samples.jsonl"))
        for split in ("train", "test"):
            for problem in ("absolute", "relative", "mutual"):
                n = sum(1 for s in samples if s["split"] == split and s["problem"] == problem)
                self.assertEqual(card["counts"][split][problem], n)
            self.assertEqual(card["counts"][split]["total"], sum(1 for s in samples if s["split"] == split))
        self.assertEqual(card["counts"]["train"]["total"] + card["counts"]["test"]["total"], 3 * 6)
        for name in ("train.jsonl", "test.jsonl", "samples.jsonl"):
            with open(os.path.join(self.dir_a, name), "rb") as f:
                data = f.read()
            self.assertEqual(card["files"][name]["bytes"], len(data))
            self.assertEqual(card["files"][name]["lines"], data.count(b"\n"))
            self.assertEqual(card["files"][name]["fnv1a64"], fnv1a64(data))

    def test_split_holds_out_whole_cells(self):
        with open(os.path.join(self.dir_a, "dataset_card.json")) as f:
            card = json.load(f)
        samples = read_jsonl(os.path.join(self.dir_a, "samples.jsonl"))
        splits = {}
        for s in samples:
            splits.setdefault((s["cell_lottery_prob"], s["cell_score"]), set()).add(s["split"])
        self.assertTrue(all(len(v) == 1 for v in splits.values()))
        test_cells = {(c["lottery_prob"], c["score"]) for c in card["split"]["test_cells"]}
        self.assertEqual(test_cells, {k for k, v in splits.items() if v == {"test"}})
        self.assertEqual(len(test_cells), 1)  # round(0.2 * 6)

    def test_same_seed_gives_identical_bytes(self):
        for name in FILES:
            with open(os.path.join(self.dir_a, name), "rb") as fa, open(os.path.join(self.dir_b, name), "rb") as fb:
                self.assertEqual(fa.read(), fb.read(), name)

    def test_different_seed_gives_a_different_split_when_sampling(self):
        cards = []
        for seed in ("1", "2"):
            d = os.path.join(self.tmp.name, f"sampled{seed}")
            res = run("-o", d, "--problem", "absolute", "--samples", "40", "--seed", seed, "--test-fraction", "0.3")
            self.assertEqual(res.returncode, 0, res.stderr)
            with open(os.path.join(d, "dataset_card.json")) as f:
                cards.append(json.load(f))
            samples = read_jsonl(os.path.join(d, "samples.jsonl"))
            self.assertEqual(len(samples), 40)
            splits = {}
            for s in samples:
                splits.setdefault(s["cell"], set()).add(s["split"])
            self.assertTrue(all(len(v) == 1 for v in splits.values()))
            self.assertEqual(cards[-1]["parameters"]["mode"], "sampled")
        self.assertNotEqual(cards[0]["split"]["test_cells"], cards[1]["split"]["test_cells"])
        self.assertNotEqual(cards[0]["files"]["train.jsonl"]["fnv1a64"], cards[1]["files"]["train.jsonl"]["fnv1a64"])

    def test_training_prompts_and_w20s6(self):
        d = os.path.join(self.tmp.name, "training")
        res = run("-o", d, "--problem", "absolute", *SMALL, "--training-prompts", "--lottery-convention", "w20s6")
        self.assertEqual(res.returncode, 0, res.stderr)
        lines = read_jsonl(os.path.join(d, "train.jsonl")) + read_jsonl(os.path.join(d, "test.jsonl"))
        for line in lines:
            self.assertIn("Reference solution (training): eta = ", line["messages"][1]["content"])
            self.assertIn("winning 20 million dollars", line["messages"][1]["content"])
        with open(os.path.join(d, "dataset_card.json")) as f:
            card = json.load(f)
        self.assertEqual(card["parameters"]["lottery_convention"], {"name": "w20s6", "win": 20.0, "sure": 6.0})
        alphas = {s["cell_lottery_prob"]: s["investor"]["alpha"] for s in read_jsonl(os.path.join(d, "samples.jsonl"))}
        self.assertAlmostEqual(alphas[0.9], 0.38305955420131, places=10)  # half the W=10/S=3 value

    def test_bad_flags_one_line_each_exit_2(self):
        d = os.path.join(self.tmp.name, "bad")
        res = run("-o", d, "--lottery", "0.2,1.5", "--scores", "-1", "--test-fraction", "2", "--samples", "-3")
        self.assertEqual(res.returncode, 2)
        lines = res.stderr.strip().splitlines()
        self.assertEqual(len(lines), 5, res.stderr)
        for line in lines:
            self.assertTrue(line.startswith("herdsim dataset: error: --"), line)
        self.assertIn("--lottery", res.stderr)
        self.assertIn("--scores", res.stderr)
        self.assertIn("--test-fraction", res.stderr)
        self.assertIn("--samples", res.stderr)
        self.assertFalse(os.path.exists(d))

        res = run("-o", d, "--problem", "sideways")
        self.assertEqual(res.returncode, 2)
        self.assertEqual(len(res.stderr.strip().splitlines()), 1, res.stderr)
        self.assertIn("sideways", res.stderr)

        res = run("-o", d, "--lottery", "0.5,abc")
        self.assertEqual(res.returncode, 2)
        res = run("--lottery", "0.5")
        self.assertEqual(res.returncode, 2)  # -o is required


if __name__ == "__main__":
    HERDSIM = sys.argv.pop(1)
    unittest.main()
