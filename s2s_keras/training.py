"""Config → corpus → vocabularies → datasets → `model.fit` under a strategy → run directory.

What every task shares: the vocabulary pass (`load_data`), the optimizer and its schedule
(`compile_model`), and the fit loop (`fit`: exact resume, padding fractions, early stopping and
the kept epoch, all `run_state.RunState`'s). What differs between tasks (model, examples, loss,
metrics, callbacks) is the `Task`'s; the run directory's files are `run_dir.py`'s. `s2s tune`
runs each trial through `prepare` and `fit` too.

Data passes: one over the training split for the vocabularies, which also counts the pairs and
their lengths (hence the steps per epoch; with a `wordpiece` side one more pass measures lengths
with the learned vocabulary), then one per epoch. With `data.streaming` each pass re-reads the
files, so memory does not grow with the training split.
"""

from __future__ import annotations

import collections
import os
import sys
import time

import keras

from s2s_keras import averaging, pipelines
from s2s_keras import run_dir as run_files
from s2s_keras.config import Config, ConfigError, TrainConfig
from s2s_keras.data import PaddingCounter, PaddingFraction, TrainingData, string_batches
from s2s_keras.distribute import get_strategy, resolve_precision
from s2s_keras.fine_tuning import copy_weights, start_from
from s2s_keras.layers import lstm_kernels
from s2s_keras.onednn_default import onednn_enabled
from s2s_keras.optimizers import Adam, CosineDecay
from s2s_keras.run_state import RunState
from s2s_keras.tasks import get_task
from s2s_keras.time_budget import TimeBudget


def build_model(config: Config, source_vocabulary, target_vocabulary):
    """The model of `config.task` (`target_vocabulary`: a classifier's labels; None for a
    language model), computing in `train.precision` as `resolve_precision` reads it on this
    machine (the model's own config records the one chosen)."""
    precision = resolve_precision(config.train.precision)
    config = config.override([f"train.precision={precision}"])
    return get_task(config.task).build_model(config, source_vocabulary, target_vocabulary)


