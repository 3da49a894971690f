"""The resumable state of a training run: step-level backups, the best checkpoint, early stopping.

Everything `s2s train` needs to continue a killed run exactly where its last backup left it
lives in ONE file, `run_dir/backup/state.npz` (the one before it is kept as
`state.previous.npz`), replaced atomically: every model variable (the
weights and the dropout seed generators' state), every optimizer variable (slots, step count,
loss scale), and a JSON record — epoch and step reached, the best monitored value, early
stopping's wait count, the history of finished epochs, and the seconds trained up to the backup
(`train_seconds`: summed over every attempt, so a run resumed across machines or restarts still
reports its total training time; the steps a killed attempt did after its last backup are
counted once, when the resumed attempt redoes them). With the training data's order a
function of (seed, epoch) only (`make_dataset(..., epoch_range=...)`), a resumed run sees the
same batches in the same order as an uninterrupted one.
"""

from __future__ import annotations

import json
import os
import sys
import time
import zipfile

import keras
import numpy as np
import tensorflow as tf

from s2s_keras import averaging
from s2s_keras.run_dir import BACKUP_DIR, BEST_FILE

STATE_FILE = "state.npz"
PREVIOUS_FILE = "state.previous.npz"


class RunState(keras.callbacks.Callback):
    """Callback: backs up every `backup_every_steps` steps (0: at epoch ends only) and at every
    epoch end, keeps `checkpoints/best.keras` (best `monitor`: lowest, or highest with
    `direction="max"`), and stops training after
    `patience` epochs without improvement.

    `restore(model)` loads a backup if the run dir holds one and returns the state (`epoch`
    finished epochs, `step` steps done in the next one, ...); call it after `compile`.
    """

    def __init__(
        self,
        run_dir: str,
        monitor: str,
        patience: int,
        backup_every_steps: int,
        direction: str = "min",
    ):
        super().__init__()
        self.run_dir = run_dir
        self.monitor = monitor
        self.sign = -1.0 if direction == "max" else 1.0  # compare sign * value: lower is better
        self.patience = patience
        self.backup_every_steps = backup_every_steps
        self.state = {
            "epoch": 0,
            "step": 0,
            "global_step": 0,
            "best": None,
            "wait": 0,
            "stopped": False,
            "history": {},
            "train_seconds": 0.0,
        }
        self._clock = None  # when the time since the last backup started counting
        self.restored_from = None  # the backup `restore` loaded

    @property
    def path(self) -> str:
        return os.path.join(self.run_dir, BACKUP_DIR, STATE_FILE)

    @property
    def previous_path(self) -> str:
        return os.path.join(self.run_dir, BACKUP_DIR, PREVIOUS_FILE)

    def restore(self, model, strategy=None) -> dict:
        """Loads the newest backup; under a multi-worker strategy the newest one EVERY worker
        has (a worker killed while saving may be one backup behind the others: each keeps its
        previous backup too), so that all workers resume at the same step."""
        candidates, damaged = {}, []
        for path in (self.previous_path, self.path):
            if not os.path.isfile(path):
                continue
            try:
                state, values = _read_backup(path)
            except _DAMAGED as error:  # named and skipped for the other backup
                damaged.append(f"{path}: {type(error).__name__}: {error}")
                print(f"[s2s] skipping damaged backup {damaged[-1]}", file=sys.stderr, flush=True)
                continue
            candidates[state["global_step"]] = path, state, values
        if damaged and not candidates:
            directory = os.path.dirname(self.path)
            raise ValueError(
                f"{directory}: no usable backup to resume from:\n  "
                + "\n  ".join(damaged)
                + f"\nrestore a copy of one, or train again from the start with --overwrite "
                f"(which removes {directory} and what the run wrote)"
            )
        target = max(candidates, default=-1)
        if strategy is not None and _multi_worker(strategy):
            target = _agree_on_minimum(strategy, target)
        if target < 0:
            return self.state
        if target not in candidates:
            raise ValueError(
                f"{os.path.dirname(self.path)}: no backup at step {target}, which every worker "
                f"has reached (this worker has {sorted(candidates)}); the backups are out of step"
            )
        path, state, values = candidates[target]
        self.restored_from = path
        variables = _state_variables(model)
        if len(variables) != len(values) or any(
            v.shape != value.shape for v, value in zip(variables, values)
        ):
            raise ValueError(
                f"{path} was written by another model (its variables differ); "
                f"delete {os.path.dirname(path)} to start over"
            )
        for variable, value in zip(variables, values):
            variable.assign(value)
        state.setdefault("train_seconds", 0.0)  # backups written before it was recorded
        self.state = state
        return self.state

    def on_train_begin(self, logs=None):
        self._clock = time.time()

    def on_train_end(self, logs=None):
        self._count_time()

    def _count_time(self) -> None:
        if self._clock is not None:
            now = time.time()
            self.state["train_seconds"] += now - self._clock
            self._clock = now

    def on_train_batch_end(self, batch, logs=None):
        self.state["step"] += 1
        self.state["global_step"] += 1
        if self.backup_every_steps and self.state["step"] % self.backup_every_steps == 0:
            self.save()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        for key, value in logs.items():
            self.state["history"].setdefault(key, []).append(float(value))
        self.state.update(epoch=epoch + 1, step=0)
        value = logs.get(self.monitor)
        if value is not None:
            if self.state["best"] is None or self.sign * value < self.sign * self.state["best"]:
                self.state.update(best=float(value), wait=0)
                best = os.path.join(self.run_dir, BEST_FILE)
                os.makedirs(os.path.dirname(best), exist_ok=True)
                self.model.save(best)
            else:
                self.state["wait"] += 1
                if self.state["wait"] >= self.patience:
                    self.state["stopped"] = True
                    self.model.stop_training = True
        self.save()

    def keep_best(self, model, average_last: int = 0, score=None) -> None:
        """After training: gives `model` the best epoch's weights (by `monitor`, as early
        stopping would restore them), or with `average_last` the mean of the last epochs' when
        `score()` says it is at least as good (`averaging.keep_better`; `state["averaged"]`)."""
        best = os.path.join(self.run_dir, BEST_FILE)
        if os.path.isfile(best):
            model.load_weights(best)
        if average_last:
            self.state["averaged"] = averaging.keep_better(model, average_last, score, self)

    def save(self) -> None:
        self._count_time()
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        arrays = {
            f"v{index}": np.asarray(variable.numpy())
            for index, variable in enumerate(_state_variables(self.model))
        }
        temporary = self.path + ".tmp.npz"
        np.savez(temporary, state=json.dumps(self.state), **arrays)
        # Atomic renames: a kill at any point leaves the newest complete backup, the one before
        # it, or both.
        if os.path.isfile(self.path):
            os.replace(self.path, self.previous_path)
        os.replace(temporary, self.path)


