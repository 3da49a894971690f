"""onednn_default: TensorFlow's oneDNN ops turned on for x86 CPUs where nobody chose, before
TensorFlow loads; an explicit choice, another architecture or a TensorFlow already imported
leave the environment as it is."""

import os
import subprocess
import sys

import pytest

from s2s_keras import onednn_default
from s2s_keras.onednn_default import VARIABLE, set_onednn_default


@pytest.fixture
def before_tensorflow(monkeypatch):
    """This process as before TensorFlow's import, on an x86 CPU, the variable unset."""
    monkeypatch.delitem(sys.modules, "tensorflow", raising=False)
    monkeypatch.delenv(VARIABLE, raising=False)
    monkeypatch.setattr(onednn_default.platform, "machine", lambda: "x86_64")
    return monkeypatch


def test_x86_gets_the_onednn_ops(before_tensorflow):
    assert set_onednn_default()
    assert os.environ[VARIABLE] == "1"


@pytest.mark.parametrize("chosen", ["0", "1"])
def test_an_explicit_choice_is_kept(before_tensorflow, chosen):
    before_tensorflow.setenv(VARIABLE, chosen)
    assert not set_onednn_default()
    assert os.environ[VARIABLE] == chosen


def test_other_architectures_keep_tensorflows_default(before_tensorflow):
    before_tensorflow.setattr(onednn_default.platform, "machine", lambda: "aarch64")
    assert not set_onednn_default()
    assert VARIABLE not in os.environ


def test_nothing_changes_once_tensorflow_is_imported(monkeypatch):
    import tensorflow  # noqa: F401

    monkeypatch.delenv(VARIABLE, raising=False)
    assert not set_onednn_default()
    assert VARIABLE not in os.environ


@pytest.mark.parametrize("chosen", [None, "0"])
def test_importing_the_package_first_decides_for_tensorflow(chosen):
    """In a fresh process: `import s2s_keras` before TensorFlow turns the ops on (x86), and
    `TF_ENABLE_ONEDNN_OPTS=0` keeps them off."""
    environment = {k: v for k, v in os.environ.items() if k != VARIABLE}
    if chosen is not None:
        environment[VARIABLE] = chosen
    code = "import s2s_keras.onednn_default as o; print(o.onednn_enabled())"
    done = subprocess.run(
        [sys.executable, "-c", code], env=environment, capture_output=True, text=True, check=True
    )
    x86 = onednn_default.platform.machine().lower() in ("x86_64", "amd64")
    assert done.stdout.strip() == str(chosen is None and x86)
