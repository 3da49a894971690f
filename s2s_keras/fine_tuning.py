"""`train.init_from`: a trained model (run dir, `pretrained:NAME` or `.keras`) whose vocabularies
and weights start a run. What may start what, and which layers carry over, is the task's
(`Task.accepts`, `pretrained_fields`, `pretrained_problems`, `corresponding_layers`); the
checks, the copy and the log are the same for every task."""

from __future__ import annotations

import os

import keras
import tensorflow as tf

from s2s_keras import pretrained as pretrained_models
from s2s_keras.config import Config
from s2s_keras.data import string_batches
from s2s_keras.run_dir import MODEL_FILE
from s2s_keras.tasks import get_task, task_of_model


def load_pretrained(config: Config, labels=None) -> keras.Model:
    """`train.init_from` loaded and checked against this run: a model the task accepts, the
    same architecture and tokenization (`Task.pretrained_fields`, where the pretrained model's
    config has the key), and the task's own rules (`Task.pretrained_problems`: e.g. a
    classifier's labels, a language model's held-out text). Every mismatch is named in one
    error. `labels`: the training split's (classify)."""
    task = get_task(config.task)
    path = pretrained_models.resolve(config.train.init_from)
    model_path = os.path.join(path, MODEL_FILE) if os.path.isdir(path) else path
    if not os.path.isfile(model_path):
        raise FileNotFoundError(
            f"train.init_from: {model_path} not found (a finished run dir or a .keras file)"
        )
    pretrained = keras.saving.load_model(model_path)
    if not task.accepts(pretrained):
        expected = task.pretrained_classes or (task.model_class,)
        raise ValueError(
            f"train.init_from: {model_path} is a {type(pretrained).__name__}; task {config.task} "
            f"needs a {' or a '.join(model.__name__ for model in expected)}"
        )
    theirs = task.pretrained_config(pretrained)
    problems = [
        f"{field}: {ours!r} here, {theirs[key]!r} in the pretrained model"
        for field, key, ours in task.pretrained_fields(config)
        if key in theirs and theirs[key] != ours
    ]
    problems += task.pretrained_problems(config, pretrained, labels, path)
    if problems:
        raise ValueError(
            f"train.init_from: {model_path} does not fit this run (--set the fields to match "
            "it):\n  " + "\n  ".join(problems)
        )
    return pretrained


def pretrained_vocabularies(config: Config, pretrained, labels=None) -> tuple:
    """`(source, target)` vocabularies of `pretrained` as `Task.build_model` takes them."""
    return get_task(config.task).pretrained_vocabularies(pretrained, labels)


def start_from(config: Config, corpus, labels=None) -> tuple:
    """`(pretrained, source vocabulary, target vocabulary, log message)` of `train.init_from`
    for a run on `corpus` (`labels`: the training split's, for a classifier)."""
    pretrained = load_pretrained(config, labels)
    source, target = pretrained_vocabularies(config, pretrained, labels)
    # A language model has one vocabulary: a classifier started from it keeps this run's labels.
    kept = "vocabularies" if target not in (None, labels) else "vocabulary"
    message = (
        f"init from {config.train.init_from} (a {type(pretrained).__name__}): its {kept}; "
        f"{unknown_tokens(config, pretrained, corpus)}"
    )
    return pretrained, source, target, message


def unknown_tokens(config: Config, pretrained, corpus) -> str:
    """How much of this run's training text the pretrained vocabularies map to `[UNK]`."""
    parts = []
    for side, tokenizer, column in get_task(config.task).tokenized_columns(pretrained):
        unknown = total = 0
        for batch in string_batches(corpus.train):
            ids = tokenizer.tokenize_ragged(batch[column]).flat_values
            unknown += int(tf.reduce_sum(tf.cast(ids == 1, tf.int32)))  # id 1: [UNK]
            total += int(tf.size(ids))
        share = unknown / max(total, 1)
        parts.append(f"{side} tokens unknown to it: {unknown} of {total} ({share:.2%})")
    return "; ".join(parts)


def copy_weights(pretrained, model, name: str) -> str:
    """The weights of `pretrained` into `model`, pair by pair of the task's
    `corresponding_layers` (same order and shapes; every mismatch is named in one error).
    Returns what was copied and what starts fresh, for the log."""
    pairs = task_of_model(model).corresponding_layers(pretrained, model)
    problems = []
    for other_layer, layer in pairs:
        theirs, ours = other_layer.weights, layer.weights
        if len(theirs) != len(ours):
            problems.append(
                f"{layer.name} has {len(ours)} weights here, {other_layer.name} {len(theirs)} "
                f"in {name}"
            )
            continue
        problems += [
            f"weight {mine.path} is {tuple(mine.shape)} here, {tuple(other.shape)} "
            f"({other.path}) in {name}"
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
