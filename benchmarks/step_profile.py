"""Where one training step's milliseconds go: TensorFlow's profiler over one epoch of
`train_speed.py`'s configuration, with the fused LSTM kernels and with the same loop in
TensorFlow ops, and which oneDNN kernel each matmul gets.

    .venv/bin/python benchmarks/step_profile.py --units 256 --layers 1 --batch-size 128 \
        --pairs 40000 [--precision mixed_bfloat16] [--set KEY=VALUE ...] \
        > benchmarks/results/step-profile.json

For each side — `whole_sequence` (where they run for the precision: the whole-sequence ops of
`lstm_sequence.h`, bf16 on a CPU with AMX tiles, float32 on one with AVX2 and FMA; and the same
as `whole_sequence_without_token_tables`, under `lstm.without_token_tables()`: the first layers'
inputs multiplied, not gathered from a token table), `fused` (the per-step kernels in a
TensorFlow loop, `lstm.per_step_kernels()`), `tensorflow_ops` (`lstm.without_fusing()`) — one
warm-up epoch, two unprofiled epochs (the better one is the
step time: see train_ab.py on stalls), then one epoch under `tf.profiler.experimental` (the
profiler slows the epoch; its wall time is reported too). The trace's op events (host CPU
plane, the executor's threads) are summed per step:
  - by region, from the op's node name: the encoder's and the decoder's forward time loops
    (`<layer>/while/body`), the backward time loops (the hand-written gradients' `while/body`),
    the whole-sequence ops (`forward sequence ops`, `backward sequence ops`, by op type),
    and everything outside the loops (embeddings, input projections, the output projection
    and softmax, the loss, the weight gradients, Adam, casts, transposes);
  - by op type, and by op type within each region.
Op times on the two executor threads overlap, so a region's sum can exceed its share of the
wall time; the step's wall time is the epoch's over its steps.

Then, in a process of its own with `ONEDNN_VERBOSE=1`, 5 training steps as the code runs them:
every oneDNN primitive executed, counted by kind, implementation (for instance
`brg_matmul:avx512_core_bf16`, or `..._amx` on hosts with AMX tiles) and shapes, with their
summed milliseconds.
"""

from __future__ import annotations

import argparse
import collections
import glob
import json
import os
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# Before TensorFlow, as in the `s2s` command: the package sets TensorFlow's oneDNN default.
import s2s_keras  # noqa: E402, F401

# isort: split
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow.tsl.profiler.protobuf import xplane_pb2  # noqa: E402
from train_ab import Variant  # noqa: E402
from train_speed import (  # noqa: E402
    PEAK_DTYPE,
    PRECISIONS,
    benchmark_config,
    network_arguments,
    report_header,
)

from s2s_keras.layers import lstm, lstm_kernels  # noqa: E402
from s2s_keras.training import load_data  # noqa: E402

LOOP = re.compile(r"/while(_\d+)?/body/")
EXECUTOR_EVENTS = (":Process", ":Record", ":StartRegion", ":StopRegion")
MARKER = "step_profile: the counted steps start here"
WORKER_STEPS = 5


SEQUENCE_OPS = {
    "S2sLstmSequence": "forward sequence ops",
    "S2sLstmSequenceGrad": "backward sequence ops",
    "S2sLstmSequenceFloat": "forward sequence ops",
    "S2sLstmSequenceFloatGrad": "backward sequence ops",
}


def region(node: str, op: str = "") -> str:
    """The region of an op from its node name and type (see the module docstring)."""
    if op in SEQUENCE_OPS:
        return SEQUENCE_OPS[op]
    if not LOOP.search(node):
        return "outside the loops"
    for layer in ("encoder", "decoder"):
        if f"{layer}_" in node.split("/while", 1)[0]:
            return f"{layer} forward loop"
    return "backward loops"


def op_events(trace_dir: str):
    """`(node name, op type, milliseconds)` of every op event of the host plane."""
    [path] = glob.glob(os.path.join(trace_dir, "**", "*.xplane.pb"), recursive=True)
    space = xplane_pb2.XSpace()
    with open(path, "rb") as file:
        space.ParseFromString(file.read())
    for plane in space.planes:
        if plane.name != "/host:CPU":
            continue
        names = {key: value.name for key, value in plane.event_metadata.items()}
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):
                continue
            for event in line.events:
                name = names.get(event.metadata_id, "")
                # "node:OpType" are the ops; the executor's own events ("Process", ...) enclose them
                if ":" in name and not name.endswith(EXECUTOR_EVENTS):
                    node, op = name.rsplit(":", 1)
                    yield node, op, event.duration_ps / 1e9


class OpTimes:
    """The op events of a trace summed per `runs` (steps or calls): by region (`region_of`
    the node name), by op type (with how many ops of the type run), and by type per region."""

    def __init__(self, trace_dir: str, runs: int, region_of):
        self.by_region, self.by_op = collections.Counter(), collections.Counter()
        self.counts = collections.Counter()
        self.within = collections.defaultdict(collections.Counter)
        for node, op, ms in op_events(trace_dir):
            where = region_of(node, op)
            self.by_region[where] += ms / runs
            self.by_op[op] += ms / runs
            self.counts[op] += 1 / runs
            self.within[where][op] += ms / runs

    @staticmethod
    def rounded(counter, top=None) -> dict:
        return {key: round(value, 3) for key, value in counter.most_common(top)}


