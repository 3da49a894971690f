import pytest

from s2s_keras.config import PRESETS, Config, ConfigError, preset


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_json_round_trip_is_identity(name):
    config = preset(name)
    assert Config.from_json(config.to_json()) == config


def test_override_parses_against_field_types():
    config = preset("lstm").override(
        [
            "model.hidden_units=512",
            "model.num_layers=3",
            "train.epochs=7",
            "train.batch_size=64",
            "train.learning_rate=0.01",
            "model.embedding_size=32",
            "data.keep_stress=true",
            "data.source=tsv:x.tsv",
        ]
    )
    assert (config.model.hidden_units, config.model.num_layers, config.model.embedding_size) == (
        512,
        3,
        32,
    )
    assert (config.train.epochs, config.train.batch_size, config.train.learning_rate) == (
        7,
        64,
        0.01,
    )
    assert config.data.keep_stress is True and config.data.source == "tsv:x.tsv"
    assert Config.from_json(config.to_json()) == config


@pytest.mark.parametrize(
    "assignment, message",
    [
        ("model.hidden_units=abc", "model.hidden_units: expected int, got 'abc'"),
        ("model.hidden_units=0", "model.hidden_units: expected an integer >= 1, got 0"),
        ("model.units=5", "unknown key 'model.units'"),
        ("nothing.x=1", "unknown section 'nothing'"),
        ("train.epochs", "expects section.key=value"),
        ("data.source_split=words", "data.source_split: expected one of"),
        ("model.dropout=1.5", "model.dropout: expected a rate in [0, 1), got 1.5"),
        ("train.strategy=parameter_server", "train.strategy: expected one of"),
    ],
)
def test_bad_values_name_the_field(assignment, message):
    with pytest.raises(
        ConfigError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")
    ):
        preset("tiny").override([assignment])


def test_unknown_preset_and_keys_in_json():
    with pytest.raises(ConfigError, match="unknown preset 'huge'"):
        preset("huge")
    values = preset("tiny").to_dict()
    values["model"]["colour"] = "red"
    with pytest.raises(ConfigError, match="colour"):
        Config.from_dict(values)


def test_paper_and_attention_presets():
    sutskever, attention = preset("sutskever"), preset("attention")
    assert sutskever.model.reverse_source and sutskever.model.init_scale == 0.08
    assert (sutskever.train.optimizer, sutskever.train.lr_schedule, sutskever.train.clip_norm) == (
        "sgd",
        "halving",
        5.0,
    )
    assert attention.model.bidirectional and attention.model.attention != "none"
    assert attention.train.label_smoothing > 0


@pytest.mark.parametrize(
    "assignments, message",
    [
        (["model.cell=transformer"], "model.cell: expected one of"),
        (["decode.rescore_weight=1.5"], "decode.rescore_weight: expected a number in [0, 1]"),
        (["model.attention=multihead"], "model.attention: expected one of"),
        (["model.bridge=zero"], "model.bridge: expected copy or dense when model.attention=none"),
        (
            ["model.bidirectional=true", "model.bridge=dense", "model.attention=luong_dot"],
            "model.attention: expected luong_general or bahdanau when the encoder outputs "
            "512 features",
        ),
        (
            ["model.bidirectional=true", "model.hidden_units=33"],
            "model.hidden_units: expected an even number",
        ),
        (
            ["model.tie_embeddings=true"],
            "model.tie_embeddings: expected model.embedding_size (128) == model.hidden_units",
        ),
        (
            ["model.encoder_num_layers=3"],
            "model.bridge: expected dense or zero when model.encoder_num_layers (3) != "
            "model.num_layers (2)",
        ),
        (
            ["model.bidirectional=true", "model.encoder_units=64"],
            "model.encoder_units: expected 128 (model.hidden_units over the directions) or 0 "
            "with model.bridge=copy, or model.bridge=dense",
        ),
        (
            ["model.bridge=dense", "model.encoder_units=128", "model.attention=luong_dot"],
            "model.attention: expected luong_general or bahdanau when the encoder outputs "
            "128 features",
        ),
        (["train.optimizer=adagrad"], "train.optimizer: expected one of"),
        (["train.label_smoothing=1"], "train.label_smoothing: expected a rate in [0, 1)"),
    ],
)
def test_model_family_options_are_validated(assignments, message):
    with pytest.raises(
        ConfigError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")
    ):
        preset("lstm").override(assignments)


@pytest.mark.parametrize(
    "assignments, message",
    [
        (["task=translate"], "task: expected one of"),
        (
            ["task=classify", "model.attention=bahdanau"],
            "model.attention: expected none with task=classify",
        ),
        (
            ["task=classify", "train.label_smoothing=0.1"],
            "train.label_smoothing: expected 0 with task=classify",
        ),
        (
            ["task=lm", "model.bidirectional=true"],
            "model.bidirectional: expected false with task=lm",
        ),
        (
            ["task=lm", "data.bptt_length=20", "train.strategy=mirrored"],
            "auto or one_device with data.bptt_length",
        ),
        (
            ["task=classify", "model.encoder_units=32"],
            "model.encoder_units: expected 0 with task=classify .its model has no use for it.",
        ),
        (
            ["task=lm", "model.encoder_num_layers=3", "model.bridge=dense"],
            "model.encoder_num_layers: expected 0 with task=lm",
        ),
        (
            ["task=lm", "model.reverse_target=true"],
            "model.reverse_target: expected False with task=lm",
        ),
        (["model.pooling=max"], "model.pooling: expected one of"),
    ],
)
def test_task_options_are_validated(assignments, message):
    with pytest.raises(ConfigError, match=message):
        preset("tiny").override(assignments)


def test_task_presets_and_round_trip():
    for name, task in (
        ("sentiment", "classify"),
        ("sentiment_rt", "classify"),
        ("ptb_small", "lm"),
        ("ptb_medium", "lm"),
    ):
        config = preset(name)
        assert config.task == task and Config.from_json(config.to_json()) == config
    assert preset("tiny").override(["task=lm"]).task == "lm"
