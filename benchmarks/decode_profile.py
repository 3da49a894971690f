"""Where greedy decoding's milliseconds go: TensorFlow's profiler over the exported SavedModel's
`greedy` signature (what TF Serving runs), at batch 256.

    .venv/bin/python benchmarks/decode_profile.py --run-dir runs/bench-lstm [--fused] \
        > benchmarks/results/decode-profile.json

`--fused`: the export whose LSTM loops run s2s_keras' kernels (`export(fused=True)`).
On CMUdict test-split words (`--words`, default 2048, in batches of 256): one untimed pass, one
timed pass (words/s, ms per call), then 8 batches again under `tf.profiler.experimental`.
(Batch 1 is not profiled: once TensorFlow's executor has timed its ops, it runs the cheap ones
inline without trace events, so a single word's trace misses most of its ops. `decode_speed.py`
measures its latency.) The trace's op events (host CPU plane, the
executor's threads; they overlap, so the op time can exceed the wall time) are summed per call:
  - by region, from the op's node name: the encoder's time loops (`encoder_.../while`), the
    decoding loop (every other `while`), and outside the loops (tokenizing, embedding the
    source, the input projections, detokenizing);
  - by op type (with how many ops of that type run per call), and by op type within each region.
Next to it, the speed of the recurrent step's matmul alone at batch 256 in the same process
(`train_speed.step_matmul_gflops`), and the loops' matmul time.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402
import tensorflow_text  # noqa: E402,F401

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from host import host, measured  # noqa: E402
from step_profile import OpTimes  # noqa: E402
from train_speed import step_matmul_gflops  # noqa: E402

from s2s_keras import pipelines  # noqa: E402
from s2s_keras.export import export, load_saved_model  # noqa: E402
from s2s_keras.run_dir import load_run  # noqa: E402

WHILE = re.compile(r"/while(_\d+)?/")


def region(node: str, op: str = "") -> str:
    """The region of an op from its node name and type (see the module docstring): a fused
    export's whole-sequence op is an encoder loop in one op, its greedy and beam search ops
    the decoding loop."""
    if op.startswith("S2sLstmSequence"):
        return "encoder loops"
    if op.startswith(("S2sLstmGreedy", "S2sLstmBeamSearch")):  # float32 or bf16
        return "decoding loop"
    match = WHILE.search(node)
    if not match:
        return "outside the loops"
    return "encoder loops" if "encoder_" in node[: match.start()] else "decoding loop"


def breakdown(trace_dir: str, calls: int) -> dict:
    times = OpTimes(trace_dir, calls, region)
    return {
        "op_ms_per_call": round(sum(times.by_region.values()), 3),
        "ops_per_call": round(sum(times.counts.values()), 1),
        "by_region_ms_per_call": times.rounded(times.by_region),
        "by_op_ms_per_call": {
            op: {"ms": round(ms, 3), "count": round(times.counts[op], 1)}
            for op, ms in times.by_op.most_common(20)
        },
        "by_region_and_op_ms_per_call": {
            key: times.rounded(c, 10) for key, c in times.within.items()
        },
    }


def profile(greedy, batches: list, profiled: int) -> dict:
    """One untimed pass and one timed pass over `batches`, then the first `profiled` of them
    under the profiler (it drops events past a few hundred thousand); per call."""
    for batch in batches:
        greedy(inputs=batch)
    start = time.perf_counter()
    for batch in batches:
        greedy(inputs=batch)
    seconds = time.perf_counter() - start
    words = sum(int(batch.shape[0]) for batch in batches)
    with tempfile.TemporaryDirectory() as trace_dir:
        tf.profiler.experimental.start(trace_dir)
        for batch in batches[:profiled]:
            greedy(inputs=batch)
        tf.profiler.experimental.stop()
        found = breakdown(trace_dir, profiled)
    return {
        "calls": len(batches),
        "profiled_calls": profiled,
        "words_per_s": words / seconds,
        "ms_per_call": 1000 * seconds / len(batches),
        **found,
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--run-dir", default="runs/bench-lstm")
    parser.add_argument("--words", type=int, default=2048)
    parser.add_argument(
        "--fused", action="store_true", help="the export on the LSTM kernels (export(fused=True))"
    )
    args = parser.parse_args()
    config, model = load_run(args.run_dir)
    corpus = pipelines.load_corpus(config.data)
    words = sorted({source for source, _ in corpus.test})[: args.words]
    with tempfile.TemporaryDirectory() as base:
        loaded = load_saved_model(export(model, config, base, fused=args.fused))

        def greedy(inputs):
            return loaded.greedy(inputs=inputs)["outputs"]

        batch_256 = profile(
            greedy, [tf.constant(words[i : i + 256]) for i in range(0, len(words), 256)], 8
        )
    dtype = "bfloat16" if model.precision == "mixed_bfloat16" else "float32"
    matmul = step_matmul_gflops(dtype, 256, model.hidden_units)
    report = {
        "run_dir": args.run_dir,
        "preset": config.preset,
        "precision": model.precision,
        "hidden_units": model.hidden_units,
        "num_layers": model.num_layers,
        "words": len(words),
        "fused": args.fused,
        "batch_256": batch_256,
        "step_matmul_gflop_per_s_batch_256": matmul,
        "host": host(),
        "measured": measured(),
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
