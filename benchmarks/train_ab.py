"""Training speed with and without one lever of the training path, interleaved in one process
on the same batches (read into memory first).

    .venv/bin/python benchmarks/train_ab.py --units 256 --layers 1 --batch-size 128 \
        --pairs 40000 --rounds 3 [--lever kernels|sequence|tables|one_hot|strategy|adam|autotune] \
        [--precision mixed_bfloat16|float32|both] [--set KEY=VALUE ...] \
        > benchmarks/results/train-ab-lstm-kernels.json  # or train-ab-sequence / -adam / ...

Builds two models of `train_speed.py`'s configuration (same seed, same data pipeline, same
epoch order), one per side of `--lever`:
  - `kernels` (default): `fused` traces its training step with the kernels of
    `s2s_keras/layers/lstm_kernels.cc`, `tensorflow_ops` inside `lstm.without_fusing()`. Both
    compute identical numbers (tests/test_lstm_kernels.py), so only the speed differs.
  - `sequence` (a CPU with AMX tiles, bf16): `whole_sequence` traces with the whole-sequence
    ops of `s2s_keras/layers/lstm_sequence.cc` (one op per layer and direction, its recurrent
    matmuls on the tiles), `per_step` inside `lstm.per_step_kernels()` (a TensorFlow loop of
    the per-step kernels and TensorFlow's matmuls). Their numbers differ by bf16 roundings.
  - `tables`: `token_tables` traces its training step with the first encoder and decoder
    layers gathering `x W_x + b` from `E W_x + b` by token id (`layers/lstm.py`),
    `multiply` inside `lstm.without_token_tables()` (embedded tokens times `W_x`, and both
    gradients of that matmul). The same numbers up to float roundings.
  - `one_hot`: `one_hot_matmul` traces with the token tables' gradient as a one-hot matmul
    (`lstm.gather_table`), `segment_sum` inside `lstm.without_one_hot_gradient()` (TensorFlow's
    gradient of `tf.gather`, `UnsortedSegmentSum`). The same numbers up to the matmul's
    rounding of `dz` to the compute dtype.
  - `strategy`: `default_strategy` builds, compiles and fits under TensorFlow's default
    strategy (what `train.strategy=auto` picks on one device), `one_device` under
    `OneDeviceStrategy` (`train.strategy=one_device`). The same numbers.
  - `adam`: `fused_adam` trains with `s2s_keras.optimizers.Adam` (one `ResourceApplyAdam` per
    variable), `keras_adam` with `keras.optimizers.Adam` (a dozen ops per variable); the same
    update up to the rounding of 1 − β.
  - `autotune`: `without_autotune` reads the batches as the training pipeline hands them over
    (`data.distributable`: tf.data's autotuning off), `autotune` reads the same batches with
    `tf.data.Options().autotune.enabled = True`, TensorFlow's default.
After one warm-up epoch each (tracing), it runs `--rounds` rounds of one epoch (one `fit` call:
an iterator made and deleted, as every `fit`, `evaluate` and validation pass does) of A then
one of B (the order alternates by round), and reports every epoch's wall and CPU seconds,
tokens/s, the medians and means, and the ratios, per precision.

`<a>_over_<b>` is the ratio of each side's best epoch, `<a>_over_<b>_median` of the medians,
`<b>_over_<a>_mean_seconds` of the mean epoch times. With tf.data's autotuning on, an epoch now
and then ends in seconds of idle waiting (deleting the iterator waits for its tuning thread,
see `data.distributable`); the best epoch is the one measure such waits do not reach, the mean
the one that counts them, and the CPU seconds per epoch do not change with them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import time
import unittest.mock

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# Before TensorFlow, as in the `s2s` command: the package sets TensorFlow's oneDNN default.
import s2s_keras  # noqa: E402, F401

# isort: split
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from train_speed import (  # noqa: E402
    PEAK_DTYPE,
    PRECISIONS,
    benchmark_config,
    network_arguments,
    report_header,
    step_matmul_gflops,
)

from s2s_keras import training  # noqa: E402
from s2s_keras.data import PaddingCounter  # noqa: E402
from s2s_keras.distribute import get_strategy  # noqa: E402
from s2s_keras.layers import lstm, lstm_kernels  # noqa: E402
from s2s_keras.training import build_model, compile_model, datasets, load_data  # noqa: E402


class Variant:
    """One model, its dataset, and the epochs it has trained; `epoch()` runs and times one."""

    def __init__(self, config, corpus, source_vocabulary, target_vocabulary, lengths, options=None):
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
        if options is not None:
            self.stream = self.stream.with_options(options)
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


def with_autotune() -> tf.data.Options:
    options = tf.data.Options()
    options.autotune.enabled = True
    return options


LEVERS = ("kernels", "sequence", "tables", "one_hot", "strategy", "adam", "autotune")


@contextlib.contextmanager
def keras_adam():
    """Models compiled inside train with `keras.optimizers.Adam`, not `s2s_keras.optimizers`'."""
    with unittest.mock.patch.object(training, "Adam", keras.optimizers.Adam):
        yield


