"""`s2s ...` arguments → the config a command runs with (no training here)."""

import numpy as np
import pytest

from s2s_keras.cli import _config, build_parser
from s2s_keras.config import ConfigError


def config_of(*argv):
    return _config(build_parser().parse_args(["train", *argv, "--run-dir", "unused"]))


def test_shortcut_flags_are_config_overrides():
    config = config_of(
        "--preset",
        "tiny",
        "--task",
        "lm",
        "--data",
        "ptb",
        "--max-pairs",
        "50",
        "--precision",
        "float32",
        "--strategy",
        "one_device",
        "--set",
        "data.bptt_length=5",
    )
    assert (config.task, config.data.source, config.data.max_pairs, config.data.bptt_length) == (
        "lm",
        "ptb",
        50,
        5,
    )
    assert (config.train.precision, config.train.strategy) == ("float32", "one_device")
    assert config_of("--preset", "sentiment").task == "classify"


def test_bad_flag_values_fail_naming_the_field_or_the_choices():
    with pytest.raises(ConfigError, match="data.max_pairs"):
        config_of("--max-pairs", "-1")
    with pytest.raises(SystemExit):
        config_of("--task", "translate")


def test_the_command_answers_help_without_importing_tensorflow():
    from conftest import REPO, run_python

    code = (
        "import sys, s2s_keras_cli\n"
        "try:\n"
        "    s2s_keras_cli.main(['--help'])\n"
        "except SystemExit as stop:\n"
        "    assert stop.code == 0\n"
        "heavy = [m for m in ('tensorflow', 'keras', 's2s_keras') if m in sys.modules]\n"
        "print('imported', heavy)\n"
    )
    output = run_python(code, REPO)
    assert "train a model; writes a run directory" in output
    assert output.strip().endswith("imported []")


def test_the_commands_of_the_help_are_the_commands_that_run():
    from s2s_keras_cli import COMMANDS

    subparsers = next(a for a in build_parser()._actions if a.dest == "command")
    assert list(subparsers.choices) == list(COMMANDS)


# Lines TensorFlow 2.21 writes on a CPU-only machine, as they come.
START_UP = [
    b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n",
    b"I0000 00:00:1796121362.377179   24242 port.cc:153] oneDNN custom operations are on.\n",
    b"I0000 00:00:1796121362.377539   24242 cudart_stub.cc:31] Could not find cuda drivers\n",
    b"To enable the following instructions: AVX2 AVX512F AVX512_VNNI AVX512_BF16 FMA, in other "
    b"operations, rebuild TensorFlow with the appropriate compiler flags.\n",
    b"E0000 00:00:1796121367.156561   24242 cuda_platform.cc:52] failed call to cuInit: INTERNAL\n",
    b"E0000 00:00:1796121368.051579   24242 util.cc:131] oneDNN supports DT_INT64 only on "
    b"platforms with AVX-512. Falling back to the default Eigen-based implementation\n",
    b"E0000 00:00:1796121812.895019   26318 util.cc:131] oneDNN supports DT_BOOL only on "
    b"platforms with AVX-512. Falling back to the default Eigen-based implementation\n",
    b"W0000 00:00:1796121368.598946   24242 dataset.cc:997] Input of GeneratorDatasetOp::Dataset "
    b"will not be optimized\n",
]
KEPT = [
    b"s2s train: error: data.txt:3: expected a tab\n",
    b"Traceback (most recent call last):\n",
    b"UserWarning: something of Keras'\n",
    b"E0000 00:00:1796121368.051579   24242 op_kernel.cc:1857] OP_REQUIRES failed: OOM\n",
    b"F0000 00:00:1796121368.051579   24242 tensor.cc:12] Check failed: shape\n",
]


def test_the_command_drops_tensorflow_start_up_lines_and_keeps_the_rest():
    from s2s_keras_cli import shown

    assert [line for line in START_UP if shown(line)] == []
    assert [line for line in KEPT if shown(line)] == KEPT


def test_an_error_reaches_the_terminal_without_tensorflow_lines(tmp_path):
    import subprocess
    import sys

    from conftest import REPO

    result = subprocess.run(
        [sys.executable, "-m", "s2s_keras_cli", "train", "--data", "tsv:missing.tsv"]
        + ["--preset", "tiny", "--run-dir", str(tmp_path / "run")],
        cwd=tmp_path,
        env={k: v for k, v in __import__("os").environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
        | {"PYTHONPATH": REPO},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2
    assert result.stderr == "s2s train: error: missing.tsv:0: file not found\n"


def test_export_precision_exports_the_weights_computing_in_that_precision(tmp_path, capsys):
    """`s2s export --precision float32` of a bf16 run: the SavedModel answers as the same
    weights computing in float32 (`models.with_precision`), not as the run computes."""
    import keras
    import tensorflow as tf
    from conftest import cli_stdout

    from s2s_keras import Seq2Seq
    from s2s_keras.config import preset
    from s2s_keras.export import load_saved_model
    from s2s_keras.inference import Translator
    from s2s_keras.models import with_precision

    keras.utils.set_random_seed(5)
    model = Seq2Seq(
        list("abcde"),
        ["X", "Y", "Z"],
        embedding_size=8,
        hidden_units=8,
        num_layers=1,
        precision="mixed_bfloat16",
    )
    model.set_weights([4 * w for w in model.get_weights()])  # peaked: bf16 rounding shows
    run = tmp_path / "run"
    run.mkdir()
    model.save(run / "model.keras")
    (run / "config.json").write_text(preset("tiny").to_json())
    base = str(tmp_path / "exports")
    argv = ("export", "--run-dir", str(run), "--export-base", base, "--precision", "float32")
    loaded = load_saved_model(cli_stdout(capsys, *argv).strip())
    words, targets = tf.constant(["abc", "bad", "cede", "e"]), tf.fill([4], "X Y Z")
    served = loaded.score(sources=words, targets=targets)["log_prob"].numpy()
    decode = preset("tiny").decode
    as_float32 = Translator(with_precision(model, "float32"), decode)
    as_trained = Translator(model, decode)  # (a bound tf.function keeps only a weak reference)
    float32 = as_float32.score(words, targets)["log_prob"].numpy()
    np.testing.assert_allclose(served, float32, rtol=0, atol=1e-5)
    trained = as_trained.score(words, targets)["log_prob"].numpy()
    assert np.max(np.abs(served - trained)) > 1e-3  # bf16 arithmetic answers otherwise
    greedy = loaded.greedy(inputs=words)["outputs"].numpy().tolist()
    assert greedy == as_float32.translate(words, 1).numpy().tolist()