def breakdown(trace_dir: str, steps: int) -> dict:
    times = OpTimes(trace_dir, steps, region)
    return {
        "op_ms_per_step": round(sum(times.by_region.values()), 3),
        "by_region_ms_per_step": times.rounded(times.by_region),
        "by_op_ms_per_step": times.rounded(times.by_op, 25),
        "by_region_and_op_ms_per_step": {
            key: times.rounded(c, 12) for key, c in times.within.items()
        },
    }


def profiled(variant: Variant, steps: int) -> dict:
    plain = min(variant.epoch()[0] for _ in range(2))  # the better of two (see train_ab.py)
    with tempfile.TemporaryDirectory() as trace_dir:
        tf.profiler.experimental.start(trace_dir)
        start = time.perf_counter()
        variant.epoch()
        wall = time.perf_counter() - start
        tf.profiler.experimental.stop()
        report = breakdown(trace_dir, steps)
    return {
        "step_ms": 1000 * plain / steps,
        "profiled_step_ms": 1000 * wall / steps,
        **report,
    }


def onednn_kernels(args) -> dict:
    """The `--onednn-worker` run's ONEDNN_VERBOSE lines, counted."""
    command = [sys.executable, os.path.abspath(__file__), "--onednn-worker", *worker_args(args)]
    environment = dict(os.environ, ONEDNN_VERBOSE="1")
    completed = subprocess.run(command, capture_output=True, text=True, env=environment)
    if completed.returncode != 0:
        raise SystemExit(f"the ONEDNN_VERBOSE run failed:\n{completed.stderr[-3000:]}")
    counts, milliseconds = collections.Counter(), collections.Counter()
    _, marker, timed = completed.stdout.partition(MARKER)
    if not marker:
        raise SystemExit(f"the ONEDNN_VERBOSE run printed no marker:\n{completed.stdout[-2000:]}")
    for line in timed.splitlines():
        if not line.startswith("onednn_verbose,") or ",exec,cpu," not in line:
            continue
        fields = line.split(",")
        at = fields.index("exec")
        kind, implementation = fields[at + 2], fields[at + 3]
        shapes, ms = fields[-2], float(fields[-1])
        key = f"{kind} {implementation} {shapes}"
        counts[key] += 1
        milliseconds[key] += ms
    return {
        "steps": WORKER_STEPS,
        "by_primitive": {
            key: {"calls": counts[key], "ms": round(milliseconds[key], 3)}
            for key, _ in milliseconds.most_common(20)
        },
    }


def worker_args(args) -> list:
    return [
        f"--data={args.data}",
        f"--pairs={args.pairs}",
        f"--units={args.units}",
        f"--layers={args.layers}",
        f"--batch-size={args.batch_size}",
        f"--precision={args.precision}",
        *(f"--set={override}" for override in args.set),
    ]


def onednn_worker(args):
    """A few training steps (after tracing) for ONEDNN_VERBOSE to report on."""
    config = benchmark_config(args, args.precision)
    corpus, source_vocabulary, target_vocabulary, lengths = load_data(config)
    variant = Variant(config, corpus, source_vocabulary, target_vocabulary, lengths)
    variant.model.fit(variant.stream.take(3), epochs=1, verbose=0)  # tracing
    print(MARKER, flush=True)
    variant.model.fit(variant.stream.take(WORKER_STEPS), epochs=1, verbose=0)


def main():
    parser = argparse.ArgumentParser()
    network_arguments(parser)
    parser.add_argument(
        "--precision", choices=[p for p in PRECISIONS if p != "both"], default="mixed_bfloat16"
    )
    parser.add_argument("--onednn-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.onednn_worker:
        onednn_worker(args)
        return
    if lstm_kernels.load() is None:
        raise SystemExit(f"no fused kernels to profile: {lstm_kernels.status()}")
    config = benchmark_config(args, args.precision)
    corpus, source_vocabulary, target_vocabulary, lengths = load_data(config)
    vocabularies = (source_vocabulary, target_vocabulary)
    report = {
        **report_header(args),
        "precision": args.precision,
    }
    if lstm_kernels.sequence_ops(PEAK_DTYPE[args.precision]) is not None:
        whole = Variant(config, corpus, *vocabularies, lengths)
        whole.epoch()  # tracing
        report["whole_sequence"] = profiled(whole, whole.steps)
        del whole
        keras.backend.clear_session()
        with lstm.without_token_tables():
            multiplying = Variant(config, corpus, *vocabularies, lengths)
            multiplying.epoch()  # tracing
        report["whole_sequence_without_token_tables"] = profiled(multiplying, multiplying.steps)
        del multiplying
        keras.backend.clear_session()
    with lstm.per_step_kernels():
        fused = Variant(config, corpus, *vocabularies, lengths)
        fused.epoch()  # tracing
    report["steps_per_epoch"] = fused.steps
    report["fused"] = profiled(fused, fused.steps)
    del fused
    keras.backend.clear_session()
    with lstm.without_fusing():
        plain = Variant(config, corpus, *vocabularies, lengths)
        plain.epoch()
    report["tensorflow_ops"] = profiled(plain, plain.steps)
    report["onednn_kernels"] = onednn_kernels(args)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
