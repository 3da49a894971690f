"""Config → corpus → vocabularies → datasets → `model.fit` under a strategy → run directory.

A run directory holds: `config.json` (the resolved config), `model.keras` (best weights; the
vocabularies are inside), `checkpoints/best.keras`, `backup/state.npz` while training (see
`run_state.py`: rerunning the same command resumes an interrupted run at its last backup, to the
step), `logs/` (TensorBoard), `history.csv` (with each epoch's `padding_fraction`),
`summary.json` (data sizes, padding fractions, parameters, timing, history).

Data passes: one over the training split for the vocabularies, which also counts the pairs and
their lengths (hence the steps per epoch; with a `wordpiece` side one more pass measures lengths
with the learned vocabulary), then one per epoch. With `data.streaming` each pass re-reads the
files, so memory does not grow with the training split.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import math
import os
import shutil
import time

import keras
import tensorflow as tf

import pipelines
from s2s_keras.config import Config, TrainConfig
from s2s_keras.data import (
    PaddingCounter,
    batch_statistics,
    buckets,
    count_batches,
    example_lengths,
    make_dataset,
    make_stream_dataset,
    stream_statistics,
    string_batches,
)
from s2s_keras.distribute import get_strategy
from s2s_keras.losses import SequenceCrossentropy
from s2s_keras.metrics import MaskedAccuracy
from s2s_keras.models import Classifier, Ensemble, LanguageModel, Seq2Seq
from s2s_keras.run_state import BACKUP_DIR, BEST_FILE, RunState
from s2s_keras.text import TokenCounter

MODEL_FILE = "model.keras"
CONFIG_FILE = "config.json"


def build_model(config: Config, source_vocabulary, target_vocabulary):
    """The model of `config.task`: `Seq2Seq` (every `model.*` field but `pooling` is an argument
    of the same name), `Classifier` (`target_vocabulary` = the labels) or `LanguageModel` (over
    the source text; `target_vocabulary` unused)."""
    data, model = config.data, dataclasses.asdict(config.model)
    shared = {
        name: model[name]
        for name in (
            "cell",
            "embedding_size",
            "hidden_units",
            "num_layers",
            "dropout",
            "recurrent_dropout",
            "init_scale",
        )
    }
    if config.task == "classify":
        return Classifier(
            source_vocabulary,
            target_vocabulary,
            source_split=data.source_split,
            source_lowercase=data.source_lowercase,
            learn_initial_state=model["learn_initial_state"],
            bidirectional=model["bidirectional"],
            pooling=model["pooling"],
            reverse_source=model["reverse_source"],
            precision=config.train.precision,
            max_source_tokens=data.max_source_tokens,
            **shared,
        )
    if config.task == "lm":
        return LanguageModel(
            source_vocabulary,
            split=data.source_split,
            lowercase=data.source_lowercase,
            tie_embeddings=model["tie_embeddings"],
            precision=config.train.precision,
            **shared,
        )
    del model["pooling"]
    return Seq2Seq(
        source_vocabulary,
        target_vocabulary,
        source_split=data.source_split,
        target_split=data.target_split,
        source_lowercase=data.source_lowercase,
        target_lowercase=data.target_lowercase,
        precision=config.train.precision,
        **model,
    )


def learning_rate_schedule(train: TrainConfig, steps_per_epoch: int):
    """`train.lr_schedule` as a Keras schedule (or the constant rate)."""
    if train.lr_schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(
            train.learning_rate, decay_steps=max(1, steps_per_epoch * train.epochs), alpha=0.05
        )
    if train.lr_schedule == "halving":
        # Sutskever et al.: constant, then halved every half epoch after epoch 5.
        start = round(train.halving_start_epoch * steps_per_epoch)
        every = max(1, round(train.halving_every_epochs * steps_per_epoch))
        halvings = max(1, train.epochs * steps_per_epoch // every + 1)
        # The optimizer's step counter is the number of updates done: halve once it reaches start.
        boundaries = [start - 1 + every * index for index in range(halvings)]
        values = [train.learning_rate * 0.5**index for index in range(halvings + 1)]
        return keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)
    return train.learning_rate


def compile_model(model, config: Config, steps_per_epoch: int) -> None:
    """Optimizer, schedule and clipping from `config.train`; the loss and metrics of the task:
    token cross-entropy and accuracy over real tokens (seq2seq, lm), or label cross-entropy and
    accuracy (classify)."""
    train = config.train
    learning_rate = learning_rate_schedule(train, steps_per_epoch)
    if train.optimizer == "sgd":
        optimizer = keras.optimizers.SGD(learning_rate, global_clipnorm=train.clip_norm)
    else:
        optimizer = keras.optimizers.Adam(learning_rate, global_clipnorm=train.clip_norm)
    if train.precision == "mixed_float16":
        # float16 gradients underflow without it; Keras unscales before clipping and applying.
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    if config.task == "classify":
        model.compile(
            optimizer=optimizer,
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        )
        return
    model.compile(
        optimizer=optimizer,
        loss=SequenceCrossentropy(train.label_smoothing),
        metrics=[MaskedAccuracy()],
    )


def load_data(config: Config, verbose: int = 0) -> tuple:
    """`(corpus, source_vocabulary, target_vocabulary, lengths)`: vocabularies from the training
    split, read in ONE pass (streamed when `data.streaming`: token counts are kept, not the
    pairs); `lengths` is the histogram of bucketing lengths of the training pairs from the same
    pass (`s2s_keras.data.count_batches`), or None when a side is `wordpiece` (its lengths
    depend on the vocabulary learned). For `classify` the target vocabulary is the sorted labels
    of the training split (a label only in valid/test is an error); for `lm` it is None (the
    model reads the source column)."""
    data = config.data
    corpus = pipelines.load_corpus(data)
    source_counter = TokenCounter(data.source_split, data.source_lowercase)
    target_counter = (
        TokenCounter(data.target_split, data.target_lowercase) if config.task == "seq2seq" else None
    )
    measure = data.source_split != "wordpiece" and (
        target_counter is None or data.target_split != "wordpiece"
    )
    lengths = collections.Counter()
    labels = set()  # classify: the training split's labels, from the same pass
    for sources, targets in string_batches(corpus.train):
        if config.task == "classify":
            labels.update(targets)
        source_lengths = source_counter.update(sources)
        target_lengths = target_counter.update(targets) if target_counter is not None else None
        if measure:
            lengths.update(
                example_lengths(source_lengths, target_lengths, config.task, data.max_source_tokens)
            )
    duplicates = corpus.duplicate_pairs()
    duplicates = (
        "exact duplicate pairs not counted when streaming"
        if duplicates is None
        else f"{duplicates} exact duplicate pairs kept"
    )
    _log(
        verbose,
        f"data {data.source}{' (streamed)' if corpus.streamed else ''}: train {len(corpus.train)} "
        f"valid {len(corpus.valid)} test {len(corpus.test)} pairs ({duplicates}); {corpus.skipped}",
    )
    source_vocabulary = source_counter.vocabulary(data.vocabulary_size)
    if config.task == "lm":
        target_vocabulary = None
    elif config.task == "classify":
        target_vocabulary = labels_of(corpus, labels)
    else:
        target_vocabulary = target_counter.vocabulary(data.vocabulary_size)
    return corpus, source_vocabulary, target_vocabulary, lengths if measure else None


# What fixes the computation a model's weights were trained for (dropout and init may change).
_ARCHITECTURE = (
    "cell",
    "learn_initial_state",
    "embedding_size",
    "hidden_units",
    "num_layers",
    "bidirectional",
    "bridge",
    "attention",
    "reverse_source",
    "tie_embeddings",
    "pooling",
)
# The models a task may start from: its own, and for a classifier a language model (Dai & Le 2015).
_TASK_MODELS = {
    "seq2seq": (Seq2Seq,),
    "classify": (Classifier, LanguageModel),
    "lm": (LanguageModel,),
}
# What a language model shares with a classifier's encoder (a tied embedding is still the embedding).
_LM_ARCHITECTURE = ("cell", "embedding_size", "hidden_units", "num_layers", "reverse_source")


def load_pretrained(config: Config, labels=None) -> keras.Model:
    """`train.init_from` loaded and checked against this run: a model of the same task (for
    `classify` also a `LanguageModel`, see `_corresponding`), the same architecture (`model.*`
    fields in `_ARCHITECTURE`; from a language model those in `_LM_ARCHITECTURE`, with
    `reverse_source` false as it read text forwards, and no bidirectional stack deeper than one
    layer), the same tokenization, for `classify` from a classifier the training split's
    `labels` all known to it, and from a language model's run dir no valid/test text of this
    run in its training text (`_held_out_text`). Every mismatch is named in one error."""
    path = config.train.init_from
    model_path = os.path.join(path, MODEL_FILE) if os.path.isdir(path) else path
    if not os.path.isfile(model_path):
        raise FileNotFoundError(
            f"train.init_from: {model_path} not found (a finished run dir or a .keras file)"
        )
    pretrained = keras.saving.load_model(model_path)
    expected = _TASK_MODELS[config.task]
    if not isinstance(pretrained, expected):
        raise ValueError(
            f"train.init_from: {model_path} is a {type(pretrained).__name__}; task {config.task} "
            f"needs a {' or a '.join(model.__name__ for model in expected)}"
        )
    theirs = pretrained.get_config()
    from_lm = config.task == "classify" and isinstance(pretrained, LanguageModel)
    if from_lm:
        theirs["reverse_source"] = False  # a language model reads text forwards
    # (our field, the model config's key, our value); a model has the keys of its own task only
    fields = [
        (f"model.{name}", name, getattr(config.model, name))
        for name in (_LM_ARCHITECTURE if from_lm else _ARCHITECTURE)
    ]
    fields += [
        (f"data.{name}", name, getattr(config.data, name))
        for name in ("source_split", "source_lowercase", "target_split", "target_lowercase")
    ]
    fields += [
        ("data.source_split", "split", config.data.source_split),  # a LanguageModel's names
        ("data.source_lowercase", "lowercase", config.data.source_lowercase),
    ]
    problems = [
        f"{field}: {ours!r} here, {theirs[key]!r} in the pretrained model"
        for field, key, ours in fields
        if key in theirs and theirs[key] != ours
    ]
    if isinstance(pretrained, Classifier) and labels is not None:
        unknown = sorted(set(labels) - set(pretrained.labels))
        if unknown:
            problems.append(
                f"labels {unknown[:5]} of the training split are not among the pretrained model's "
                f"{pretrained.labels[:10]}"
            )
    if from_lm:
        if config.model.bidirectional and config.model.num_layers > 1:
            units = config.model.hidden_units
            problems.append(
                f"model.bidirectional with model.num_layers {config.model.num_layers}: a bidirectional "
                f"layer above the first reads both directions ({2 * units} features), a language "
                f"model's layer reads {units} (set model.bidirectional=false or model.num_layers=1)"
            )
        problems += _held_out_text(config, path)
    if problems:
        raise ValueError(
            f"train.init_from: {model_path} does not fit this run (--set the fields to match it):\n  "
            + "\n  ".join(problems)
        )
    return pretrained


def _held_out_text(config: Config, path: str) -> list:
    """Why a language model's run (`path`, its config.json) trained on text of this run's
    valid/test split, if it did: on the same `data.source`, `assign_split` gives every split the
    same hash, test and then valid taken from its low end, so its training text avoids our
    held-out text only with the same `data.seed` and at least our held-out fractions. A `.keras`
    file does not say how it was trained: taken on trust."""
    run_config = _run_config(path)
    if run_config is None:
        return []
    theirs, ours = run_config.data, config.data
    if theirs.source != ours.source or (
        theirs.seed == ours.seed
        and theirs.test_fraction + theirs.valid_fraction >= ours.test_fraction + ours.valid_fraction
    ):
        return []
    return [
        f"data.seed, data.valid_fraction, data.test_fraction: {ours.seed}, {ours.valid_fraction}, "
        f"{ours.test_fraction} here, {theirs.seed}, {theirs.valid_fraction}, {theirs.test_fraction} in the "
        f"language model's run on the same data.source: its training text holds text of this run's "
        f"valid/test split (train the language model with this run's seed and fractions)"
    ]


def _vocabularies(model, labels=None) -> tuple:
    """`(source, target)` vocabularies of a pretrained model as `build_model` takes them (labels
    for a classifier). A language model has one, the source; the target is `labels`, this run's
    own: None for a language model, the training split's labels for a classifier."""
    if isinstance(model, Classifier):
        return model.source_vocabulary, model.labels
    if isinstance(model, LanguageModel):
        return model.vocabulary, labels
    return model.source_vocabulary, model.target_vocabulary


