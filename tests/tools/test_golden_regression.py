#!/usr/bin/env python3
"""Golden end-to-end regression: every bundled scenario, reduced in size, run by the real `herdsim run`,
and every dataset and deterministic attribute of the file compared with stored digests
(tests/golden/e2e_digests.json).

A refactor must change no output bit: this test proves it. The digest of a dataset is SHA-256 of its
values in C order, little-endian, with strings as UTF-8 joined by NUL; shapes are compared with size-1
axes dropped (so a later axis of length 1, e.g. one asset, keeps today's digests). Wall-clock values
(`transcripts/time_ms`, `inference_seconds`) and provenance that names the machine, the time or the build
(`created`, `herdsim_version`, `command_line`, `backend_description`) are left out, as are the dimension
scales' object references (`DIMENSION_LIST`, `REFERENCE_LIST`: file addresses).

Each run is then analysed by the real `herdsim compare RUN.h5 --format json`, stored under
"compare/<scenario>": the JSON parsed and dumped again with sorted keys and every float as its exact hex
form, less `created`, `herdsim_version` and `run_file` (the clock, the build and this machine's path) and
`across` (the tables across sweep points, built from the sections digested here).
One digest per population and section (e.g. `run_0/followers/lsv`) says where a change is; one of the
whole JSON catches the rest.

The digests are regenerated only on purpose, in a commit that says why:
    test_golden_regression.py HERDSIM SCENARIO_DIR DIGESTS [PLUGIN_DIR MODELS_DIR] --update
LLM-backed scenarios (scenarios/investalign) run only when PLUGIN_DIR and MODELS_DIR are given (the
llama.cpp plugin and the tiny test models); their digests are then required.

An update that only extends the output is checked first, against the digests before it:
    test_golden_regression.py HERDSIM SCENARIO_DIR DIGESTS [PLUGIN_DIR MODELS_DIR] --check-extension OLD.json
runs every scenario as above and requires, against OLD.json: every stored object still there, every
dataset's digest, shape and dtype unchanged, every stored attribute unchanged (attributes and objects may
only be added); and compare's JSON, with the parts an extension adds taken out again (EXTENSION_PARTS:
the rational counterfactual, on by default since issue 15, and LSV's verdict worded as correlated
trading), digest for digest equal to OLD.json's (or, for an extension of the run file only, compare's JSON
unchanged). It prints what was added.
"""
import glob
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import unittest

import h5py
import numpy as np

HERDSIM = SCENARIOS = DIGESTS = PLUGIN_DIR = MODELS_DIR = TMP = None
UPDATE = False
EXTENSION_OLD = None  # --check-extension OLD.json

# Overrides that keep each run to a second or so (on a Debug build too) while every population, policy,
# protocol and sweep point of the scenario stays in.
REDUCE = {
    "quickstart.toml": ["run.paths=3"],
    "p3_absolute.toml": ["run.paths=3"],
    "p1_relative.toml": ["run.paths=3"],
    "p2_mutual.toml": ["run.paths=2", "population.game.count=24", "population.adaptive.count=24"],
    "relative_peers.toml": ["run.paths=2", "population.game.count=12", "population.adaptive.count=12"],
    "emergent_peers.toml": ["run.paths=2", "population.peers.count=400", "population.noise.count=50",
                            "record.max_agents=100"],
    "large.toml": ["run.paths=2", "population.followers.count=2000"],
    "score_herding.toml": ["run.paths=3"],
}
LLM_COUNT = 4
LLM_REDUCE = ["sweep.run.seed=[37]", f"population.investors.count={LLM_COUNT}",
              "population.investors.inference.threads=1", f"population.investors.inference.batch={LLM_COUNT}"]

# DIMENSION_LIST and REFERENCE_LIST (the dimension scales' links) hold object references, i.e. file
# addresses: which scale an axis has is its `dims` attribute and the scale's own digest.
SKIP_ATTRS = {"created", "herdsim_version", "command_line", "backend_description", "inference_seconds",
              "DIMENSION_LIST", "REFERENCE_LIST"}
