import os
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def tiny_model():
    """Untrained but deterministic: vocab ≤ 12, 8 units, 2 layers."""
    import keras

    from s2s_keras import Seq2Seq

    keras.utils.set_random_seed(7)
    return Seq2Seq(
        list("abcdef"), ["X", "Y", "Z", "W"], embedding_size=8, hidden_units=8, num_layers=2
    )


def run_python(code: str, cwd: str) -> str:
    """Runs `code` in a fresh interpreter (a clean process: nothing imported but what it
    imports)."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH="")
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def run_cli(*args: str, cwd: str = REPO, check: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run(
        [sys.executable, "-m", "s2s_keras.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if check:
        assert result.returncode == 0, result.stderr[-3000:]
    return result