def _unknown_tokens(pretrained, corpus) -> str:
    """How much of this run's training text the pretrained vocabularies map to `[UNK]`."""
    # (name, the pretrained model's tokenizer, column of the pairs): a language model's one
    # tokenizer reads the source column (its text, or a classifier's started from it).
    sides = {
        Seq2Seq: [("source", "source_tokenizer", 0), ("target", "target_tokenizer", 1)],
        Classifier: [("source", "source_tokenizer", 0)],
        LanguageModel: [("text", "target_tokenizer", 0)],
    }[type(pretrained)]
    parts = []
    for side, tokenizer, column in sides:
        unknown = total = 0
        for batch in string_batches(corpus.train):
            ids = getattr(pretrained, tokenizer).tokenize_ragged(batch[column]).flat_values
            unknown += int(tf.reduce_sum(tf.cast(ids == 1, tf.int32)))  # id 1: [UNK]
            total += int(tf.size(ids))
        parts.append(
            f"{side} tokens unknown to it: {unknown} of {total} ({unknown / max(total, 1):.2%})"
        )
    return "; ".join(parts)


def copy_weights(pretrained, model, name: str) -> str:
    """The weights of `pretrained` into `model`, pair by pair of `_corresponding` layers (same
    order and shapes; every mismatch is named in one error). Returns what was copied and what
    starts fresh, for the log."""
    pairs = _corresponding(pretrained, model)
    problems = []
    for other_layer, layer in pairs:
        theirs, ours = other_layer.weights, layer.weights
        if len(theirs) != len(ours):
            problems.append(
                f"{layer.name} has {len(ours)} weights here, {other_layer.name} {len(theirs)} in {name}"
            )
            continue
        problems += [
            f"weight {mine.path} is {tuple(mine.shape)} here, {tuple(other.shape)} ({other.path}) in {name}"
            for mine, other in zip(ours, theirs)
            if tuple(mine.shape) != tuple(other.shape)
        ]
    if problems:
        raise ValueError("train.init_from: the weights do not fit:\n  " + "\n  ".join(problems))
    for other_layer, layer in pairs:
        for mine, other in zip(layer.weights, other_layer.weights):
            mine.assign(other.numpy())
    if pairs[0][1] is model:  # the same task: the whole model
        return f"all {len(model.weights)} weights copied"
    copied = {weight.path for _, layer in pairs for weight in layer.weights}
    fresh = sorted(
        {weight.path.rpartition("/")[0] for weight in model.weights if weight.path not in copied}
    )
    return (
        f"copied {', '.join(f'{other.path} → {layer.path}' for other, layer in pairs)}; "
        f"fresh: {', '.join(fresh)}"
    )


