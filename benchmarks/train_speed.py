"""Training speed in tokens/second, next to a PyTorch reference and the keras-io recipe.

    .venv/bin/pip install -r benchmarks/requirements.txt      # torch, for the reference
    .venv/bin/python benchmarks/train_speed.py --units 256 --layers 1 --batch-size 128 \
        --pairs 40000 [--precision mixed_bfloat16|float32|both] [--set KEY=VALUE ...] \
        [--skip-torch] [--skip-kerasio] [--intra-op-threads N] [--inter-op-threads N] --json

Measures, in one invocation on the same training pairs (CMUdict, `data.max_pairs = --pairs`, the
training split of those):
  - ours: the real training path — `load_data` → `build_model` → `datasets` →
    `datasets(...).epochs(0, 2, PaddingCounter(2))` → `compile_model` →
    `model.fit(epochs=2, steps_per_epoch=...)` under the strategy `train` picks — of the `lstm`
    preset with `model.hidden_units=--units`, `model.num_layers=--layers`, `model.dropout=0`,
    `train.batch_size=--batch-size`, `train.precision` (Adam, clip norm 5, reversed source,
    length bucketing as the preset). Each epoch is timed by a callback; the second is reported,
    with its padding fraction (`PaddingCounter.fraction(1)`), steps, seconds, the parameter count
    and the peak RSS of the process up to then (`ru_maxrss`: includes loading the corpus and,
    with `--precision both`, both runs);
  - in a fresh process (`torch_reference.py`: TensorFlow's thread pools slow PyTorch in a
    shared process, see there), a PyTorch reference of the same network (nn.Embedding, nn.LSTM
    encoder whose final (h, c) starts an nn.LSTM decoder, nn.Linear, CrossEntropyLoss ignoring
    id 0, Adam at our rate, clip_grad_norm 5, the source reversed within its length), with
    packed sequences, trained on EXACTLY the batches of our timed epoch (the same
    `datasets(...).epochs` epoch, read once into numpy; checked equal to ours by their padding and
    position counts): ~20 batches of warm-up,
    then one timed epoch, at fp32 and under bf16 autocast (loss in float32; `lstm_output_dtype`
    says whether autocast reached the LSTMs or only the projection);
  - in a fresh process too, the keras-io `lstm_seq2seq` style: one-hot encoder/decoder inputs
    and targets padded to the corpus' maximum lengths (padding is the one-hot of id 0, as the
    recipe pads with spaces, and is trained on, unmasked), `LSTM(return_state=True)` encoder,
    decoder `LSTM` started from its states (stacked the same way for `--layers` > 1),
    `Dense(softmax)`, rmsprop + categorical_crossentropy, `fit(batch_size=--batch-size,
    epochs=2)`, on the same pairs (no validation split, as ours), at the same precisions as
    ours; the second epoch is reported;
  - useful FLOP/s: an analytic count per real token (per LSTM layer 2·4H·(in+H) forward, the
    projection 2·H·V on target tokens, training = 3× forward) over the measured time, for ours
    and PyTorch, and the machine's matmul peak (4096×4096 `tf.matmul`, 5 chained per
    `tf.function` call, float32 and bfloat16); utilization = useful FLOP/s / the peak of the
    precision used. Also the GFLOP/s of the recurrent step's own matmul shape
    ([batch, units] × [units, 4·units]) in TensorFlow (`step_matmul_gflop_per_s`) and in PyTorch
    (`pytorch.step_matmul_gflop_per_s`): an LSTM does one per time step and can batch nothing
    else there, so this small-matrix rate bounds both sides.
Tokens = non-padding source tokens + target tokens including the end token (the non-padding
`target_out_ids`), the same count on all three sides. Ratios: `ours_vs_torch` (our fastest
precision over PyTorch's fastest) and `ours_vs_kerasio` (our fastest over keras-io's fastest).
Excluded from every timing: reading the corpus, vocabularies, tokenization (once, when the
dataset is made), tracing and the first epoch; for PyTorch and keras-io also building their
inputs (tensors, one-hot arrays), which favours them: ours arranges each epoch's batches
(shuffle, buckets, padding) inside the timed epoch. Ours runs without the callbacks of
`s2s train` (backups, TensorBoard, CSV log) and without validation.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from host import host, measured  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Before TensorFlow, as in the `s2s` command: the package sets TensorFlow's oneDNN default.
import s2s_keras  # noqa: E402, F401

# isort: split
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from batch_file import load_batches, save_batches  # noqa: E402  (benchmarks/, the script's directory)

from s2s_keras.config import preset  # noqa: E402
from s2s_keras.data import PaddingCounter  # noqa: E402
from s2s_keras.distribute import get_strategy  # noqa: E402
from s2s_keras.layers import lstm_kernels  # noqa: E402
from s2s_keras.onednn_default import onednn_enabled  # noqa: E402
from s2s_keras.text import PAD_ID  # noqa: E402
from s2s_keras.training import build_model, compile_model, datasets, load_data  # noqa: E402

PRECISIONS = {
    "float32": ["float32"],
    "mixed_bfloat16": ["mixed_bfloat16"],
    "both": ["float32", "mixed_bfloat16"],
}
PEAK_DTYPE = {
    "float32": "float32",
    "mixed_bfloat16": "bfloat16",
    "fp32": "float32",
    "bf16_autocast": "bfloat16",
    "padded_fp32": "float32",
    "padded_bf16_autocast": "bfloat16",
}


class EpochTimes(keras.callbacks.Callback):
    """Wall-clock seconds of each epoch (Keras syncs on the epoch's logs before `on_epoch_end`)."""

    def __init__(self):
        super().__init__()
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self.start)


