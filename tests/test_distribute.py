"""Strategies in real processes (localhost only)."""

import json
import os

import pytest

from conftest import REPO, run_cli, run_python
from test_end_to_end import reversal_pairs

pytestmark = pytest.mark.slow


def test_mirrored_over_two_logical_cpus_trains_evaluates_exports(tmp_path):
    pairs = reversal_pairs(300, seed=3)
    (tmp_path / "train.tsv").write_text("".join(f"{s}\t{t}\n" for s, t in pairs))
    run_dir = tmp_path / "run"
    out = run_python(f"""
import numpy as np
from s2s_keras.config import preset
from s2s_keras.training import train
config = preset("tiny").override(["data.source=tsv:{tmp_path / 'train.tsv'}", "train.strategy=mirrored",
                                  "train.cpu_devices=2", "train.epochs=2", "model.attention=bahdanau",
                                  "model.bidirectional=true", "model.dropout=0.1"])
model = train(config, {str(run_dir)!r}, verbose=0)
replicas = [v.value.values for v in model.trainable_variables]
assert all(len(r) == 2 for r in replicas), [len(r) for r in replicas]
assert all(np.array_equal(r[0].numpy(), r[1].numpy()) for r in replicas)
print("replicas identical", len(replicas))
""", cwd=REPO)
    assert "replicas identical" in out
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["replicas"] == 2 and len(summary["history"]["loss"]) == 2
    result = json.loads(run_cli("evaluate", "--run-dir", str(run_dir), "--split", "valid").stdout.splitlines()[-1])
    assert result["num_words"] > 0 and 0 <= result["wer"] <= 1
    version = run_cli("export", "--run-dir", str(run_dir), "--export-base", str(tmp_path / "sm")).stdout.strip()
    assert os.path.isfile(os.path.join(version, "saved_model.pb"))
    assert run_cli("predict", "--model", version, "abc").stdout.startswith("abc\t")


def test_strategy_errors_name_what_is_missing(tmp_path):
    env_free = run_python("""
import os
os.environ.pop("TF_CONFIG", None)
from s2s_keras.distribute import get_strategy
try:
    get_strategy("multi_worker")
except ValueError as error:
    print(error)
try:
    get_strategy("tpu")
except ValueError as error:
    print(error)
import tensorflow as tf
tf.constant(1)  # the runtime has started: too late to split the CPU
try:
    get_strategy("mirrored", cpu_devices=3)
except ValueError as error:
    print(error)
""", cwd=REPO)
    assert "TF_CONFIG is not set" in env_free
    assert "--strategy tpu: no TPU found" in env_free
    assert "train.cpu_devices=3: TensorFlow has already started" in env_free