def _corresponding(pretrained, model) -> list:
    """`(pretrained layer, our layer)` pairs whose weights carry over: the whole model for the
    same task; from a `LanguageModel` into a `Classifier` (Dai & Le 2015) its embedding into
    the source embedding and each decoder layer into the encoder layer of the same depth — its
    forward direction when bidirectional (the backward one reads text the other way: fresh).
    The pooling, the label projection and learned initial states (zeros, the language model's
    start) stay fresh."""
    if not (isinstance(pretrained, LanguageModel) and isinstance(model, Classifier)):
        return [(pretrained, model)]
    # Depths are equal: `load_pretrained` checked model.num_layers.
    return [(pretrained.target_embedding, model.source_embedding)] + [
        (other, layer.forward_layer if isinstance(layer, keras.layers.Bidirectional) else layer)
        for other, layer in zip(pretrained.decoder_layers, model.encoder_layers, strict=True)
    ]


def labels_of(corpus, train_labels) -> list:
    """Sorted `train_labels` (those of the training split); every valid/test label must be one
    of them."""
    labels = sorted(train_labels)
    if len(labels) < 2:
        raise ValueError(
            f"task classify: the training split has {len(labels)} distinct label(s) "
            f"({labels}); a classifier needs at least 2"
        )
    for split in ("valid", "test"):
        unknown = sorted({label for _, label in corpus.split(split)} - set(labels))
        if unknown:
            raise ValueError(
                f"task classify: label(s) {unknown[:5]} of the {split} split never occur in "
                f"the training split (known: {labels[:10]})"
            )
    return labels


