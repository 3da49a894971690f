"""The run directory: its file names, and every read and write of them.

A run directory holds `config.json` (the resolved config), `model.keras` (best weights; the
vocabularies are inside), `checkpoints/best.keras`, `backup/` while training (`run_state.py`:
rerunning the same command resumes an interrupted run at its last backup, to the step),
`logs/` (TensorBoard), `history.csv` (each epoch's logs, `padding_fraction` included) and
`summary.json` (data sizes, padding, parameters, timing, history). Training, tuning (each trial
is a run directory), evaluation, prediction and export all go through this module.
"""

from __future__ import annotations

import json
import os
import shutil

import keras
import tensorflow as tf

from s2s_keras.config import Config
from s2s_keras.models import Ensemble

MODEL_FILE = "model.keras"
CONFIG_FILE = "config.json"
SUMMARY_FILE = "summary.json"
HISTORY_FILE = "history.csv"
LOGS_DIR = "logs"
BACKUP_DIR = "backup"
BEST_FILE = os.path.join("checkpoints", "best.keras")


def worker_dir(run_dir: str, strategy: tf.distribute.Strategy) -> str:
    """`run_dir` for the chief (and single-machine strategies), else a per-worker directory
    `run_dir/workers/<task>-<index>/` (each worker's own backups)."""
    if strategy.extended.should_checkpoint:
        return run_dir
    resolver = strategy.cluster_resolver
    return os.path.join(run_dir, "workers", f"{resolver.task_type}-{resolver.task_id}")


def read_config(run_dir: str) -> Config | None:
    """The resolved config a run wrote into `run_dir` (None: it has none)."""
    path = os.path.join(run_dir, CONFIG_FILE)
    if not os.path.isfile(path):
        return None
    with open(path) as handle:
        return Config.from_json(handle.read())


def start(run_dir: str, config: Config) -> None:
    """Creates `run_dir` and writes `config`; resuming with another config would silently mix
    two runs, so an interrupted run (it has `backup/`) with a different config is refused."""
    os.makedirs(run_dir, exist_ok=True)
    if os.path.isdir(os.path.join(run_dir, BACKUP_DIR)):
        previous = read_config(run_dir)
        if previous is not None and previous != config:
            raise ValueError(
                f"{run_dir} holds an interrupted run with another config "
                f"({os.path.join(run_dir, CONFIG_FILE)}); use a new --run-dir or delete "
                f"{os.path.join(run_dir, BACKUP_DIR)}"
            )
    with open(os.path.join(run_dir, CONFIG_FILE), "w") as handle:
        handle.write(config.to_json())


def finish(run_dir: str, model, summary: dict) -> None:
    """Saves the trained model and `summary.json`; removes the backups (nothing to resume)."""
    model.save(os.path.join(run_dir, MODEL_FILE))
    with open(os.path.join(run_dir, SUMMARY_FILE), "w") as handle:
        json.dump(summary, handle, indent=2)
    shutil.rmtree(os.path.join(run_dir, BACKUP_DIR), ignore_errors=True)


def load_run(run_dir: str) -> tuple:
    """`(config, model)` of a finished run directory."""
    model_path = os.path.join(run_dir, MODEL_FILE)
    for path in (os.path.join(run_dir, CONFIG_FILE), model_path):
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"{path} not found: is {run_dir!r} a finished `s2s train` run dir?"
            )
    return read_config(run_dir), keras.saving.load_model(model_path)


def load_runs(run_dirs: list) -> tuple:
    """`(config, model, configs)` of one finished run directory, or of several as an `Ensemble`
    (`config` — data, decode settings — is the first run's)."""
    loaded = [load_run(run_dir) for run_dir in run_dirs]
    configs = [config for config, _ in loaded]
    if len(loaded) == 1:
        return configs[0], loaded[0][1], configs
    # Ensemble refuses mixed tasks, naming each run dir's model class.
    return configs[0], Ensemble([model for _, model in loaded], names=list(run_dirs)), configs


def is_run_dir(path: str) -> bool:
    return os.path.isfile(os.path.join(path, CONFIG_FILE))