def benchmark_config(args, precision: str):
    base = preset("lstm")
    config = dataclasses.replace(
        base,
        data=dataclasses.replace(base.data, source=args.data, max_pairs=args.pairs),
        model=dataclasses.replace(
            base.model, hidden_units=args.units, num_layers=args.layers, dropout=0.0
        ),
        train=dataclasses.replace(
            base.train, batch_size=args.batch_size, precision=precision, epochs=2
        ),
    )
    return config.override(
        args.set
    )  # levers, e.g. data.bucket_width=64 + data.max_bucket_length=65


def training_flops(
    source_tokens: int,
    target_tokens: int,
    embedding_size: int,
    units: int,
    layers: int,
    target_vocabulary_size: int,
) -> int:
    """Useful FLOPs of one training pass: matmuls only, real tokens only, backward = 2× forward."""
    lstm = sum(
        2 * 4 * units * ((embedding_size if layer == 0 else units) + units)
        for layer in range(layers)
    )
    return 3 * (source_tokens * lstm + target_tokens * (lstm + 2 * units * target_vocabulary_size))


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def ours_benchmark(config, corpus, source_vocabulary, target_vocabulary, lengths):
    """Two epochs through the package's training path; `(model, report of the second epoch)`."""
    strategy = get_strategy(config.train.strategy, config.train.cpu_devices)
    keras.utils.set_random_seed(config.train.seed)
    with strategy.scope():
        model = build_model(config, source_vocabulary, target_vocabulary)
    data = datasets(config, corpus, model, lengths)
    steps = data.batches
    with strategy.scope():
        compile_model(model, config, steps_per_epoch=steps)
    padding = PaddingCounter(2)
    stream = data.epochs(0, 2, padding)
    timer = EpochTimes()
    model.fit(stream, epochs=2, steps_per_epoch=steps, callbacks=[timer], verbose=0, shuffle=False)
    padded, total, batches = (int(n) for n in padding.counts[1].numpy())
    tokens = total - padded
    return model, {
        "tokens_per_s": tokens / timer.seconds[1],
        "pad_fraction": padding.fraction(1),
        "precision": config.train.precision,
        "tokens": tokens,
        "steps_per_epoch": steps,
        "batches_counted": batches,
        "seconds_per_epoch": timer.seconds[1],
        "first_epoch_seconds": timer.seconds[0],
        "parameters": model.count_params(),
        "peak_rss_mb": peak_rss_mb(),
        "positions": {"padded": padded, "total": total},
    }


def epoch_batches(config, corpus, model) -> list:
    """The batches of our timed epoch (epoch 1 of `epoch_range=(0, 2)`: its order depends on
    (seed, epoch) alone) as numpy `(source_ids, target_in_ids, target_out_ids)`."""
    dataset = datasets(config, corpus, model).epochs(1, 2)
    return [
        (inputs["source_ids"].numpy(), inputs["target_in_ids"].numpy(), target_out.numpy())
        for inputs, target_out in dataset
    ]