def datasets(config: Config, corpus, model, lengths=None) -> tuple:
    """`(train, valid or None, train statistics)`; both datasets with a known length, which gives
    Keras a real progress bar and no "ran out of data" warning. `lengths`: from `load_data`
    (None: measured here in one pass with the model's tokenizers)."""
    data = config.data
    if _streams(config):
        stats = stream_statistics(
            _texts(corpus.train), model.target_tokenizer, config.train.batch_size, data.bptt_length
        )
    else:
        if lengths is None:
            lengths = collections.Counter()
            for sources, targets in string_batches(corpus.train):
                source_lengths = _tokenizer(config, model).tokenize_ragged(sources).row_lengths()
                target_lengths = (
                    model.target_tokenizer.tokenize_ragged(targets).row_lengths()
                    if config.task == "seq2seq"
                    else None
                )
                lengths.update(
                    example_lengths(
                        source_lengths, target_lengths, config.task, data.max_source_tokens
                    )
                )
        stats = {
            "batches": count_batches(
                lengths,
                *buckets(
                    data.bucket_width,
                    data.max_bucket_length,
                    config.train.batch_size,
                    data.batch_tokens,
                ),
            )
        }
    train = split_dataset(config, corpus.train, model, shuffle=True)
    train = train.apply(tf.data.experimental.assert_cardinality(stats["batches"]))
    valid = None
    if corpus.valid:
        valid = split_dataset(config, corpus.valid, model, shuffle=False)
        batches = (
            stream_statistics(
                _texts(corpus.valid),
                model.target_tokenizer,
                config.train.batch_size,
                config.data.bptt_length,
            )["batches"]
            if _streams(config)
            else batch_statistics(valid)["batches"]
        )
        valid = valid.apply(tf.data.experimental.assert_cardinality(batches))
    return train, valid, stats


