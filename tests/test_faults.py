"""Faults a run directory and an export survive: damaged backups, a kill while a backup is being
written, two writers, reruns into a finished run, damaged artifacts, other users' servers."""

import json
import os
import random
import stat

import pytest

from s2s_keras import cli
from s2s_keras import run_dir as run_files
from s2s_keras.config import preset
from s2s_keras.run_state import RunState

pytestmark = pytest.mark.slow


class Killed(BaseException):
    """A kill in the middle of training (not an `Exception`: nothing catches it)."""


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    rng = random.Random(3)
    words = sorted(
        {"".join(rng.choice("abcd") for _ in range(rng.randint(1, 5))) for _ in range(300)}
    )
    path = tmp_path_factory.mktemp("data") / "pairs.tsv"
    path.write_text("".join(f"{w}\t{' '.join(reversed(w.upper()))}\n" for w in words))
    return str(path)


def config_of(data, *overrides):
    return preset("tiny").override(
        [f"data.source=tsv:{data}", "train.epochs=2", "train.backup_every_steps=2", *overrides]
    )


def killed_run(config, run_dir, monkeypatch):
    """Trains until the second epoch's third step, then dies: backups of steps 2 of epoch 2
    (newest) and of the end of epoch 1 (previous) are left, no model."""
    from s2s_keras.training import train

    step = RunState.on_train_batch_end

    def dies(self, batch, logs=None):
        step(self, batch, logs)
        if self.state["epoch"] == 1 and self.state["step"] == 3:
            raise Killed()

    monkeypatch.setattr(RunState, "on_train_batch_end", dies)
    with pytest.raises(Killed):
        train(config, run_dir, verbose=0)
    monkeypatch.setattr(RunState, "on_train_batch_end", step)
    backup = os.path.join(run_dir, run_files.BACKUP_DIR)
    assert sorted(os.listdir(backup)) == ["state.npz", "state.previous.npz"]
    assert not os.path.exists(os.path.join(run_dir, run_files.MODEL_FILE))
    return backup


