"""Strategies in real processes (localhost only)."""

import json
import os

import pytest
from conftest import REPO, run_python
from test_end_to_end import reversal_pairs

pytestmark = pytest.mark.slow


def test_mirrored_over_two_logical_cpus_trains_evaluates_exports(tmp_path):
    pairs = reversal_pairs(300, seed=3)
    (tmp_path / "train.tsv").write_text("".join(f"{s}\t{t}\n" for s, t in pairs))
    run_dir = tmp_path / "run"
    out = run_python(
        f"""
import numpy as np
from s2s_keras.config import preset
from s2s_keras.training import train
config = preset("tiny").override(["data.source=tsv:{tmp_path / "train.tsv"}",
                                  "train.strategy=mirrored", "train.cpu_devices=2",
                                  "train.epochs=2", "model.attention=bahdanau",
                                  "model.bidirectional=true", "model.dropout=0.1"])
model = train(config, {str(run_dir)!r}, verbose=0)
replicas = [v.value.values for v in model.trainable_variables]
assert all(len(r) == 2 for r in replicas), [len(r) for r in replicas]
assert all(np.array_equal(r[0].numpy(), r[1].numpy()) for r in replicas)
print("replicas identical", len(replicas))
# The run dir serves the CLI (in this process: each start of TensorFlow costs seconds).
from s2s_keras.cli import main
run, base = {str(run_dir)!r}, {str(tmp_path / "sm")!r}
assert main(["evaluate", "--run-dir", run, "--split", "valid"]) == 0
assert main(["export", "--run-dir", run, "--export-base", base]) == 0
assert main(["predict", "--model", base + "/1", "abc"]) == 0
""",
        cwd=REPO,
    ).splitlines()
    assert any(line.startswith("replicas identical") for line in out)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["replicas"] == 2 and len(summary["history"]["loss"]) == 2
    result = json.loads(next(line for line in out if line.startswith("{")))
    assert result["num_words"] > 0 and 0 <= result["wer"] <= 1
    assert os.path.isfile(tmp_path / "sm" / "1" / "saved_model.pb")
    assert out[-1].startswith("abc\t")


def test_strategy_errors_name_what_is_missing_and_one_device_runs_undistributed(tmp_path):
    """On one device `auto` is TensorFlow's default strategy (OneDeviceStrategy's distributed
    steps made epochs 1.1-1.3x longer: `train_ab.py --lever strategy`), `one_device` is
    OneDeviceStrategy; the other strategies name what they miss."""
    env_free = run_python(
        """
import os
os.environ.pop("TF_CONFIG", None)
import tensorflow as tf
from s2s_keras.distribute import get_strategy
print("auto", get_strategy("auto") is tf.distribute.get_strategy())
print("one_device", type(get_strategy("one_device")).__name__)
try:
    get_strategy("multi_worker")
except ValueError as error:
    print(error)
try:
    get_strategy("tpu")
except ValueError as error:
    print(error)
tf.constant(1)  # the runtime has started: too late to split the CPU
try:
    get_strategy("mirrored", cpu_devices=3)
except ValueError as error:
    print(error)
""",
        cwd=REPO,
    )
    assert "auto True" in env_free and "one_device OneDeviceStrategy" in env_free
    assert "TF_CONFIG is not set" in env_free
    assert "--strategy tpu: no TPU found" in env_free
    assert "train.cpu_devices=3: TensorFlow has already started" in env_free


def free_ports(count):
    import socket

    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def start_workers(tmp_path, run_dir, *settings):
    import subprocess
    import sys

    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
    processes = []
    for index in range(2):
        env = dict(
            os.environ,
            TF_CPP_MIN_LOG_LEVEL="2",
            TF_DETERMINISTIC_OPS="1",
            TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}),
        )
        processes.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "s2s_keras.cli",
                    "train",
                    "--data",
                    f"tsv:{tmp_path / 'train.tsv'}",
                    "--preset",
                    "tiny",
                    "--set",
                    "train.epochs=2",
                    "--set",
                    "model.attention=luong_general",
                    *[arg for setting in settings for arg in ("--set", setting)],
                    "--strategy",
                    "multi_worker",
                    "--run-dir",
                    str(run_dir),
                ],
                cwd=REPO,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    return processes


def finish(processes):
    outputs = [process.communicate(timeout=600) for process in processes]
    for process, (_, stderr) in zip(processes, outputs):
        assert process.returncode == 0, stderr[-3000:]
    return outputs