# What reading a damaged backup raises: a truncated or overwritten zip, a bad CRC, a missing
# array or record.
_DAMAGED = (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile)


def _read_backup(path: str) -> tuple:
    """`(state record, variable values)` of a backup, every array read (so checked)."""
    with np.load(path) as data:
        state = json.loads(str(data["state"]))
        values = [np.array(data[f"v{index}"]) for index in range(len(data.files) - 1)]
    return state, values


def _state_variables(model) -> list:
    """Model variables (weights, dropout seed generators) + optimizer variables, in a fixed
    order."""
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    return [*model.trainable_variables, *model.non_trainable_variables, *model.optimizer.variables]


def _multi_worker(strategy) -> bool:
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def _agree_on_minimum(strategy, value: int) -> int:
    """The smallest of every worker's `value` (a collective: all workers must call it)."""
    resolver = strategy.cluster_resolver
    cluster = resolver.cluster_spec().as_dict()
    workers = len(cluster.get("chief", [])) + len(cluster.get("worker", []))
    # Slot per worker: the chief (if any) first, then the workers by index.
    index = resolver.task_id + (1 if resolver.task_type == "worker" and "chief" in cluster else 0)
    local_replicas = strategy.num_replicas_in_sync // workers

    def contribute():
        replica = tf.distribute.get_replica_context().replica_id_in_sync_group
        # One entry per worker, written by the worker's first local replica only.
        first = tf.cast(tf.equal(replica % local_replicas, 0), tf.int64)
        return tf.one_hot(index, workers, dtype=tf.int64) * (value + 1) * first

    values = strategy.reduce("SUM", strategy.run(contribute), axis=None).numpy() - 1
    return int(values.min())
