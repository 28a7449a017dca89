"""The decision cache (io/decision_cache.hpp) end to end with the tiny test model through the llama.cpp plugin:
a second run answers every request from the cache with the same outputs, and its transcripts say so
(`cache_hit`); runs without a cache write files without `cache_hit`; an adapter is another model; two runs
writing one cache at once both keep their answers; a corrupt cache file is one clear error (exit 2);
`herdsim evaluate` caches in DIR/cache and `--no-cache` turns it off.

usage: test_decision_cache.py HERDSIM PLUGIN_DIR MODELS_DIR SCENARIOS_DIR
"""
import glob
import json
import os
import sys
import tempfile

import h5py
import numpy as np

import support

# Not support.main(): the arguments come in another order.
support.HERDSIM, PLUGIN_DIR, MODELS, SCENARIOS = sys.argv[1:5]
MODEL = os.path.join(MODELS, "tiny-qwen2.gguf")
LORA = os.path.join(MODELS, "tiny-qwen2-lora.gguf")
P3 = os.path.join(SCENARIOS, "investalign", "p3_absolute.toml")
COUNT = 4


def herdsim(args, expect=0, wait=True):
    """`herdsim ARGS` with the llama.cpp plugin: to completion, asserted to exit with `expect`, or (not `wait`)
    started in the background."""
    env = dict(os.environ, HERDSIM_PLUGIN_PATH=PLUGIN_DIR)
    if not wait:
        return support.start(*args, env=env)
    return support.expect(expect, *args, env=env)


def run_args(out, seeds="[37]", extra=()):
    return ["run", P3, "-q", "-o", out, "--threads", "1", "--set", f"sweep.run.seed={seeds}",
            "--set", f"population.investors.count={COUNT}", "--set", f"population.investors.inference.model={MODEL}",
            "--set", "population.investors.inference.threads=1", "--set", f"population.investors.inference.batch={COUNT}"
            ] + list(extra)


def transcripts(path, group="/"):
    with h5py.File(path) as f:
        t = f[group]["populations/investors/transcripts"]
        return {k: t[k][...] for k in t}


def main():
    with tempfile.TemporaryDirectory() as tmp:
        cache = os.path.join(tmp, "cache")
        first, second, plain = (os.path.join(tmp, n) for n in ("first.h5", "second.h5", "plain.h5"))
        herdsim(run_args(first) + ["--cache", cache])
        files = glob.glob(os.path.join(cache, "decisions-*.jsonl"))
        assert len(files) == 1, files
        lines = open(files[0]).read().splitlines()
        assert len(lines) == COUNT and all(json.loads(line)["key"] for line in lines)
        t1 = transcripts(first)
        assert (t1["cache_hit"] == 0).all()

        out = herdsim(run_args(second) + ["--cache", cache]).stdout
        assert f"{COUNT} from the decision cache" in out, out
        t2 = transcripts(second)
        assert (t2["cache_hit"] == 1).all()
        for key in ("output", "values", "valid", "prompt_hash", "seed", "prompt_tokens", "completion_tokens"):
            assert np.array_equal(t1[key], t2[key]), key
        with h5py.File(first) as a, h5py.File(second) as b:
            assert np.array_equal(a["populations/investors/amount"][...], b["populations/investors/amount"][...])
        assert len(open(files[0]).read().splitlines()) == COUNT  # nothing decided twice

        herdsim(run_args(plain))
        t3 = transcripts(plain)
        assert "cache_hit" not in t3
        assert np.array_equal(t1["output"], t3["output"])

        # An adapter is another model: its own cache file.
        herdsim(run_args(os.path.join(tmp, "lora.h5"), extra=["--set", f'population.investors.inference.lora=["{LORA}"]',
                                                               "--cache", cache]))
        assert len(glob.glob(os.path.join(cache, "decisions-*.jsonl"))) == 2

        # Two runs writing one cache at once, then both seeds again: everything from the cache.
        shared = os.path.join(tmp, "shared")
        procs = [herdsim(run_args(os.path.join(tmp, f"c{s}.h5"), f"[{s}]") + ["--cache", shared], wait=False)
                 for s in (37, 42)]
        for p in procs:
            _, err = p.communicate(timeout=600)
            assert p.returncode == 0, err
        out = herdsim(run_args(os.path.join(tmp, "both.h5"), "[37, 42]") + ["--cache", shared]).stdout
        assert f"{2 * COUNT} from the decision cache" in out, out
        (shared_file,) = glob.glob(os.path.join(shared, "decisions-*.jsonl"))
        assert len(open(shared_file).read().splitlines()) == 2 * COUNT

        # A corrupt cache file: one message naming it and the line, exit 2, nothing written.
        with open(shared_file, "a") as f:
            f.write('{"key": "x", "text": \n')
        bad = os.path.join(tmp, "bad.h5")
        err = herdsim(run_args(bad) + ["--cache", shared], 2).stderr
        assert "corrupt at line 9" in err and shared_file in err and "--no-cache" in err, err
        assert not os.path.exists(bad)

        # evaluate: the cache lives in the study folder; a redo decides nothing again; --no-cache: none.
        study = os.path.join(tmp, "study")
        reduce = ["--seeds", "37", "--threads", "1", "--answerers", "none", "--problems", "P3",
                  "--set", f"population.investors.count={COUNT}", "--set", "population.investors.inference.threads=1"]
        herdsim(["evaluate", "-o", study, MODEL] + reduce)
        assert glob.glob(os.path.join(study, "cache", "decisions-*.jsonl"))
        herdsim(["evaluate", "-o", study, MODEL, "--redo"] + reduce)
        assert (transcripts(os.path.join(study, "tiny-qwen2", "p3.h5"))["cache_hit"] == 1).all()
        herdsim(["evaluate", "-o", study, MODEL, "--redo", "--no-cache"] + reduce)
        assert "cache_hit" not in transcripts(os.path.join(study, "tiny-qwen2", "p3.h5"))
    print("decision cache: OK")


if __name__ == "__main__":
    main()