class PaddingFraction(keras.callbacks.Callback):
    """Writes the epoch's padding fraction (padding / all source and target positions of the
    batches trained on, from a `PaddingCounter`) into its logs as `padding_fraction`: callbacks
    after it (history.csv, TensorBoard, the run state's history) record it."""

    def __init__(self, counter: PaddingCounter):
        super().__init__()
        self.counter = counter

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["padding_fraction"] = self.counter.fraction(epoch)


def split_dataset(
    config: Config,
    pairs,
    model,
    shuffle: bool,
    epoch_range=None,
    padding: PaddingCounter | None = None,
) -> tf.data.Dataset:
    """The batches of one split for `config.task` (see `make_dataset` / `make_stream_dataset`)."""
    if _streams(config):
        return make_stream_dataset(
            _texts(pairs),
            model.target_tokenizer,
            config.train.batch_size,
            config.data.bptt_length,
            epoch_range=epoch_range,
        )
    data = config.data
    return make_dataset(
        pairs,
        _tokenizer(config, model),
        getattr(model, "target_tokenizer", None),
        config.train.batch_size,
        shuffle=shuffle,
        seed=data.seed,
        bucket_width=data.bucket_width,
        max_bucket_length=data.max_bucket_length,
        shuffle_buffer=data.shuffle_buffer,
        batch_tokens=data.batch_tokens,
        task=config.task,
        labels=getattr(model, "labels", None),
        max_source_tokens=data.max_source_tokens,
        epoch_range=epoch_range,
        padding=padding,
    )


