"""Training speed with the fused LSTM step kernels against the same loop in TensorFlow ops,
interleaved in one process on the same batches (read into memory first).

    .venv/bin/python benchmarks/train_ab.py --units 256 --layers 1 --batch-size 128 \
        --pairs 40000 --rounds 3 [--precision mixed_bfloat16|float32|both] [--set KEY=VALUE ...] \
        > benchmarks/results/train-ab-lstm-kernels.json

Builds two models of `train_speed.py`'s configuration (same seed, same data pipeline, same
epoch order): `fused` traces its training step with the kernels of
`s2s_keras/layers/lstm_kernels.cc`, `tensorflow_ops` inside `lstm.without_fusing()`. After one
warm-up epoch each (tracing), it runs `--rounds` rounds of one epoch of A then one of B (the
order alternates by round), and reports every epoch's tokens/s and seconds, the medians and
their ratio, per precision. Both models train on identical batches and compute identical
numbers (tests/test_lstm_kernels.py), so only the speed differs.

The ratio `fused_over_tensorflow_ops` is of each side's best epoch: on the machines this was
written on, an epoch now and then runs at a fixed ~71 ms per step whatever the model, with the
process's CPU time unchanged (it waits, on both sides alike), so the best epoch is the one
measure such stalls do not reach. The medians and the CPU seconds per epoch (which the stalls
do not change) are reported beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import keras  # noqa: E402
from train_speed import (  # noqa: E402
    PRECISIONS,
    benchmark_config,
    network_arguments,
    report_header,
    step_matmul_gflops,
)

from s2s_keras.data import PaddingCounter  # noqa: E402
from s2s_keras.layers import lstm, lstm_kernels  # noqa: E402
from s2s_keras.training import build_model, compile_model, datasets, load_data  # noqa: E402


class Variant:
    """One model, its dataset, and the epochs it has trained; `epoch()` runs and times one."""

    def __init__(self, config, corpus, source_vocabulary, target_vocabulary, lengths):
        keras.utils.set_random_seed(config.train.seed)
        self.model = build_model(config, source_vocabulary, target_vocabulary)
        data = datasets(config, corpus, self.model, lengths)
        self.steps = data.batches
        compile_model(self.model, config, steps_per_epoch=self.steps)
        self.padding = PaddingCounter(2)
        # The timed epoch of train_speed.py, read once into memory: every fit call reads the
        # same batches from there (the pipeline's own cache lasts one iterator only).
        self.stream = data.epochs(1, 2, self.padding).cache()
        for _ in self.stream:
            pass
        self.done = 0

    def epoch(self) -> tuple:
        """`(wall seconds, this process's CPU seconds)` of one epoch."""
        start, cpu = time.perf_counter(), time.process_time()
        self.model.fit(
            self.stream,
            initial_epoch=self.done,
            epochs=self.done + 1,
            steps_per_epoch=self.steps,
            verbose=0,
        )
        self.done += 1
        return time.perf_counter() - start, time.process_time() - cpu


def ab(config, corpus, vocabularies, lengths, rounds: int) -> dict:
    fused = Variant(config, corpus, *vocabularies, lengths)
    fused.epoch()  # traces with the kernels
    with lstm.without_fusing():
        plain = Variant(config, corpus, *vocabularies, lengths)
        plain.epoch()  # traces with TensorFlow's ops
    sides = {"fused": fused, "tensorflow_ops": plain}
    seconds = {name: [] for name in sides}
    cpu = {name: [] for name in sides}
    for index in range(rounds):
        order = list(sides) if index % 2 == 0 else list(sides)[::-1]
        for name in order:
            wall, used = sides[name].epoch()
            seconds[name].append(wall)
            cpu[name].append(used)
    tokens = {}
    for name, side in sides.items():
        padded, total, _ = side.padding.counts[1].numpy().tolist()
        tokens[name] = total - padded
    assert tokens["fused"] == tokens["tensorflow_ops"], "the two sides saw different batches"
    report = {"tokens_per_epoch": tokens["fused"]}
    for name in sides:
        rates = [tokens[name] / s for s in seconds[name]]
        report[name] = {
            "seconds_per_epoch": seconds[name],
            "cpu_seconds_per_epoch": cpu[name],
            "tokens_per_s": rates,
            "best_tokens_per_s": max(rates),
            "median_tokens_per_s": statistics.median(rates),
            "median_cpu_seconds_per_epoch": statistics.median(cpu[name]),
        }
    fused_side, plain_side = report["fused"], report["tensorflow_ops"]
    report["fused_over_tensorflow_ops"] = (
        fused_side["best_tokens_per_s"] / plain_side["best_tokens_per_s"]
    )
    report["fused_over_tensorflow_ops_median"] = (
        fused_side["median_tokens_per_s"] / plain_side["median_tokens_per_s"]
    )
    report["cpu_seconds_tensorflow_ops_over_fused"] = (
        plain_side["median_cpu_seconds_per_epoch"] / fused_side["median_cpu_seconds_per_epoch"]
    )
    report["steps_per_epoch"] = fused.steps
    return report


def main():
    parser = argparse.ArgumentParser()
    network_arguments(parser)
    parser.add_argument("--precision", choices=sorted(PRECISIONS), default="both")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if lstm_kernels.load() is None:
        raise SystemExit(f"no fused kernels to compare: {lstm_kernels.status()}")
    report = {
        **report_header(args),
        "rounds": args.rounds,
    }
    config = benchmark_config(args, PRECISIONS[args.precision][0])
    corpus, source_vocabulary, target_vocabulary, lengths = load_data(config)
    for precision in PRECISIONS[args.precision]:
        config = benchmark_config(args, precision)
        report[precision] = ab(
            config, corpus, (source_vocabulary, target_vocabulary), lengths, args.rounds
        )
        dtype = "bfloat16" if precision == "mixed_bfloat16" else "float32"
        report[precision]["step_matmul_gflop_per_s"] = step_matmul_gflops(
            dtype, args.batch_size, args.units
        )
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
