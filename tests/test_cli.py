"""`s2s ...` arguments → the config a command runs with (no training here)."""

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
