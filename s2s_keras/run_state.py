"""The resumable state of a training run: step-level backups, the best checkpoint, early stopping.

Everything `s2s train` needs to continue a killed run exactly where its last backup left it
lives in ONE file, `run_dir/backup/state.npz`, replaced atomically: every model variable (the
weights and the dropout seed generators' state), every optimizer variable (slots, step count,
loss scale), and a JSON record — epoch and step reached, the best monitored value, early
stopping's wait count, the history of finished epochs. With the training data's order a
function of (seed, epoch) only (`make_dataset(..., epoch_range=...)`), a resumed run sees the
same batches in the same order as an uninterrupted one.
"""

from __future__ import annotations

import json
import os

import keras
import numpy as np

BACKUP_DIR = "backup"
STATE_FILE = "state.npz"
BEST_FILE = os.path.join("checkpoints", "best.keras")


class RunState(keras.callbacks.Callback):
    """Callback: backs up every `backup_every_steps` steps (0: at epoch ends only) and at every
    epoch end, keeps `checkpoints/best.keras` (lowest `monitor`), and stops training after
    `patience` epochs without improvement.

    `restore(model)` loads a backup if the run dir holds one and returns the state (`epoch`
    finished epochs, `step` steps done in the next one, ...); call it after `compile`.
    """

    def __init__(self, run_dir: str, monitor: str, patience: int, backup_every_steps: int):
        super().__init__()
        self.run_dir = run_dir
        self.monitor = monitor
        self.patience = patience
        self.backup_every_steps = backup_every_steps
        self.state = {"epoch": 0, "step": 0, "best": None, "wait": 0, "stopped": False, "history": {}}

    @property
    def path(self) -> str:
        return os.path.join(self.run_dir, BACKUP_DIR, STATE_FILE)

    def restore(self, model) -> dict:
        if not os.path.isfile(self.path):
            return self.state
        with np.load(self.path) as data:
            self.state = json.loads(str(data["state"]))
            values = [data[f"v{index}"] for index in range(len(data.files) - 1)]
        variables = _state_variables(model)
        if len(variables) != len(values) or any(v.shape != value.shape for v, value in zip(variables, values)):
            raise ValueError(f"{self.path} was written by another model (its variables differ); "
                             f"delete {os.path.dirname(self.path)} to start over")
        for variable, value in zip(variables, values):
            variable.assign(value)
        return self.state

    def on_train_batch_end(self, batch, logs=None):
        self.state["step"] += 1
        if self.backup_every_steps and self.state["step"] % self.backup_every_steps == 0:
            self.save()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        for key, value in logs.items():
            self.state["history"].setdefault(key, []).append(float(value))
        self.state.update(epoch=epoch + 1, step=0)
        value = logs.get(self.monitor)
        if value is not None:
            if self.state["best"] is None or value < self.state["best"]:
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

    def save(self) -> None:
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        arrays = {f"v{index}": np.asarray(variable.numpy())
                  for index, variable in enumerate(_state_variables(self.model))}
        temporary = self.path + ".tmp.npz"
        np.savez(temporary, state=json.dumps(self.state), **arrays)
        os.replace(temporary, self.path)  # a kill leaves either the old or the new backup


def _state_variables(model) -> list:
    """Model variables (weights, dropout seed generators) + optimizer variables, in a fixed order."""
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    return [*model.trainable_variables, *model.non_trainable_variables, *model.optimizer.variables]