def _tokenizer(config: Config, model):
    """The tokenizer of the source column (a language model's only one is its target side)."""
    return model.target_tokenizer if config.task == "lm" else model.source_tokenizer


def _streams(config: Config) -> bool:
    """Truncated BPTT over contiguous text (a language model with `data.bptt_length > 0`)."""
    return config.task == "lm" and config.data.bptt_length > 0


def _texts(pairs):
    """The source column, lazily (a streamed split is read, not held)."""
    return (source for source, _ in pairs)


def task_statistics(config: Config, corpus, model, stats: dict) -> dict:
    """What a task's data preparation changed, for summary.json: sources a classifier's cut
    shortened; the tokens a truncated-BPTT stream trains on per epoch and the few it drops."""
    if _streams(config):
        return {
            "stream_tokens_per_epoch": stats["tokens"],
            "stream_dropped_tokens": stats["dropped_tokens"],
        }
    if config.task == "classify" and config.data.max_source_tokens:
        cut = 0
        for texts, _ in string_batches(corpus.train):
            lengths = model.source_tokenizer.tokenize_ragged(texts).row_lengths()
            cut += int(tf.reduce_sum(tf.cast(lengths > config.data.max_source_tokens, tf.int32)))
        return {"train_sources_cut": cut, "max_source_tokens": config.data.max_source_tokens}
    return {}


def task_callbacks(config: Config, model) -> list:
    """What a task adds to `fit`, before every other callback (they read its logs): a language
    model's perplexity, and for truncated BPTT the carried state (turned on here) reset at each
    epoch and evaluation."""
    callbacks = []
    if _streams(config):
        model.carry_state(config.train.batch_size)
        callbacks.append(CarryReset())
    if config.task == "lm":
        callbacks.append(PerplexityLog())
    return callbacks


class CarryReset(keras.callbacks.Callback):
    """Truncated BPTT: every epoch (and every evaluation) starts its streams from a zero state."""

    def on_epoch_begin(self, epoch, logs=None):
        self.model.reset_carry("train")

    def on_test_begin(self, logs=None):
        self.model.reset_carry("evaluate")


class PerplexityLog(keras.callbacks.Callback):
    """Adds `perplexity` / `val_perplexity` = exp(token cross-entropy) to every epoch's logs
    (before the callbacks that write them); with label smoothing it is not the model's perplexity."""

    def on_epoch_end(self, epoch, logs=None):
        for name in ("loss", "val_loss"):
            if logs is not None and name in logs:
                logs[name.replace("loss", "perplexity")] = math.exp(min(logs[name], 50.0))