def test_two_workers_train_alike_and_resume_after_one_is_killed(tmp_path):
    import signal
    import time

    import numpy as np
    from test_run_state import read_state

    pairs = reversal_pairs(700, seed=6)
    (tmp_path / "train.tsv").write_text("".join(f"{s}\t{t}\n" for s, t in pairs))
    settings = ("train.epochs=2", "train.backup_every_steps=3", "model.hidden_units=64")
    whole = tmp_path / "whole"
    outputs = finish(start_workers(tmp_path, whole, *settings))
    assert "2 replica(s)" in outputs[0][0]
    # The chief (worker 0) wrote the run dir; worker 1 only its own corner of it. Both hold
    # the same weights, and the run dir exports and serves.
    assert sorted(os.listdir(whole / "workers")) == ["worker-1"]
    summary = json.loads((whole / "summary.json").read_text())
    assert summary["replicas"] == 2 and np.isfinite(summary["history"]["val_loss"]).all()
    out = run_python(
        f"""
import keras, numpy as np
from s2s_keras.cli import main
chief = keras.saving.load_model({str(whole / "model.keras")!r}).get_weights()
other = keras.saving.load_model(
    {str(whole / "workers" / "worker-1" / "model.keras")!r}
).get_weights()
print("identical", all(np.array_equal(a, b) for a, b in zip(chief, other)))
base = {str(tmp_path / "sm")!r}
assert main(["export", "--run-dir", {str(whole)!r}, "--export-base", base]) == 0
assert main(["predict", "--model", base + "/1", "abc"]) == 0
""",
        cwd=REPO,
    ).splitlines()
    assert "identical True" in out and out[-1].startswith("abc\t")

    run_dir = tmp_path / "killed"
    processes = start_workers(tmp_path, run_dir, *settings)
    backup = run_dir / "workers" / "worker-1" / "backup" / "state.npz"
    deadline = time.time() + 600
    while time.time() < deadline and processes[1].poll() is None:
        state = read_state(backup)
        if state and state["epoch"] >= 1 and state["step"] > 0:
            break
        time.sleep(0.005)
    for process in processes:  # worker 1 dies; its peer then blocks in a collective: kill it too
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert not (run_dir / "model.keras").exists(), "finished before the kill"

    outputs = finish(start_workers(tmp_path, run_dir, *settings))
    assert "resuming from" in outputs[0][0] and "resuming from" in outputs[1][0]
    again = json.loads((run_dir / "summary.json").read_text())
    np.testing.assert_allclose(
        again["history"]["val_loss"], summary["history"]["val_loss"], rtol=1e-5
    )


X86_CPUINFO = """processor\t: 0
model name\t: AMD EPYC
flags\t\t: fpu sse avx avx2 {extra}
processor\t: 1
flags\t\t: fpu avx512_bf16
"""


@pytest.mark.parametrize(
    "text, model, flags",
    [
        (X86_CPUINFO.format(extra=""), "AMD EPYC", {"fpu", "sse", "avx", "avx2"}),
        ("processor\t: 0\nFeatures\t: fp asimd bf16 i8mm\n", "", {"fp", "asimd", "bf16", "i8mm"}),
    ],
)
def test_cpu_info_reads_the_first_cpu_of_x86_and_arm(tmp_path, text, model, flags):
    from s2s_keras.distribute import cpu_info

    (tmp_path / "cpuinfo").write_text(text)
    assert cpu_info(str(tmp_path / "cpuinfo")) == (model, flags)
    assert cpu_info(str(tmp_path / "missing")) == ("", set())


@pytest.mark.parametrize(
    "extra, chosen",
    [("", "float32"), ("avx512_bf16", "mixed_bfloat16"), ("amx_tile amx_bf16", "mixed_bfloat16")],
)
def test_auto_precision_is_bf16_only_where_the_cpu_has_native_bf16(
    tmp_path, monkeypatch, extra, chosen
):
    import tensorflow as tf

    from s2s_keras import distribute
    from s2s_keras.config import preset
    from s2s_keras.training import build_model

    (tmp_path / "cpuinfo").write_text(X86_CPUINFO.format(extra=extra))
    reader = distribute.cpu_info
    monkeypatch.setattr(distribute, "cpu_info", lambda: reader(str(tmp_path / "cpuinfo")))
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: [])
    assert distribute.resolve_precision("auto") == chosen
    for name in ("float32", "mixed_bfloat16", "mixed_float16"):
        assert distribute.resolve_precision(name) == name
    config = preset("tiny").override(["train.precision=auto", "model.hidden_units=8"])
    model = build_model(config, list("abc"), ["X", "Y"])
    assert model.precision == chosen and model.get_config()["precision"] == chosen
    assert config.train.precision == "auto"  # the config says what was asked, the model what ran