SKIP_DATASETS = {"time_ms"}
# "across" (a sweep file's tables across its sweep points, issue 15 item 4) is built only from the
# population sections digested here; tests/tools/test_compare_sweep.py checks it.
SKIP_COMPARE = {"created", "herdsim_version", "run_file", "across"}


def digest_dataset(ds):
    """(digest, shape without size-1 axes, dtype kind) of one dataset."""
    data = ds[()]
    h = hashlib.sha256()
    if ds.dtype.kind in "OSU" or h5py.check_string_dtype(ds.dtype) is not None:
        values = ds.asstr()[()] if h5py.check_string_dtype(ds.dtype) is not None else data
        for v in np.asarray(values, dtype=object).reshape(-1):
            h.update(str(v).encode("utf-8") + b"\0")
        kind = "str"
    else:
        arr = np.ascontiguousarray(data)
        arr = arr.astype(arr.dtype.newbyteorder("<"), copy=False)
        h.update(arr.tobytes())
        kind = arr.dtype.str
    return {"sha256": h.hexdigest(), "shape": [int(n) for n in np.shape(data) if n != 1], "dtype": kind}


def attr_value(v):
    if isinstance(v, bytes):
        v = v.decode("utf-8")
    if isinstance(v, str):
        # Paths of this machine (the test models, the scratch folder) are not part of the output.
        for path, name in ((MODELS_DIR, "<models>"), (TMP, "<tmp>")):
            if path:
                v = v.replace(path, name)
        return v
    if isinstance(v, np.ndarray):
        return [attr_value(x) for x in v.tolist()]
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating, float)):
        return float(v).hex()  # exact
    return v


def digest_file(path):
    """{object path: digest or attributes} for every dataset and every group's attributes."""
    out = {}

    def visit(name, obj):
        key = "/" + name if name else "/"
        attrs = {k: attr_value(obj.attrs[k]) for k in sorted(obj.attrs) if k not in SKIP_ATTRS}
        if isinstance(obj, h5py.Dataset):
            if name.rsplit("/", 1)[-1] in SKIP_DATASETS:
                return
            entry = digest_dataset(obj)
            if attrs:
                entry["attrs"] = attrs
            out[key] = entry
        else:
            out[key] = {"attrs": attrs}

    with h5py.File(path, "r") as f:
        visit("", f)
        f.visititems(visit)
    return out