def train(config: Config, run_dir: str, verbose: int = 1) -> keras.Model:
    """Trains into `run_dir`. Under a multi-worker strategy every worker runs this with the same
    arguments; the chief writes the run directory, the others write theirs (backups included)
    into `run_dir/workers/<task>-<index>/`, so restarting all of them resumes each one."""
    # First: splitting the CPU into logical devices must happen before any op runs.
    strategy = get_strategy(config.train.strategy, config.train.cpu_devices)
    run_dir = worker_dir(run_dir, strategy)
    os.makedirs(run_dir, exist_ok=True)
    _check_same_config(config, run_dir)
    with open(os.path.join(run_dir, CONFIG_FILE), "w") as handle:
        handle.write(config.to_json())
    keras.utils.set_random_seed(config.train.seed)

    corpus, source_vocabulary, target_vocabulary, lengths = load_data(config, verbose)
    pretrained = None
    if config.train.init_from:
        pretrained = load_pretrained(config, target_vocabulary)
        source_vocabulary, target_vocabulary = _vocabularies(pretrained, target_vocabulary)
        kept = (
            "vocabulary" if isinstance(pretrained, LanguageModel) else "vocabularies"
        )  # labels: a classifier's
        _log(
            verbose,
            f"init from {config.train.init_from} (a {type(pretrained).__name__}): its {kept}; "
            f"{_unknown_tokens(pretrained, corpus)}",
        )
    with strategy.scope():
        model = build_model(config, source_vocabulary, target_vocabulary)
        if pretrained is not None:
            _log(
                verbose,
                f"init from {config.train.init_from}: "
                f"{copy_weights(pretrained, model, config.train.init_from)}",
            )
    # Training reads the per-epoch stream built below, not the one-pass train dataset.
    _, valid_data, stats = datasets(config, corpus, model, lengths)
    with strategy.scope():
        compile_model(model, config, steps_per_epoch=stats["batches"])
    _log(
        verbose,
        f"task {config.task}: {_vocabulary_sizes(model)}; {model.count_params()} parameters; "
        f"{stats['batches']} steps per epoch; strategy {type(strategy).__name__} "
        f"({strategy.num_replicas_in_sync} replica(s))",
    )

    monitor = "val_loss" if valid_data is not None else "loss"
    run_state = RunState(
        run_dir, monitor, config.train.early_stopping_patience, config.train.backup_every_steps
    )
    with strategy.scope():
        state = run_state.restore(model, strategy)
    if state["epoch"] or state["step"]:
        _log(
            verbose,
            f"resuming from {run_state.path}: epoch {state['epoch'] + 1}, step {state['step']}",
        )
    padding = PaddingCounter(config.train.epochs)
    # PaddingFraction first, so that the others log the epoch's padding fraction.
    callbacks = [
        PaddingFraction(padding),
        *task_callbacks(config, model),
        run_state,
        keras.callbacks.TensorBoard(os.path.join(run_dir, "logs")),
        keras.callbacks.CSVLogger(os.path.join(run_dir, "history.csv"), append=True),
    ]
    steps = stats["batches"]
    start = time.time()
    # An epoch interrupted after `step` steps is finished first (its remaining steps), then the
    # others: every epoch ends, validates and backs up where an uninterrupted run's would.
    first, done = state["epoch"], state["step"]
    phases = [(first, first + 1, steps - done, done)] if done else []
    phases.append((first + 1 if done else first, config.train.epochs, steps, 0))
    for initial_epoch, stop_epoch, steps_per_epoch, skip in phases:
        if run_state.state["stopped"] or initial_epoch >= stop_epoch:
            continue
        stream = split_dataset(
            config,
            corpus.train,
            model,
            shuffle=True,
            epoch_range=(initial_epoch, stop_epoch),
            padding=padding,
        ).skip(skip)
        model.fit(
            stream,
            validation_data=valid_data,
            initial_epoch=initial_epoch,
            epochs=stop_epoch,
            steps_per_epoch=steps_per_epoch,
            callbacks=callbacks,
            verbose=verbose,
            shuffle=False,
        )  # the dataset shuffles
    seconds = time.time() - start
    best = os.path.join(run_dir, BEST_FILE)
    if os.path.isfile(best):
        model.load_weights(
            best
        )  # the best epoch by the monitored loss, as EarlyStopping would restore
    if _streams(config):
        model.carry_state(None)
    model.save(os.path.join(run_dir, MODEL_FILE))
    summary = {
        "pairs": {"train": len(corpus.train), "valid": len(corpus.valid), "test": len(corpus.test)},
        "skipped_lines": corpus.skipped.count,
        "duplicate_pairs": corpus.duplicate_pairs(),
        # each epoch's is in history["padding_fraction"]
        "train_padding_fraction": _mean(run_state.state["history"].get("padding_fraction", [])),
        "streamed": corpus.streamed,
        **task_statistics(config, corpus, model, stats),
        "parameters": model.count_params(),
        # model.fit's time summed over every attempt of a resumed run; this attempt's alone
        "train_seconds": run_state.state["train_seconds"],
        "attempt_seconds": seconds,
        "replicas": strategy.num_replicas_in_sync,
        "epochs_run": run_state.state["epoch"],
        "history": run_state.state["history"],
    }
    with open(os.path.join(run_dir, "summary.json"), "w") as handle:
        json.dump(summary, handle, indent=2)
    shutil.rmtree(
        os.path.join(run_dir, BACKUP_DIR), ignore_errors=True
    )  # finished: nothing to resume
    _log(
        verbose,
        f"trained in {run_state.state['train_seconds']:.0f} s (this attempt {seconds:.0f} s); saved {os.path.join(run_dir, MODEL_FILE)}",
    )
    return model


