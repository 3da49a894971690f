"""Single-word latency of this tree's SavedModel against another checkout's, interleaved in one
process on the same words.

    .venv/bin/python benchmarks/latency_ab.py --baseline ../baseline --run-dir runs/bench-small \
        --rounds 3 --json > benchmarks/results/latency-ab.json

Each tree exports the same run (`--run-dir`) in a process of its own (its own `s2s_keras`);
both SavedModels are then loaded here, and each round sends `--requests` single-word requests
(CMUdict test-split words in a seeded order) to one model's `greedy` signature, then its
`serving_default` (beam 5), then the same to the other model, the order of the models
alternating by round. With `--batch-words N` (default 2048; 0: none) each round also
sends the first N words of that order in batches of 256 to both signatures of each model,
for words/s at batch 256 (interleaved in the same way; above 1 is faster there). Latency
differences of a few percent drown in this VM's drift between processes minutes apart
(`decode_ab.py`'s runs differ by ±10%); interleaved in one process they do not. Reports p50
and p90 per side and signature, their ratios (this tree over the baseline: below 1 is
faster), and whether both models gave the same outputs for every word.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402
import tensorflow_text  # noqa: E402,F401

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)
from decode_ab import commit  # noqa: E402
from host import host, measured  # noqa: E402

from s2s_keras import pipelines  # noqa: E402
from s2s_keras.run_dir import load_run  # noqa: E402

EXPORT = """
import sys
sys.path.insert(0, {tree!r})
from s2s_keras.export import export
from s2s_keras.run_dir import load_run
config, model = load_run({run_dir!r})
print(export(model, config, {base!r}))
"""


def export_from(tree: str, run_dir: str, base: str) -> str:
    """The SavedModel path of `run_dir` exported by `tree`'s package."""
    code = EXPORT.format(tree=tree, run_dir=os.path.abspath(run_dir), base=base)
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tree
    )
    if completed.returncode:
        raise RuntimeError(f"exporting from {tree} failed:\n{completed.stderr[-3000:]}")
    return completed.stdout.strip().splitlines()[-1]


BATCH_SIZE = 256


def signatures(loaded) -> dict:
    """Per kind, a call of a list of words."""
    return {
        "greedy": lambda words: loaded.greedy(inputs=tf.constant(words))["outputs"],
        "beam5": lambda words: loaded.signatures["serving_default"](inputs=tf.constant(words))[
            "outputs"
        ],
    }


def batch_words_per_s(call, words, outputs) -> float:
    """Words/s of `call` over `words` in batches of `BATCH_SIZE`; their outputs into `outputs`."""
    start = time.perf_counter()
    for first in range(0, len(words), BATCH_SIZE):
        batch = words[first : first + BATCH_SIZE]
        outputs.update(zip(batch, call(batch).numpy()))
    return len(words) / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--baseline", required=True, help="another checkout of the repository")
    parser.add_argument("--run-dir", default="runs/bench-small")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-words", type=int, default=2048)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    config, _ = load_run(args.run_dir)
    words = sorted({source for source, _ in pipelines.load_corpus(config.data).test})
    random.Random(0).shuffle(words)
    batch_words, words = words[: args.batch_words], words[: args.requests]
    trees = {"baseline": os.path.abspath(args.baseline), "this": os.path.dirname(HERE)}
    with tempfile.TemporaryDirectory() as scratch:
        calls = {
            name: signatures(
                tf.saved_model.load(export_from(tree, args.run_dir, os.path.join(scratch, name)))
            )
            for name, tree in trees.items()
        }
        times = {name: {kind: [] for kind in ("greedy", "beam5")} for name in trees}
        speeds = {name: {kind: [] for kind in ("greedy", "beam5")} for name in trees}
        outputs = {name: {} for name in trees}
        batch_outputs = {name: {kind: {} for kind in ("greedy", "beam5")} for name in trees}
        for name in trees:  # warm-up: tracing, first-call allocations
            for call in calls[name].values():
                for word in words[:20]:
                    call([word])
                if batch_words:
                    call(batch_words[:BATCH_SIZE])
        for round_ in range(args.rounds):
            order = list(trees) if round_ % 2 == 0 else list(trees)[::-1]
            for name in order:
                for kind, call in calls[name].items():
                    for word in words:
                        start = time.perf_counter()
                        result = call([word])
                        times[name][kind].append((time.perf_counter() - start) * 1000)
                        outputs[name][kind, word] = result.numpy()[0]
                    if batch_words:
                        speeds[name][kind].append(
                            batch_words_per_s(call, batch_words, batch_outputs[name][kind])
                        )
    summary = {
        name: {
            kind: {
                "p50_ms": float(np.percentile(values, 50)),
                "p90_ms": float(np.percentile(values, 90)),
            }
            for kind, values in kinds.items()
        }
        for name, kinds in times.items()
    }
    report = {
        "host": host(),
        "measured": measured(),
        "run_dir": args.run_dir,
        "commits": {name: commit(tree) for name, tree in trees.items()},
        "requests": len(words),
        "rounds": args.rounds,
        "latency": summary,
        "this_over_baseline_p50": {
            kind: summary["this"][kind]["p50_ms"] / summary["baseline"][kind]["p50_ms"]
            for kind in ("greedy", "beam5")
        },
        "identical_outputs": outputs["this"] == outputs["baseline"],
    }
    if batch_words:
        medians = {
            name: {kind: float(np.median(values)) for kind, values in kinds.items()}
            for name, kinds in speeds.items()
        }
        report.update(
            batch_words=len(batch_words),
            words_per_s_batch_256=medians,
            this_over_baseline_words_per_s=(
                {
                    kind: medians["this"][kind] / medians["baseline"][kind]
                    for kind in medians["this"]
                }
            ),
            identical_batch_outputs=batch_outputs["this"] == batch_outputs["baseline"],
        )
    print(json.dumps(report) if args.json else json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
