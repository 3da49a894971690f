"""Checkpoint averaging (`train.average_last`): the mean of the weights at the last N epoch ends.

Late in training the weights wander around a minimum; their mean usually sits closer to it than
any one of them (OpenNMT's `average_checkpoints`, Vaswani et al. 2017's last-checkpoints
average). `EpochWeights` writes each epoch's weights to `checkpoints/epoch-NNNN.npz` (atomically,
keeping the last N, so a resumed run averages the same epochs as an uninterrupted one);
`average` reads them back into one set of weights.
"""

from __future__ import annotations

import glob
import os

import keras
import numpy as np

from s2s_keras.run_dir import BEST_FILE

EPOCH_PATTERN = "epoch-{:04d}.npz"


def checkpoints_dir(run_dir: str) -> str:
    """Where the epoch weight files live: beside the best checkpoint."""
    return os.path.dirname(os.path.join(run_dir, BEST_FILE))


def epoch_files(run_dir: str) -> list:
    """The epoch weight files of `run_dir`, oldest first."""
    directory = checkpoints_dir(run_dir)
    return sorted(glob.glob(os.path.join(glob.escape(directory), "epoch-[0-9]*.npz")))


class EpochWeights(keras.callbacks.Callback):
    """Callback: writes the model's weights at every epoch end and keeps the last `keep` files."""

    def __init__(self, run_dir: str, keep: int):
        super().__init__()
        self.run_dir, self.keep = run_dir, keep

    def on_epoch_end(self, epoch, logs=None):
        directory = checkpoints_dir(self.run_dir)
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, EPOCH_PATTERN.format(epoch + 1))
        temporary = path + ".tmp.npz"
        weights = self.model.get_weights()
        np.savez(temporary, **{f"w{index}": value for index, value in enumerate(weights)})
        os.replace(temporary, path)
        for old in epoch_files(self.run_dir)[: -self.keep]:
            os.remove(old)


def average(model, paths: list) -> list:
    """The element-wise mean of the weights in `paths` (written by `EpochWeights` for `model`'s
    architecture). Float weights are averaged; the others (dropout seed generators' states) are
    the last file's.

    Raises:
        ValueError: a file that holds another model's weights (names the file).
    """
    reference = model.get_weights()
    total, last = None, None
    for path in paths:
        with np.load(path) as data:
            values = [np.array(data[f"w{index}"]) for index in range(len(data.files))]
        if len(values) != len(reference) or any(
            value.shape != weight.shape for value, weight in zip(values, reference)
        ):
            raise ValueError(f"{path}: holds another model's weights (train.average_last)")
        last = values
        floats = [value.astype(np.float64) for value in values]
        total = floats if total is None else [t + f for t, f in zip(total, floats)]
    return [
        (summed / len(paths)).astype(weight.dtype)
        if np.issubdtype(weight.dtype, np.floating)
        else final
        for summed, weight, final in zip(total, reference, last)
    ]


def validation_value(model, valid, callbacks: list, monitor: str):
    """`monitor` of `model` on the validation dataset `valid`, as an epoch end logs it: Keras'
    metrics (`val_` + name), then the task's `callbacks` (which add `val_wer`, ...). None
    without a validation split."""
    if valid is None:
        return None
    results = model.evaluate(valid, verbose=0, return_dict=True)
    logs = {f"val_{name}": float(value) for name, value in results.items()}
    for callback in callbacks:
        callback.on_epoch_end(-1, logs)
    return logs.get(monitor)


def keep_better(model, last: int, evaluate, run_state) -> dict:
    """Replaces `model`'s weights (the best epoch's) by the average of the last `last` epochs'
    of `run_state`'s run dir when `evaluate()` (the monitored value, None without validation)
    says it is at least as good as the best epoch's (`run_state`'s best, in its direction).
    Returns what was compared, for summary.json."""
    best, sign = run_state.state["best"], run_state.sign
    paths = epoch_files(run_state.run_dir)[-last:]
    if not paths:
        return {}
    kept = model.get_weights()
    model.set_weights(average(model, paths))
    value = evaluate()
    better = value is None or best is None or sign * value <= sign * best
    if not better:
        model.set_weights(kept)
    epochs = [int(os.path.basename(path)[6:10]) for path in paths]
    return {"epochs": epochs, "value": value, "best_epoch_value": best, "kept": better}