def token_counts(batches) -> dict:
    source = sum(int((s != PAD_ID).sum()) for s, _, _ in batches)
    target = sum(int((t != PAD_ID).sum()) for _, _, t in batches)
    padded = sum(int((s == PAD_ID).sum() + (t == PAD_ID).sum()) for s, _, t in batches)
    total = sum(s.size + t.size for s, _, t in batches)
    return {
        "source": source,
        "target": target,
        "tokens": source + target,
        "padded": padded,
        "total": total,
    }


def one_hot_pairs(batches, source_vocabulary_size: int, target_vocabulary_size: int):
    """The keras-io recipe's arrays from our pairs: one-hot float32, padded to the corpus maxima."""
    rows = [
        (s[s != PAD_ID], i[i != PAD_ID], t[t != PAD_ID])
        for batch in batches
        for s, i, t in zip(*batch)
    ]

    def padded(column, vocabulary_size):
        width = max(len(row[column]) for row in rows)
        ids = np.zeros((len(rows), width), np.int32)
        for index, row in enumerate(rows):
            ids[index, : len(row[column])] = row[column]
        return np.eye(vocabulary_size, dtype=np.float32)[ids]

    return (
        padded(0, source_vocabulary_size),
        padded(1, target_vocabulary_size),
        padded(2, target_vocabulary_size),
    )


def kerasio_model(
    num_encoder_tokens: int, num_decoder_tokens: int, units: int, layers: int, precision: str
):
    """keras.io/examples/nlp/lstm_seq2seq (one layer there; stacked alike for `layers` > 1)."""
    encoder_inputs = keras.Input(shape=(None, num_encoder_tokens))
    x, encoder_states = encoder_inputs, []
    for index in range(layers):
        x, state_h, state_c = keras.layers.LSTM(
            units, return_sequences=index < layers - 1, return_state=True, dtype=precision
        )(x)
        encoder_states.append([state_h, state_c])
    decoder_inputs = keras.Input(shape=(None, num_decoder_tokens))
    x = decoder_inputs
    for index in range(layers):
        x, _, _ = keras.layers.LSTM(
            units, return_sequences=True, return_state=True, dtype=precision
        )(x, initial_state=encoder_states[index])
    # float32 softmax under mixed precision, as Keras' mixed-precision guide does
    decoder_outputs = keras.layers.Dense(num_decoder_tokens, activation="softmax", dtype="float32")(
        x
    )
    model = keras.Model([encoder_inputs, decoder_inputs], decoder_outputs)
    model.compile(optimizer="rmsprop", loss="categorical_crossentropy", metrics=["accuracy"])
    return model