def canonical_json(value):
    """The compare JSON as exact, comparable values: floats as hex, this machine's paths replaced."""
    if isinstance(value, dict):
        return {k: canonical_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [canonical_json(v) for v in value]
    if isinstance(value, float):
        return {"float": value.hex()}  # exact, and never equal to an int or a string
    if isinstance(value, str):
        return attr_value(value)
    return value


def sha256_json(value):
    return hashlib.sha256(json.dumps(value, sort_keys=True, ensure_ascii=True).encode("utf-8")).hexdigest()


def digest_compare(text):
    """{part: sha256} of compare's JSON: one per (run group, population, section), one of the whole."""
    doc = canonical_json({k: v for k, v in json.loads(text).items() if k not in SKIP_COMPARE})
    out = {"/": sha256_json(doc)}
    for run in doc.get("runs", []):
        for pop in run.get("populations", []):
            for section, value in pop.items():
                out[f"{run['group']}/{pop['name']}/{section}"] = sha256_json(value)
    return out


def without_extension(doc):
    """compare's JSON less what issue 15's extension added (EXTENSION_PARTS): each population's
    `counterfactual` object, the note saying why it was not computed, and LSV's verdict worded as
    correlated trading (mapped back to its former wording)."""
    def fix_population(pop):
        pop = dict(pop)
        pop.pop("counterfactual", None)
        if "notes" in pop:
            pop["notes"] = [n for n in pop["notes"] if not n.startswith("rational counterfactual not computed")]
        if isinstance(pop.get("lsv"), dict) and "verdict" in pop["lsv"]:
            v = pop["lsv"]["verdict"]
            for new, old in (("no significant correlated trading", "no significant herding"),
                             ("significant correlated trading", "significant herding")):
                if v.startswith(new):
                    v = old + v[len(new):]
                    break
            pop["lsv"] = dict(pop["lsv"], verdict=v)
        return pop

    doc = dict(doc)
    doc["runs"] = [dict(run, populations=[fix_population(p) for p in run.get("populations", [])])
                   for run in doc.get("runs", [])]
    return doc


EXTENSION_PARTS = "counterfactual (and its note), lsv.verdict wording"


def same_shape(a, b):
    return [n for n in a if n != 1] == [n for n in b if n != 1]


class GoldenRegression(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        with open(DIGESTS) as fh:
            cls.stored = {} if UPDATE and os.path.getsize(DIGESTS) == 0 else json.load(fh)
        cls.computed = {}
        cls.tmp = tempfile.TemporaryDirectory()
        global TMP
        TMP = cls.tmp.name

    @classmethod
    def tearDownClass(cls):
        if UPDATE:
            merged = dict(cls.stored)
            merged.update(cls.computed)
            with open(DIGESTS, "w") as fh:
                json.dump(merged, fh, indent=1, sort_keys=True)
                fh.write("\n")
            print(f"\nwrote {len(cls.computed)} scenario digests to {DIGESTS}", file=sys.stderr)
        cls.tmp.cleanup()

    def run_scenario(self, key, scenario, sets, env=None):
        out = os.path.join(self.tmp.name, key.replace("/", "_").replace(".toml", ".h5"))
        args = [HERDSIM, "run", scenario, "-o", out, "-q", "--threads", "2"]
        for s in sets:
            args += ["--set", s]
        res = subprocess.run(args, capture_output=True, text=True, timeout=600, env=env)
        self.assertEqual(res.returncode, 0, f"{' '.join(args)}\n{res.stderr}")
        got = digest_file(out)
        self.computed[key] = got
        if EXTENSION_OLD is not None:
            self.check_extension(key, got)
        elif not UPDATE:
            self.check_run(key, got)
        self.compare_run(key, out, env)

    def check_extension(self, key, got):
        """got extends the digests before the change: nothing stored is gone or changed; prints additions."""
        self.assertIn(key, EXTENSION_OLD, f"no digests for {key} in the old file")
        old = EXTENSION_OLD[key]
        self.assertEqual(sorted(set(old) - set(got)), [], f"{key}: objects missing from the new file")
        for obj, w in old.items():
            g = got[obj]
            ga, wa = g.get("attrs", {}), w.get("attrs", {})
            self.assertEqual({k: ga.get(k) for k in wa}, wa, f"{key}: stored attributes of {obj} changed")
            for k in sorted(set(ga) - set(wa)):
                print(f"EXTENSION {key}: attribute {obj}@{k} = {ga[k]!r} added", file=sys.stderr)
            if "sha256" in w:
                self.assertTrue(same_shape(g["shape"], w["shape"]), f"{key}: shape of {obj} changed")
                self.assertEqual(g["dtype"], w["dtype"], f"{key}: dtype of {obj} changed")
                self.assertEqual(g["sha256"], w["sha256"], f"{key}: values of {obj} changed")
        for obj in sorted(set(got) - set(old)):
            print(f"EXTENSION {key}: object {obj} added {got[obj].get('shape', '')} {got[obj].get('attrs', {})}",
                  file=sys.stderr)

    def check_run(self, key, got):
        self.assertIn(key, self.stored, f"no stored digests for {key}: regenerate on purpose with --update")
        want = self.stored[key]
        self.assertEqual(sorted(set(want) - set(got)), [], f"{key}: objects missing from the new file")
        self.assertEqual(sorted(set(got) - set(want)), [], f"{key}: objects the digests do not know")
        for obj, w in want.items():
            g = got[obj]
            self.assertEqual(g.get("attrs", {}), w.get("attrs", {}), f"{key}: attributes of {obj} changed")
            if "sha256" in w:
                self.assertTrue(same_shape(g["shape"], w["shape"]), f"{key}: shape of {obj} changed")
                self.assertEqual(g["dtype"], w["dtype"], f"{key}: dtype of {obj} changed")
                self.assertEqual(g["sha256"], w["sha256"], f"{key}: values of {obj} changed")

    def compare_run(self, key, out, env):
        """`herdsim compare` of the run: its JSON against the digests under "compare/<key>"."""
        args = [HERDSIM, "compare", out, "--format", "json", "--no-sidecar", "-q"]
        res = subprocess.run(args, capture_output=True, text=True, timeout=600, env=env)
        self.assertEqual(res.returncode, 0, f"{' '.join(args)}\n{res.stderr}")
        ckey = "compare/" + key
        got = digest_compare(res.stdout)
        self.computed[ckey] = got
        if EXTENSION_OLD is not None:
            self.assertIn(ckey, EXTENSION_OLD, f"no digests for {ckey} in the old file")
            doc = json.loads(res.stdout)
            reverted = digest_compare(json.dumps(without_extension(doc)))
            old = EXTENSION_OLD[ckey]
            if got == old:  # an extension of the run file only: compare's JSON is unchanged
                print(f"EXTENSION {ckey}: unchanged", file=sys.stderr)
                return
            changed = sorted(p for p in set(old) | set(reverted) if old.get(p) != reverted.get(p))
            self.assertEqual(changed, [], f"{ckey}: compare's JSON changed beyond {EXTENSION_PARTS}")
            extended = sorted(p for p in set(old) | set(got) if old.get(p) != got.get(p))
            print(f"EXTENSION {ckey}: parts changed by {EXTENSION_PARTS}: {extended}", file=sys.stderr)
            return
        if UPDATE:
            return
        self.assertIn(ckey, self.stored, f"no stored digests for {ckey}: regenerate on purpose with --update")
        want = self.stored[ckey]
        changed = sorted(p for p in set(want) | set(got) if want.get(p) != got.get(p))
        self.assertEqual(changed, [], f"{ckey}: compare's JSON changed in these parts")

    def test_every_bundled_scenario_is_covered(self):
        names = sorted(os.path.basename(p) for p in glob.glob(os.path.join(SCENARIOS, "*.toml")))
        self.assertEqual(names, sorted(REDUCE), "a bundled scenario has no reduced golden run here")

    def test_scenarios(self):
        for name, sets in sorted(REDUCE.items()):
            with self.subTest(scenario=name):
                self.run_scenario(name, os.path.join(SCENARIOS, name), sets)

    def test_investalign_scenarios(self):
        names = sorted(os.path.basename(p) for p in glob.glob(os.path.join(SCENARIOS, "investalign", "*.toml")))
        self.assertEqual(names, ["p1_relative.toml", "p2_mutual.toml", "p3_absolute.toml"])
        if PLUGIN_DIR is None:
            self.skipTest("no llama.cpp plugin and test models given")
        env = dict(os.environ, HERDSIM_PLUGIN_PATH=PLUGIN_DIR)
        model = os.path.join(MODELS_DIR, "tiny-qwen2.gguf")
        for name in names:
            with self.subTest(scenario=name):
                self.run_scenario("investalign/" + name, os.path.join(SCENARIOS, "investalign", name),
                                  LLM_REDUCE + [f"population.investors.inference.model={model}"], env)


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--update"]
    UPDATE = "--update" in sys.argv
    if "--check-extension" in args:
        i = args.index("--check-extension")
        with open(args[i + 1]) as fh:
            EXTENSION_OLD = json.load(fh)
        del args[i:i + 2]
    HERDSIM, SCENARIOS, DIGESTS = args[:3]
    if len(args) >= 5:
        PLUGIN_DIR, MODELS_DIR = args[3:5]
    unittest.main(argv=sys.argv[:1], verbosity=2)
