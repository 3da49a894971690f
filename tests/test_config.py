import pytest

from s2s_keras.config import PRESETS, Config, ConfigError, preset


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_json_round_trip_is_identity(name):
    config = preset(name)
    assert Config.from_json(config.to_json()) == config


def test_override_parses_against_field_types():
    config = preset("small").override(["model.hidden_units=512", "model.num_layers=3",
                                       "train.epochs=7", "train.batch_size=64",
                                       "train.learning_rate=0.01", "model.embedding_size=32",
                                       "data.keep_stress=true", "data.source=tsv:x.tsv"])
    assert (config.model.hidden_units, config.model.num_layers, config.model.embedding_size) == (512, 3, 32)
    assert (config.train.epochs, config.train.batch_size, config.train.learning_rate) == (7, 64, 0.01)
    assert config.data.keep_stress is True and config.data.source == "tsv:x.tsv"
    assert Config.from_json(config.to_json()) == config


@pytest.mark.parametrize("assignment, message", [
    ("model.hidden_units=abc", "model.hidden_units: expected int, got 'abc'"),
    ("model.hidden_units=0", "model.hidden_units: expected an integer >= 1, got 0"),
    ("model.units=5", "unknown key 'model.units'"),
    ("nothing.x=1", "unknown section 'nothing'"),
    ("train.epochs", "expects section.key=value"),
    ("data.source_split=words", "data.source_split: expected one of"),
    ("model.dropout=1.5", "model.dropout: expected a rate in [0, 1), got 1.5"),
    ("train.strategy=tpu", "train.strategy: expected one of"),
])
def test_bad_values_name_the_field(assignment, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        preset("tiny").override([assignment])


def test_unknown_preset_and_keys_in_json():
    with pytest.raises(ConfigError, match="unknown preset 'huge'"):
        preset("huge")
    values = preset("tiny").to_dict()
    values["model"]["colour"] = "red"
    with pytest.raises(ConfigError, match="colour"):
        Config.from_dict(values)