def kerasio_benchmark(batches, meta: dict) -> dict:
    encoder_input_data, decoder_input_data, decoder_target_data = one_hot_pairs(
        batches, meta["source_vocabulary_size"], meta["target_vocabulary_size"]
    )
    tokens = token_counts(batches)["tokens"]
    result = {
        "pairs": len(encoder_input_data),
        "max_source_length": encoder_input_data.shape[1],
        "max_target_length": decoder_input_data.shape[1],
    }
    for precision in meta["precisions"]:
        keras.utils.set_random_seed(0)
        recipe = kerasio_model(
            encoder_input_data.shape[2],
            decoder_input_data.shape[2],
            meta["units"],
            meta["layers"],
            precision,
        )
        timer = EpochTimes()
        recipe.fit(
            [encoder_input_data, decoder_input_data],
            decoder_target_data,
            batch_size=meta["batch_size"],
            epochs=2,
            callbacks=[timer],
            verbose=0,
        )
        result[precision] = {
            "tokens_per_s": tokens / timer.seconds[1],
            "seconds_per_epoch": timer.seconds[1],
            "steps_per_epoch": -(-len(encoder_input_data) // meta["batch_size"]),
            "parameters": recipe.count_params(),
        }
    result["fastest"] = max(
        meta["precisions"], key=lambda precision: result[precision]["tokens_per_s"]
    )
    result["tokens_per_s"] = result[result["fastest"]]["tokens_per_s"]
    return result


def in_own_process(arguments: list) -> dict:
    """Runs a reference (`torch_reference.py train BATCHES`, `train_speed.py --kerasio-worker
    BATCHES`) in a fresh Python process and returns the JSON it prints."""
    completed = subprocess.run([sys.executable, *arguments], capture_output=True, text=True)
    if completed.returncode != 0:
        raise SystemExit(f"{' '.join(arguments)} failed:\n{completed.stderr[-3000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def matmul_peak_gflops(dtype: str, size: int, chained: int = 5, calls: int = 2) -> float:
    """GFLOP/s of `chained` size×size matmuls per `tf.function` call (Python overhead excluded)."""
    scale = 1.0 / np.sqrt(size)  # keeps the chained products' magnitude steady
    a = tf.cast(tf.random.normal([size, size]) * scale, dtype)
    b = tf.cast(tf.random.normal([size, size]) * scale, dtype)

    @tf.function
    def chain(x):
        for _ in range(chained):
            x = tf.matmul(x, b)
        return x[0, 0]

    chain(a).numpy()  # tracing and warm-up
    start = time.perf_counter()
    for _ in range(calls):
        chain(a).numpy()
    return 2 * size**3 * chained * calls / (time.perf_counter() - start) / 1e9


def step_matmul_gflops(
    dtype: str, batch: int, units: int, chained: int = 40, calls: int = 10
) -> float:
    """GFLOP/s of the recurrent step's matmul shape, [batch, units] × [units, 4·units] and back
    (what an LSTM does once per time step), `chained` per `tf.function` call.
    `torch_reference.step_matmul_gflops` measures the same shapes in PyTorch."""
    h = tf.cast(tf.random.normal([batch, units]), dtype)
    up = tf.cast(tf.random.normal([units, 4 * units]) / np.sqrt(units), dtype)
    down = tf.cast(tf.random.normal([4 * units, units]) / np.sqrt(4 * units), dtype)

    @tf.function
    def chain(x):
        for _ in range(chained // 2):
            x = tf.matmul(tf.matmul(x, up), down)
        return x[0, 0]

    chain(h).numpy()
    start = time.perf_counter()
    for _ in range(calls):
        chain(h).numpy()
    return 2 * batch * units * 4 * units * chained * calls / (time.perf_counter() - start) / 1e9


def network_arguments(parser) -> None:
    """The options choosing the data and the network, shared by the training benchmarks
    (`train_ab.py`, `step_profile.py`)."""
    parser.add_argument("--data", default="cmudict")
    parser.add_argument(
        "--pairs", type=int, default=40000, help="data.max_pairs (before the valid/test split)"
    )
    parser.add_argument("--units", type=int, default=256)
    parser.add_argument("--layers", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="config override for our side, as `s2s train --set` (repeatable)",
    )


def report_header(args) -> dict:
    """What a training benchmark's report starts with: the host, the command, whether the
    fused LSTM kernels and TensorFlow's oneDNN ops ran, the data and the network of
    `network_arguments`."""
    return {
        "host": host(),
        "measured": measured(),
        "lstm_kernels": lstm_kernels.status(),
        "onednn": onednn_enabled(),
        "data": args.data,
        "pairs": args.pairs,
        "units": args.units,
        "layers": args.layers,
        "batch_size": args.batch_size,
        "overrides": args.set,
    }


def main():
    parser = argparse.ArgumentParser()
    network_arguments(parser)
    parser.add_argument("--precision", choices=sorted(PRECISIONS), default="both")
    parser.add_argument("--warmup-batches", type=int, default=20, help="PyTorch warm-up steps")
    parser.add_argument("--matmul-size", type=int, default=4096)
    parser.add_argument("--skip-torch", action="store_true")
    parser.add_argument("--skip-kerasio", action="store_true")
    parser.add_argument(
        "--intra-op-threads",
        type=int,
        default=0,
        help="TensorFlow's intra-op thread pool for ours (0: its default, one per core)",
    )
    parser.add_argument(
        "--inter-op-threads",
        type=int,
        default=0,
        help="TensorFlow's inter-op thread pool for ours (0: its default)",
    )
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--kerasio-worker", metavar="BATCHES", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.kerasio_worker:  # the keras-io recipe, in a process of its own (see in_own_process)
        batches, meta = load_batches(args.kerasio_worker)
        print(json.dumps(kerasio_benchmark(batches, meta)))
        return

    # Before TensorFlow runs any op (the pools are created then, once per process).
    tf.config.threading.set_intra_op_parallelism_threads(args.intra_op_threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.inter_op_threads)
    precisions = PRECISIONS[args.precision]
    config = benchmark_config(args, precisions[0])
    corpus, source_vocabulary, target_vocabulary, lengths = load_data(config)
    ours = {}
    for precision in precisions:
        model, ours[precision] = ours_benchmark(
            benchmark_config(args, precision), corpus, source_vocabulary, target_vocabulary, lengths
        )
    fastest = max(precisions, key=lambda precision: ours[precision]["tokens_per_s"])
    report = {
        **report_header(args),
        "threads": {
            "intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
            "inter_op": tf.config.threading.get_inter_op_parallelism_threads(),
        },
        "train_pairs": len(corpus.train),
        "embedding_size": model.embedding_size,
        "source_vocabulary_size": model.source_tokenizer.vocabulary_size,
        "target_vocabulary_size": model.target_tokenizer.vocabulary_size,
        **{
            key: ours[fastest][key]
            for key in (
                "tokens_per_s",
                "pad_fraction",
                "precision",
                "steps_per_epoch",
                "seconds_per_epoch",
                "parameters",
            )
        },
        "peak_rss_mb": peak_rss_mb(),
        "ours": ours,
    }

    batches = epoch_batches(config, corpus, model)
    counts = token_counts(batches)
    # Same number of batches, positions and padding as our timed epoch: the same batches.
    report["batches_identical_to_ours"] = all(
        (len(batches), counts["total"], counts["padded"])
        == (run["batches_counted"], run["positions"]["total"], run["positions"]["padded"])
        for run in ours.values()
    )
    report["tokens"] = {key: counts[key] for key in ("source", "target", "tokens")}
    flops = training_flops(
        counts["source"],
        counts["target"],
        model.embedding_size,
        args.units,
        args.layers,
        model.target_tokenizer.vocabulary_size,
    )
    report["useful_flop_per_token"] = flops / counts["tokens"]

    meta = {
        "embedding_size": model.embedding_size,
        "units": args.units,
        "layers": args.layers,
        "source_vocabulary_size": model.source_tokenizer.vocabulary_size,
        "target_vocabulary_size": model.target_tokenizer.vocabulary_size,
        "reverse_source": model.reverse_source,
        "learning_rate": config.train.learning_rate,
        "clip_norm": config.train.clip_norm,
        "warmup_batches": args.warmup_batches,
        "batch_size": args.batch_size,
        "precisions": precisions,
    }
    with tempfile.TemporaryDirectory() as scratch:
        path = os.path.join(scratch, "batches.npz")
        save_batches(path, batches, meta)
        here = os.path.dirname(os.path.abspath(__file__))
        if not args.skip_torch:
            report["pytorch"] = in_own_process(
                [os.path.join(here, "torch_reference.py"), "train", path]
            )
            report["ours_vs_torch"] = report["tokens_per_s"] / report["pytorch"]["tokens_per_s"]
        if not args.skip_kerasio:
            report["keras_io"] = in_own_process(
                [os.path.abspath(__file__), "--kerasio-worker", path]
            )
            report["ours_vs_kerasio"] = report["tokens_per_s"] / report["keras_io"]["tokens_per_s"]

    report["matmul_peak_gflop_per_s"] = {
        dtype: matmul_peak_gflops(dtype, args.matmul_size) for dtype in ("float32", "bfloat16")
    }
    report["step_matmul_gflop_per_s"] = {
        dtype: step_matmul_gflops(dtype, args.batch_size, args.units)
        for dtype in ("float32", "bfloat16")
    }
    runs = list(ours.items()) + [
        (name, report["pytorch"][name])
        for name in PEAK_DTYPE
        if "tokens_per_s" in report.get("pytorch", {}).get(name, {})
    ]
    for name, run in runs:
        run["useful_gflop_per_s"] = run["tokens_per_s"] * report["useful_flop_per_token"] / 1e9
        run["utilization"] = (
            run["useful_gflop_per_s"] / report["matmul_peak_gflop_per_s"][PEAK_DTYPE[name]]
        )
    report["useful_gflop_per_s"] = ours[fastest]["useful_gflop_per_s"]
    report["utilization"] = ours[fastest]["utilization"]
    print(json.dumps(report) if args.json else json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
