import os
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def pytest_collection_modifyitems(items):
    """The end-to-end runs (marked slow) first, in their order: two processes (`make test`) then
    start the longest tests early and end on short ones, each stealing the other's when idle
    (`--dist worksteal`), instead of one waiting for the other's last minute-long run."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture
def tiny_model():
    """Untrained but deterministic: vocab ≤ 12, 8 units, 2 layers."""
    import keras

    from s2s_keras import Seq2Seq

    keras.utils.set_random_seed(7)
    return Seq2Seq(
        list("abcdef"), ["X", "Y", "Z", "W"], embedding_size=8, hidden_units=8, num_layers=2
    )


def write_reversal_pairs(
    directory, count: int = 300, max_length: int = 6, alternates: bool = False
) -> str:
    """`directory/pairs.tsv`: `count` random words over "abcdef" (1 to `max_length` letters),
    each → its letters reversed and upper-cased (with `alternates`, a word of 3 letters also →
    its letters in order: a second reference). Returns the path."""
    import random

    rng = random.Random(0)
    lines = []
    for _ in range(count):
        word = "".join(rng.choice("abcdef") for _ in range(rng.randint(1, max_length)))
        lines.append(f"{word}\t{' '.join(reversed(word.upper()))}\n")
        if alternates and len(word) == 3:
            lines.append(f"{word}\t{' '.join(word.upper())}\n")
    path = os.path.join(str(directory), "pairs.tsv")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("".join(lines))
    return path


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


def cli_stdout(capsys, *args: str) -> str:
    """`s2s ARGS` in this process (`cli.main`: no new TensorFlow start, which costs seconds); it
    must succeed; its stdout."""
    from s2s_keras import cli

    capsys.readouterr()
    assert cli.main(list(args)) == 0, capsys.readouterr().err[-3000:]
    return capsys.readouterr().out