def truncate(path):
    with open(path, "r+b") as handle:
        handle.truncate(os.path.getsize(path) // 2)


@pytest.mark.parametrize("damaged", ["state.npz", "state.previous.npz"])
def test_a_damaged_backup_is_named_and_skipped_for_the_other(
    data, tmp_path, monkeypatch, capsys, damaged
):
    from s2s_keras.training import train

    config, run_dir = config_of(data), str(tmp_path / "run")
    backup = killed_run(config, run_dir, monkeypatch)
    truncate(os.path.join(backup, damaged))
    capsys.readouterr()
    train(config, run_dir, verbose=1)
    out, err = capsys.readouterr()
    assert f"skipping damaged backup {os.path.join(backup, damaged)}" in err
    resumed = "state.previous.npz" if damaged == "state.npz" else "state.npz"
    assert f"resuming from {os.path.join(backup, resumed)}" in out
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["epochs_run"] == 2 and not os.path.exists(backup)


def test_no_usable_backup_stops_naming_both_and_keeps_them(data, tmp_path, monkeypatch, capsys):
    config, run_dir = config_of(data), str(tmp_path / "run")
    backup = killed_run(config, run_dir, monkeypatch)
    truncate(os.path.join(backup, "state.npz"))
    with open(os.path.join(backup, "state.previous.npz"), "wb") as handle:
        handle.write(os.urandom(300))
    args = ["train", "--preset", "tiny", "--data", f"tsv:{data}", "--run-dir", run_dir]
    args += [f"--set={a}" for a in ("train.epochs=2", "train.backup_every_steps=2")]
    assert cli.main(args) == 2
    error = capsys.readouterr().err
    for name in ("state.npz", "state.previous.npz"):
        assert os.path.join(backup, name) in error
    assert "--overwrite" in error and "Traceback" not in error
    assert sorted(os.listdir(backup)) == ["state.npz", "state.previous.npz"]  # nothing deleted


def test_a_kill_while_a_backup_is_written_leaves_the_others(data, tmp_path, monkeypatch):
    from s2s_keras.training import train

    config, run_dir = config_of(data), str(tmp_path / "run")
    backup = killed_run(config, run_dir, monkeypatch)
    # What a kill inside np.savez leaves: the temporary file, half written.
    with open(os.path.join(backup, "state.npz"), "rb") as handle:
        half = handle.read()[:1000]
    with open(os.path.join(backup, "state.npz.tmp.npz"), "wb") as handle:
        handle.write(half)
    train(config, run_dir, verbose=0)
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["epochs_run"] == 2


def test_a_second_writer_is_refused_and_a_dead_ones_lock_is_taken_over(tmp_path, capsys):
    run_dir = str(tmp_path / "run")
    with run_files.claim(run_dir):
        with pytest.raises(ValueError, match=rf"{run_dir} is in use by pid {os.getpid()} on "):
            with run_files.claim(run_dir):
                pass
    assert not os.path.exists(os.path.join(run_dir, run_files.LOCK_FILE))
    os.makedirs(run_dir, exist_ok=True)
    with open(os.path.join(run_dir, run_files.LOCK_FILE), "w") as handle:
        json.dump({"pid": 2**22 + 17, "host": "elsewhere", "since": "then"}, handle)
    with run_files.claim(run_dir, verbose=1):
        pass
    assert "taking over the lock of pid 4194321 on elsewhere" in capsys.readouterr().out


def test_a_finished_run_is_never_overwritten_without_asking(data, tmp_path, capsys):
    from s2s_keras.training import train

    config, run_dir = config_of(data), str(tmp_path / "run")
    train(config, run_dir, verbose=0)
    model = tmp_path / "run" / run_files.MODEL_FILE
    written = model.stat().st_mtime_ns
    with pytest.raises(ValueError, match=r"model.hidden_units: 16 here, 32 in .*config.json"):
        train(config.override(["model.hidden_units=16"]), run_dir, verbose=0)
    train(config, run_dir, verbose=1)  # the same config: finished, nothing to do
    assert "finished" in capsys.readouterr().out and model.stat().st_mtime_ns == written
    train(config.override(["model.hidden_units=16"]), run_dir, verbose=0, overwrite=True)
    assert model.stat().st_mtime_ns != written
    assert json.loads((tmp_path / "run" / "config.json").read_text())["model"]["hidden_units"] == 16


@pytest.mark.parametrize("damage", ["truncated", "random bytes"])
def test_damaged_run_files_are_named(data, tmp_path, damage):
    from s2s_keras.training import train

    run_dir = str(tmp_path / "run")
    train(config_of(data, "train.epochs=1"), run_dir, verbose=0)
    for name in (run_files.MODEL_FILE, run_files.CONFIG_FILE):
        path = os.path.join(run_dir, name)
        original = open(path, "rb").read()
        with open(path, "wb") as handle:
            handle.write(
                original[: len(original) // 2] if damage == "truncated" else os.urandom(99)
            )
        with pytest.raises(ValueError, match=rf"{path}: "):
            run_files.load_run(run_dir)
        with open(path, "wb") as handle:
            handle.write(original)


def test_a_run_dir_that_is_a_file_and_bad_data_leave_nothing_behind(data, tmp_path, capsys):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    assert (
        cli.main(["train", "--preset", "tiny", "--data", f"tsv:{data}", "--run-dir", str(a_file)])
        == 2
    )
    assert f"--run-dir {a_file}: a file, not a directory" in capsys.readouterr().err
    run_dir = tmp_path / "new"
    assert (
        cli.main(
            [
                "train",
                "--preset",
                "tiny",
                "--data",
                f"tsv:{tmp_path}/nothing.tsv",
                "--run-dir",
                str(run_dir),
            ]
        )
        == 2
    )
    assert not run_dir.exists()


def test_exports_are_readable_by_other_users_and_a_base_dir_gets_a_hint(data, tmp_path, capsys):
    from s2s_keras.export import export
    from s2s_keras.training import train

    config = config_of(data, "train.epochs=1")
    model = train(config, str(tmp_path / "run"), verbose=0)
    base = str(tmp_path / "export")
    version = export(model, config, base)
    for directory, folders, files in os.walk(version):
        assert stat.S_IMODE(os.stat(directory).st_mode) == 0o755, directory
        for name in files:
            assert stat.S_IMODE(os.stat(os.path.join(directory, name)).st_mode) == 0o644, name
    assert cli.main(["predict", "--model", base, "abc"]) == 2
    assert f"{base} holds SavedModel versions; give one, e.g. {version}" in capsys.readouterr().err


def test_a_second_writer_in_another_process_is_refused_naming_it(tmp_path):
    import subprocess
    import sys
    import time

    from conftest import REPO

    run_dir = str(tmp_path / "run")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from s2s_keras.run_dir import claim\n"
            f"with claim({run_dir!r}):\n    print('held', flush=True); time.sleep(60)",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(ValueError, match=rf"in use by pid {holder.pid} on "):
            with run_files.claim(run_dir):
                pass
    finally:
        holder.kill()
        holder.wait()
    time.sleep(0.1)
    with run_files.claim(run_dir):  # its lock died with it
        pass


def test_a_sigkill_inside_the_backup_write_loses_no_backup(data, tmp_path):
    """The process is killed (SIGKILL) halfway through writing its third backup's temporary
    file; the rerun resumes from the backups before it."""
    import subprocess
    import sys

    from conftest import REPO

    run_dir = str(tmp_path / "run")
    script = f"""
import os, signal
import numpy as np
from s2s_keras import run_state
from s2s_keras.config import preset
from s2s_keras.training import train

written = []
savez = np.savez

def dies_while_writing(path, **arrays):
    written.append(path)
    if len(written) == 3:  # half a file, then the kill
        with open(path, "wb") as handle:
            handle.write(b"PK" + os.urandom(500))
        os.kill(os.getpid(), signal.SIGKILL)
    savez(path, **arrays)

run_state.np.savez = dies_while_writing
config = preset("tiny").override([
    "data.source=tsv:{data}", "train.epochs=2", "train.backup_every_steps=2"])
train(config, {run_dir!r}, verbose=0)
"""
    killed = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True)
    assert killed.returncode == -9, killed.stderr.decode()[-2000:]
    backup = os.path.join(run_dir, run_files.BACKUP_DIR)
    assert sorted(os.listdir(backup)) == ["state.npz", "state.npz.tmp.npz", "state.previous.npz"]
    from s2s_keras.training import train

    train(config_of(data), run_dir, verbose=0)
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["epochs_run"] == 2


def test_data_files_that_are_not_files_or_hold_glob_characters(tmp_path):
    from s2s_keras import pipelines
    from s2s_keras.config import DataConfig
    from s2s_keras.pipelines.corpus import DataError

    with pytest.raises(DataError, match="/dev/null:0: not a regular file"):
        pipelines.load_corpus(DataConfig(source="tsv:/dev/null"))
    literal = tmp_path / "pairs[1].tsv"
    literal.write_text("".join(f"{w}\t{w.upper()}\n" for w in ("ab", "cd", "ef", "gh")))
    corpus = pipelines.load_corpus(
        DataConfig(source=f"tsv:{literal}", valid_fraction=0.0, test_fraction=0.0)
    )
    assert len(corpus.train) == 4


@pytest.mark.parametrize("protocol", ["--rest", "--grpc"])
def test_the_serving_client_without_a_server_says_so(protocol, capsys):
    import socket

    from s2s_keras.serving_client import main

    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    where = f"http://127.0.0.1:{port}" if protocol == "--rest" else f"127.0.0.1:{port}"
    assert main([protocol, where, "hello"]) == 2
    error = capsys.readouterr().err
    assert f"cannot reach {where}" in error and "is the model server running" in error
