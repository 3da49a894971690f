"""The run directory: its file names, and every read and write of them.

A run directory holds `config.json` (the resolved config), `model.keras` (best weights; the
vocabularies are inside), `checkpoints/best.keras`, `backup/` while training (`run_state.py`:
rerunning the same command resumes an interrupted run at its last backup, to the step),
`logs/` (TensorBoard), `history.csv` (each epoch's logs, `padding_fraction` included) and
`summary.json` (data sizes, padding, parameters, timing, history). Training, tuning (each trial
is a run directory), evaluation, prediction and export all go through this module.

A finished run may carry, in `rescore/`, a run that reranks its beam (e.g. trained right to
left; the weight is its `decode.rescore_weight`): `s2s evaluate`, `predict` and `export` of it
alone then rerank unless given `--rescore` (`rescore_dirs`). A shipped model packs one this way
(`pretrained.pack`); training never writes it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import socket
import time

import keras
import tensorflow as tf

from s2s_keras import pretrained
from s2s_keras.config import Config
from s2s_keras.models import Ensemble

MODEL_FILE = "model.keras"
CONFIG_FILE = "config.json"
SUMMARY_FILE = "summary.json"
HISTORY_FILE = "history.csv"
LOGS_DIR = "logs"
BACKUP_DIR = "backup"
BEST_FILE = os.path.join("checkpoints", "best.keras")
LOCK_FILE = ".lock"
RESCORE_DIR = "rescore"
# What a run writes (and `--overwrite` removes); other files in the directory are left alone.
RUN_FILES = (
    MODEL_FILE,
    CONFIG_FILE,
    SUMMARY_FILE,
    HISTORY_FILE,
    LOGS_DIR,
    BACKUP_DIR,
    os.path.dirname(BEST_FILE),
    "workers",
)


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
    try:
        with open(path, encoding="utf-8") as handle:
            return Config.from_json(handle.read())
    except (ValueError, UnicodeDecodeError, TypeError) as error:  # JSON, or a config's own
        raise ValueError(f"{path}: not a readable config ({error})") from None


@contextlib.contextmanager
def claim(run_dir: str, verbose: int = 0):
    """Holds `run_dir` for this process while it writes there: an advisory lock (`flock`) on
    `run_dir/.lock`, which names the holder (pid, host, since). A second writer stops with an
    error naming the holder; a lock file left by a process that is gone is taken over (said
    so). `flock` holds between processes of one machine; a shared filesystem may not carry it
    between machines (multi-worker runs write per-worker dirs). Creates `run_dir`; if this call
    created it and it is left empty (a run that failed before writing anything), it is removed
    again."""
    if os.path.exists(run_dir) and not os.path.isdir(run_dir):
        raise ValueError(f"--run-dir {run_dir}: a file, not a directory")
    created = not os.path.exists(run_dir)
    os.makedirs(run_dir, exist_ok=True)
    path = os.path.join(run_dir, LOCK_FILE)
    handle = open(path, "a+", encoding="utf-8")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _holder(path)
        handle.close()
        raise ValueError(
            f"{run_dir} is in use by pid {holder.get('pid')} on {holder.get('host')} since "
            f"{holder.get('since')} (its lock: {path}); wait for it to finish or use another "
            "--run-dir"
        ) from None
    gone = _holder(path)
    if gone and verbose:
        print(
            f"[s2s] {run_dir}: taking over the lock of pid {gone.get('pid')} on "
            f"{gone.get('host')} (since {gone.get('since')}), which is gone",
            flush=True,
        )
    handle.seek(0)
    handle.truncate()
    since = time.strftime("%Y-%m-%d %H:%M:%S")
    json.dump({"pid": os.getpid(), "host": socket.gethostname(), "since": since}, handle)
    handle.flush()
    try:
        yield
    finally:
        os.remove(path)
        handle.close()  # releases the lock
        if created and not os.listdir(run_dir):
            os.rmdir(run_dir)


def _holder(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return {}


def start(run_dir: str, config: Config, overwrite: bool = False, verbose: int = 0) -> bool:
    """Checks what `run_dir` holds before a run of `config` writes there; True when it holds
    this very run, finished (nothing to do). A run with another config — interrupted (it has
    `backup/`) or finished (`model.keras`) — is refused naming the fields that differ: resuming
    would mix two runs, training would replace a model. `overwrite` removes what an earlier
    run wrote (`RUN_FILES`) instead."""
    if overwrite:
        for name in RUN_FILES:
            path = os.path.join(run_dir, name)
            if os.path.isdir(path):
                shutil.rmtree(path)
            elif os.path.exists(path):
                os.remove(path)
        return False
    previous = read_config(run_dir)
    interrupted = os.path.isdir(os.path.join(run_dir, BACKUP_DIR))
    finished = os.path.isfile(os.path.join(run_dir, MODEL_FILE)) and not interrupted
    config_path = os.path.join(run_dir, CONFIG_FILE)
    if (interrupted or finished) and previous != config:
        kind = "an interrupted run" if interrupted else "a finished run"
        if previous is None:
            raise ValueError(
                f"{run_dir} holds {kind} without {CONFIG_FILE}; use a new --run-dir "
                "or --overwrite to replace it"
            )
        differences = [
            f"{key}: {ours!r} here, {theirs!r} in {config_path}"
            for key, ours, theirs in _differences(config.to_dict(), previous.to_dict())
        ]
        raise ValueError(
            f"{run_dir} holds {kind} with another config ({config_path}):\n  "
            + "\n  ".join(differences)
            + "\nuse a new --run-dir, or --overwrite to replace it"
        )
    if finished and verbose:
        print(
            f"[s2s] {run_dir}: finished ({MODEL_FILE}); nothing to do (--overwrite trains it "
            "again)",
            flush=True,
        )
    return finished


def _differences(ours: dict, theirs: dict, prefix: str = "") -> list:
    """`(dotted key, ours, theirs)` of every field that differs, in field order."""
    found = []
    for key, value in ours.items():
        other = theirs.get(key)
        if isinstance(value, dict) and isinstance(other, dict):
            found += _differences(value, other, f"{prefix}{key}.")
        elif value != other:
            found.append((prefix + key, value, other))
    return found


def write_config(run_dir: str, config: Config) -> None:
    with open(os.path.join(run_dir, CONFIG_FILE), "w", encoding="utf-8") as handle:
        handle.write(config.to_json())


def read_summary(run_dir: str) -> dict:
    with open(os.path.join(run_dir, SUMMARY_FILE), encoding="utf-8") as handle:
        return json.load(handle)


def finish(run_dir: str, model, summary: dict) -> None:
    """Saves the trained model and `summary.json`; removes the backups (nothing to resume)."""
    model.save(os.path.join(run_dir, MODEL_FILE))
    with open(os.path.join(run_dir, SUMMARY_FILE), "w") as handle:
        json.dump(summary, handle, indent=2)
    shutil.rmtree(os.path.join(run_dir, BACKUP_DIR), ignore_errors=True)


def load_run(run_dir: str) -> tuple:
    """`(config, model)` of a finished run directory (or of `pretrained:NAME`)."""
    run_dir = pretrained.resolve(run_dir)
    model_path = os.path.join(run_dir, MODEL_FILE)
    for path in (os.path.join(run_dir, CONFIG_FILE), model_path):
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"{path} not found: is {run_dir!r} a finished `s2s train` run dir?"
            )
    config = read_config(run_dir)
    return config, load_model(model_path)


def load_model(path: str):
    """A `.keras` file, or an error that says it is damaged (Keras would say "File not found")."""
    try:
        return keras.saving.load_model(path)
    except Exception as error:  # whatever a damaged zip or h5 raises
        problem = str(error).strip().splitlines()[0][:300] if str(error).strip() else ""
        raise ValueError(
            f"{path}: cannot be loaded as a .keras model ({type(error).__name__}: {problem}); "
            "if it is damaged, retrain the run or restore the file"
        ) from None


def load_runs(run_dirs: list) -> tuple:
    """`(config, model, configs)` of one finished run directory, or of several as an `Ensemble`
    (`config` — data, decode settings — is the first run's)."""
    loaded = [load_run(run_dir) for run_dir in run_dirs]
    configs = [config for config, _ in loaded]
    if len(loaded) == 1:
        return configs[0], loaded[0][1], configs
    # Ensemble refuses mixed tasks, naming each run dir's model class.
    return configs[0], Ensemble([model for _, model in loaded], names=list(run_dirs)), configs


def rescore_dirs(run_dirs: list, rescore: list | None) -> list | None:
    """The runs that rerank `run_dirs`' beam: `rescore` when given, else the `rescore/` run a
    single run dir carries (see the module doc), else None."""
    if rescore:
        return list(rescore)
    if len(run_dirs) == 1:
        carried = os.path.join(pretrained.resolve(run_dirs[0]), RESCORE_DIR)
        if os.path.isfile(os.path.join(carried, CONFIG_FILE)):
            return [carried]
    return None


def load_rescorer(run_dirs: list, rescore: list | None):
    """The model (or ensemble) of `rescore_dirs(run_dirs, rescore)`, or None."""
    dirs = rescore_dirs(run_dirs, rescore)
    return load_runs(dirs)[1] if dirs else None


def is_run_dir(path: str) -> bool:
    path = pretrained.resolve(path)
    return os.path.isfile(os.path.join(path, CONFIG_FILE))