def learning_rate_schedule(train: TrainConfig, steps_per_epoch: int):
    """`train.lr_schedule` as a Keras schedule (or the constant rate)."""
    if train.lr_schedule == "cosine":
        total = max(1, steps_per_epoch * train.epochs)
        warmup = min(total - 1, round(train.warmup_epochs * steps_per_epoch))
        if warmup <= 0:
            return CosineDecay(train.learning_rate, decay_steps=total, alpha=0.05)
        # from learning_rate / warmup at the first update up to learning_rate, then the decay
        return CosineDecay(
            train.learning_rate / warmup,
            decay_steps=total - warmup,
            alpha=0.05,
            warmup_target=train.learning_rate,
            warmup_steps=warmup,
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
    """Optimizer, schedule and clipping from `config.train`; the task's loss and metrics."""
    train = config.train
    learning_rate = learning_rate_schedule(train, steps_per_epoch)
    optimizer_class = keras.optimizers.SGD if train.optimizer == "sgd" else Adam
    optimizer = optimizer_class(learning_rate, global_clipnorm=train.clip_norm)
    if train.precision == "mixed_float16":
        # float16 gradients underflow without it; Keras unscales before clipping and applying.
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    loss, metrics = get_task(config.task).loss_and_metrics(config)
    model.compile(optimizer=optimizer, loss=loss, metrics=metrics)


def load_data(config: Config, verbose: int = 0) -> tuple:
    """`(corpus, source_vocabulary, target_vocabulary, lengths)`: vocabularies from the training
    split, read in ONE pass (streamed when `data.streaming`: token counts are kept, not the
    pairs) with the task's counters (`Task.counters`, `Task.vocabularies`: a classifier's target
    vocabulary is its labels, a language model's None); `lengths` is the histogram of bucketing
    lengths of the training pairs from the same pass (`data.count_batches`), or None when the
    task's token counts are not the model's lengths (a `wordpiece` side)."""
    task = get_task(config.task)
    corpus = pipelines.load_corpus(config.data)
    source_counter, target_counter = counters = task.counters(config.data)
    measure = task.measures_lengths(config.data)
    lengths = collections.Counter()
    for sources, targets in string_batches(corpus.train):
        source_lengths = source_counter.update(sources)
        target_lengths = target_counter.update(targets) if target_counter is not None else None
        if measure:
            lengths.update(task.lengths(config, source_lengths, target_lengths).tolist())
    _log(verbose, f"data {config.data.source}: {corpus.describe()}")
    vocabularies = task.vocabularies(counters, corpus, config.data)
    return corpus, *vocabularies, lengths if measure else None


def datasets(config: Config, corpus, model, lengths=None) -> TrainingData:
    """The task's `TrainingData` (`lengths`: from `load_data`; None: measured here)."""
    return get_task(config.task).datasets(config, corpus, model, lengths)


def prepare(config: Config, loaded: tuple, strategy, verbose: int = 0) -> tuple:
    """`(model, TrainingData)` compiled under `strategy`, from `loaded = load_data(config)`:
    started from `train.init_from` (its vocabularies and weights) when it is set."""
    corpus, source_vocabulary, target_vocabulary, lengths = loaded
    pretrained = None
    if config.train.init_from:
        pretrained, source_vocabulary, target_vocabulary, message = start_from(
            config, corpus, target_vocabulary
        )
        _log(verbose, message)
    with strategy.scope():
        model = build_model(config, source_vocabulary, target_vocabulary)
        if pretrained is not None:
            copied = copy_weights(pretrained, model, config.train.init_from)
            _log(verbose, f"init from {config.train.init_from}: {copied}")
    data = datasets(config, corpus, model, lengths)
    with strategy.scope():
        compile_model(model, config, steps_per_epoch=data.batches)
    _log(
        verbose,
        f"task {config.task}: {model.count_params()} parameters; {data.batches} steps per "
        f"epoch; strategy {type(strategy).__name__} ({strategy.num_replicas_in_sync} "
        f"replica(s)); TensorFlow's oneDNN ops {'on' if onednn_enabled() else 'off'}"
        + (f"; LSTM loop: {lstm_kernels.status()}" if config.model.cell == "lstm" else ""),
    )
    return model, data


def fit(
    config: Config,
    model,
    data: TrainingData,
    run_dir: str,
    strategy,
    verbose: int = 1,
    callbacks: tuple = (),
    monitor: str | None = None,
    epochs: int | None = None,
    initial_epoch: int = 0,
) -> RunState:
    """Trains `model` into `run_dir` (which `run_dir.start` prepared) and returns the run state.

    Resumes from the run dir's backup to the step: an epoch interrupted after `step` steps is
    finished first (its remaining steps), then the others, so every epoch ends, validates and
    backs up where an uninterrupted run's would. `monitor` (default `train.best_metric`, else
    `val_loss`, or `loss` without a validation split) picks the best checkpoint and early
    stopping, in the direction of the task's `objectives` (`train.average_last`: see
    `averaging.py`); `callbacks` run after the run's own; `epochs` (default `train.epochs`) and
    `initial_epoch` are Keras Tuner's Hyperband budget; `train.max_minutes` may stop it sooner
    (`time_budget.py`).
    """
    task = get_task(config.task)
    train = config.train
    monitor = monitor or train.best_metric or ("val_loss" if data.valid is not None else "loss")
    if monitor.startswith("val_") and data.valid is None:
        raise ConfigError(f"train.best_metric: {monitor} needs a validation split (data.*)")
    patience, backup_every = train.early_stopping_patience, train.backup_every_steps
    run_state = RunState(run_dir, monitor, patience, backup_every, task.objectives.get(monitor))
    with strategy.scope():
        state = run_state.restore(model, strategy)
    if state["epoch"] or state["step"]:
        where = f"epoch {state['epoch'] + 1}, step {state['step']}"
        _log(verbose, f"resuming from {run_state.restored_from}: {where}")
    epochs = epochs or train.epochs
    padding = PaddingCounter(epochs)
    measures = task.callbacks(config, model, data.corpus, monitor)
    averages = [averaging.EpochWeights(run_dir, train.average_last)] if train.average_last else []
    budget = []
    if train.max_minutes:  # not under multi_worker (TrainConfig refuses it)
        schedule = _schedule(model.optimizer)
        budget = [TimeBudget(train.max_minutes, epochs, data.batches, schedule, run_state, verbose)]
    # Padding and the task's callbacks first: those after them record the logs they write (the
    # budget times the task's validation too); an epoch's weights are written before the backup
    # that says it is done.
    everything = [
        PaddingFraction(padding),
        *measures,
        *averages,
        *budget,
        run_state,
        keras.callbacks.TensorBoard(os.path.join(run_dir, run_files.LOGS_DIR)),
        keras.callbacks.CSVLogger(os.path.join(run_dir, run_files.HISTORY_FILE), append=True),
        *callbacks,
    ]
    first, done = max(state["epoch"], initial_epoch), state["step"]
    phases = [(first, first + 1, data.batches - done, done)] if done else []
    phases.append((first + 1 if done else first, epochs, data.batches, 0))
    for start_epoch, stop_epoch, steps_per_epoch, skip in phases:
        if run_state.state["stopped"] or start_epoch >= stop_epoch:
            continue
        stream = data.epochs(start_epoch, stop_epoch, padding).skip(skip)
        model.fit(
            stream,
            validation_data=data.valid,
            initial_epoch=start_epoch,
            epochs=stop_epoch,
            steps_per_epoch=steps_per_epoch,
            callbacks=everything,
            # progress bars on a terminal; a line per epoch into a log file
            verbose=verbose if verbose != 1 or sys.stdout.isatty() else 2,
            shuffle=False,
        )  # the dataset shuffles
    score = lambda: averaging.validation_value(model, data.valid, measures, monitor)  # noqa: E731
    run_state.keep_best(model, train.average_last, score)
    task.after_training(model)
    return run_state


def summary(
    config: Config, model, data: TrainingData, run_state: RunState, seconds: float, replicas: int
) -> dict:
    """summary.json of a finished run."""
    corpus, history = data.corpus, run_state.state["history"]
    padding = history.get("padding_fraction", [])  # each epoch's
    return {
        "pairs": {"train": len(corpus.train), "valid": len(corpus.valid), "test": len(corpus.test)},
        "skipped_lines": corpus.skipped.count,
        "duplicate_pairs": corpus.duplicate_pairs(),
        "train_padding_fraction": sum(padding) / len(padding) if padding else None,
        "streamed": corpus.streamed,
        **get_task(config.task).statistics(config, corpus, model, data),
        "parameters": model.count_params(),
        # model.fit's time summed over every attempt of a resumed run; this attempt's alone
        "train_seconds": run_state.state["train_seconds"],
        "attempt_seconds": seconds,
        "replicas": replicas,
        "epochs_run": run_state.state["epoch"],  # the last may be cut short (time_budget.py)
        "steps_per_epoch": data.batches,
        "updates": run_state.state["global_step"],  # every epoch's, not only the kept one's
        "averaged": run_state.state.get("averaged"),  # train.average_last
        "history": history,
    }


def train(config: Config, run_dir: str, verbose: int = 1, overwrite: bool = False) -> keras.Model:
    """Trains into `run_dir` (claimed by this process alone, see `run_dir.claim`), resuming an
    interrupted run of the same config; a finished one is returned as it is, one of another
    config refused unless `overwrite` (see `run_dir.start`). Under a multi-worker strategy every
    worker runs this with the same arguments; the chief writes the run directory, the others
    write theirs (backups included) into `run_dir/workers/<task>-<index>/`, so restarting all of
    them resumes each one."""
    # First: splitting the CPU into logical devices must happen before any op runs.
    strategy = get_strategy(config.train.strategy, config.train.cpu_devices)
    run_dir = run_files.worker_dir(run_dir, strategy)
    with run_files.claim(run_dir, verbose):
        if run_files.start(run_dir, config, overwrite, verbose):
            return run_files.load_run(run_dir)[1]
        keras.utils.set_random_seed(config.train.seed)
        loaded = load_data(config, verbose)  # bad data stops here: nothing is written
        run_files.write_config(run_dir, config)
        model, data = prepare(config, loaded, strategy, verbose)
        start = time.time()
        run_state = fit(config, model, data, run_dir, strategy, verbose)
        seconds, replicas = time.time() - start, strategy.num_replicas_in_sync
        run_files.finish(run_dir, model, summary(config, model, data, run_state, seconds, replicas))
    trained = f"trained in {run_state.state['train_seconds']:.0f} s (this attempt {seconds:.0f} s)"
    _log(verbose, f"{trained}; saved {os.path.join(run_dir, run_files.MODEL_FILE)}")
    return model


def _schedule(optimizer):
    """The learning rate (schedule) `optimizer` was built with (Keras keeps it private)."""
    return getattr(optimizer, "inner_optimizer", optimizer)._learning_rate


def _log(verbose: int, message: str) -> None:
    if verbose:
        print(f"[s2s] {message}", flush=True)