def _vocabulary_sizes(model) -> str:
    sizes = [
        f"{side} vocabulary {getattr(model, f'{side}_tokenizer').vocabulary_size} ids"
        for side in ("source", "target")
        if hasattr(model, f"{side}_tokenizer")
    ]
    if hasattr(model, "labels"):
        sizes.append(f"{len(model.labels)} labels {model.labels[:10]}")
    return ", ".join(sizes)


def worker_dir(run_dir: str, strategy: tf.distribute.Strategy) -> str:
    """`run_dir` for the chief (and single-machine strategies), else a per-worker directory."""
    if strategy.extended.should_checkpoint:
        return run_dir
    resolver = strategy.cluster_resolver
    return os.path.join(run_dir, "workers", f"{resolver.task_type}-{resolver.task_id}")


def load_run(run_dir: str) -> tuple:
    """`(config, model)` of a finished run directory."""
    model_path = os.path.join(run_dir, MODEL_FILE)
    for path in (os.path.join(run_dir, CONFIG_FILE), model_path):
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"{path} not found: is {run_dir!r} a finished `s2s train` run dir?"
            )
    return _run_config(run_dir), keras.saving.load_model(model_path)


def load_runs(run_dirs: list) -> tuple:
    """`(config, model, configs)` of one finished run directory, or of several as an `Ensemble`
    (`config` — data, decode settings — is the first run's)."""
    loaded = [load_run(run_dir) for run_dir in run_dirs]
    configs = [config for config, _ in loaded]
    if len(loaded) == 1:
        return configs[0], loaded[0][1], configs
    # Ensemble refuses mixed tasks, naming each run dir's model class.
    return configs[0], Ensemble([model for _, model in loaded], names=list(run_dirs)), configs


def _run_config(run_dir: str) -> Config | None:
    """The resolved config a run wrote into `run_dir` (None: it has none)."""
    path = os.path.join(run_dir, CONFIG_FILE)
    if not os.path.isfile(path):
        return None
    with open(path) as handle:
        return Config.from_json(handle.read())


def _check_same_config(config: Config, run_dir: str) -> None:
    """Resuming with another config would silently mix two runs; refuse instead."""
    if not os.path.isdir(os.path.join(run_dir, BACKUP_DIR)):
        return
    previous = _run_config(run_dir)
    if previous is not None and previous != config:
        path = os.path.join(run_dir, CONFIG_FILE)
        raise ValueError(
            f"{run_dir} holds an interrupted run with another config ({path}); "
            f"use a new --run-dir or delete {os.path.join(run_dir, BACKUP_DIR)}"
        )


def _mean(values: list) -> float | None:
    return sum(values) / len(values) if values else None


def _log(verbose: int, message: str) -> None:
    if verbose:
        print(f"[s2s] {message}", flush=True)