def traced_pair(make, on: str, off: str, context) -> dict:
    """`{on: Variant, off: Variant made inside context}`, each traced by one epoch (the
    context's choices are read when the training step is traced)."""
    first = make()
    first.epoch()
    with context:
        second = make()
        second.epoch()
    return {on: first, off: second}


def build_sides(lever: str, make) -> dict:
    """`{name: Variant}`, the lever's side as the code runs first; each traced by one epoch."""
    pairs = {
        "kernels": ("fused", "tensorflow_ops", lstm.without_fusing),
        "sequence": ("whole_sequence", "per_step", lstm.per_step_kernels),
        "tables": ("token_tables", "multiply", lstm.without_token_tables),
        "one_hot": ("one_hot_matmul", "segment_sum", lstm.without_one_hot_gradient),
        "strategy": (
            "default_strategy",
            "one_device",
            lambda: get_strategy("one_device").scope(),
        ),
    }
    if lever in pairs:
        on, off, context = pairs[lever]
        return traced_pair(make, on, off, context())
    if lever == "adam":
        fused = make()
        with keras_adam():
            plain = make()
        assert type(plain.model.optimizer) is keras.optimizers.Adam
        sides = {"fused_adam": fused, "keras_adam": plain}
    else:
        sides = {"without_autotune": make(), "autotune": make(with_autotune())}
    for side in sides.values():
        side.epoch()
    return sides


def ab(config, corpus, vocabularies, lengths, rounds: int, lever: str = "kernels") -> dict:
    sides = build_sides(
        lever, lambda options=None: Variant(config, corpus, *vocabularies, lengths, options)
    )
    on, off = sides
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
    assert tokens[on] == tokens[off], "the two sides saw different batches"
    report = {"tokens_per_epoch": tokens[on]}
    for name in sides:
        rates = [tokens[name] / s for s in seconds[name]]
        report[name] = {
            "seconds_per_epoch": seconds[name],
            "cpu_seconds_per_epoch": cpu[name],
            "tokens_per_s": rates,
            "best_tokens_per_s": max(rates),
            "median_tokens_per_s": statistics.median(rates),
            "mean_seconds_per_epoch": statistics.mean(seconds[name]),
            "median_cpu_seconds_per_epoch": statistics.median(cpu[name]),
        }
    a, b = report[on], report[off]
    report[f"{on}_over_{off}"] = a["best_tokens_per_s"] / b["best_tokens_per_s"]
    report[f"{on}_over_{off}_median"] = a["median_tokens_per_s"] / b["median_tokens_per_s"]
    report[f"{off}_over_{on}_mean_seconds"] = (
        b["mean_seconds_per_epoch"] / a["mean_seconds_per_epoch"]
    )
    report[f"cpu_seconds_{off}_over_{on}"] = (
        b["median_cpu_seconds_per_epoch"] / a["median_cpu_seconds_per_epoch"]
    )
    report["steps_per_epoch"] = sides[on].steps
    return report


def main():
    parser = argparse.ArgumentParser()
    network_arguments(parser)
    parser.add_argument("--precision", choices=sorted(PRECISIONS), default="both")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--lever", choices=LEVERS, default="kernels")
    args = parser.parse_args()
    if args.lever == "kernels" and lstm_kernels.load() is None:
        raise SystemExit(f"no fused kernels to compare: {lstm_kernels.status()}")
    for precision in PRECISIONS[args.precision]:
        if args.lever == "sequence" and lstm_kernels.sequence_ops(PEAK_DTYPE[precision]) is None:
            raise SystemExit(
                f"no {precision} whole-sequence ops to compare: {lstm_kernels.status()}"
            )
    report = {
        **report_header(args),
        "rounds": args.rounds,
        "lever": args.lever,
    }
    config = benchmark_config(args, PRECISIONS[args.precision][0])
    corpus, source_vocabulary, target_vocabulary, lengths = load_data(config)
    for precision in PRECISIONS[args.precision]:
        config = benchmark_config(args, precision)
        report[precision] = ab(
            config, corpus, (source_vocabulary, target_vocabulary), lengths, args.rounds, args.lever
        )
        report[precision]["step_matmul_gflop_per_s"] = step_matmul_gflops(
            PEAK_DTYPE[precision], args.batch_size, args.units
        )
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
