"""Preemption: a run killed mid-epoch resumes from its last step-level backup and ends where an
uninterrupted run ends."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import REPO, run_cli
from test_end_to_end import reversal_pairs

pytestmark = pytest.mark.slow


def read_state(path):
    try:
        with np.load(path) as data:
            return json.loads(str(data["state"]))
    except (OSError, ValueError, KeyError, EOFError):  # not there yet, or being replaced
        return None


def test_sigkilled_run_resumes_to_the_uninterrupted_result(tmp_path, monkeypatch):
    monkeypatch.setenv("TF_DETERMINISTIC_OPS", "1")  # run-to-run identical kernels
    pairs = reversal_pairs(1200, seed=4)
    (tmp_path / "train.tsv").write_text("".join(f"{s}\t{t}\n" for s, t in pairs))
    command = [
        "train",
        "--data",
        f"tsv:{tmp_path / 'train.tsv'}",
        "--preset",
        "tiny",
        "--set",
        "train.epochs=2",
        "--set",
        "train.backup_every_steps=5",
        "--set",
        "model.num_layers=2",
        "--set",
        "model.hidden_units=64",
        "--set",
        "model.dropout=0.2",
        "--set",
        "train.early_stopping_patience=4",
    ]
    run_cli(*command, "--run-dir", str(tmp_path / "whole"))

    run_dir = tmp_path / "killed"
    process = subprocess.Popen(
        [sys.executable, "-m", "s2s_keras.cli", *command, "--run-dir", str(run_dir)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
    )
    backup = run_dir / "backup" / "state.npz"
    deadline = time.time() + 600
    state = None
    while time.time() < deadline and process.poll() is None:
        state = read_state(backup)
        if state and state["epoch"] >= 1 and state["step"] > 0:  # mid-epoch, after the first epoch
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.005)
    assert process.wait() == -signal.SIGKILL, "the run finished before a mid-epoch backup was seen"
    assert not (run_dir / "model.keras").exists()

    resumed = run_cli(*command, "--run-dir", str(run_dir))
    assert f"resuming from {backup}: epoch {state['epoch'] + 1}" in resumed.stdout
    assert not (run_dir / "backup").exists()  # finished: nothing left to resume

    whole = json.loads((tmp_path / "whole" / "summary.json").read_text())
    again = json.loads((run_dir / "summary.json").read_text())
    assert again["epochs_run"] == whole["epochs_run"] == 2
    np.testing.assert_allclose(
        again["history"]["val_loss"], whole["history"]["val_loss"], rtol=1e-6
    )
    # The total training time counts the killed attempt up to its last backup and the resumed one.
    assert (
        0
        < state["train_seconds"]
        < again["train_seconds"]
        <= state["train_seconds"] + again["attempt_seconds"]
    )
    import keras

    import s2s_keras  # noqa: F401

    weights = [
        keras.saving.load_model(path / "model.keras").get_weights()
        for path in (tmp_path / "whole", run_dir)
    ]
    for a, b in zip(*weights):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_a_backup_of_another_model_is_refused(tmp_path):
    from s2s_keras import Seq2Seq
    from s2s_keras.config import preset
    from s2s_keras.run_state import RunState
    from s2s_keras.training import compile_model

    def model(units):
        built = Seq2Seq(list("ab"), ["X"], embedding_size=4, hidden_units=units, num_layers=1)
        compile_model(built, preset("tiny"), steps_per_epoch=1)
        return built

    state = RunState(str(tmp_path), "loss", 2, 0)
    state.set_model(model(4))
    state.save()
    assert RunState(str(tmp_path), "loss", 2, 0).restore(model(4))["epoch"] == 0
    with pytest.raises(ValueError, match="was written by another model"):
        RunState(str(tmp_path), "loss", 2, 0).restore(model(6))
