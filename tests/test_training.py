import collections

import numpy as np
import pytest
from conftest import write_reversal_pairs

from s2s_keras.config import ConfigError, preset
from s2s_keras.training import learning_rate_schedule


def test_halving_schedule_is_constant_then_halves_every_interval():
    train = (
        preset("sutskever")
        .override(
            [
                "train.learning_rate=0.8",
                "train.halving_start_epoch=5",
                "train.halving_every_epochs=0.5",
                "train.epochs=8",
            ]
        )
        .train
    )
    schedule = learning_rate_schedule(train, steps_per_epoch=10)
    rates = [float(schedule(step)) for step in (0, 49, 50, 54, 55, 60, 79)]
    # 50 updates = 5 epochs done: halved from update 50 on, then after every 5 more.
    np.testing.assert_allclose(rates, [0.8, 0.8, 0.4, 0.4, 0.2, 0.1, 0.8 / 2**6])


@pytest.mark.parametrize("name", ["cosine", "constant"])
def test_other_schedules(name):
    train = preset("small").override([f"train.lr_schedule={name}", "train.epochs=2"]).train
    schedule = learning_rate_schedule(train, steps_per_epoch=10)
    if name == "constant":
        assert schedule == train.learning_rate
    else:
        assert float(schedule(0)) == pytest.approx(train.learning_rate)
        assert float(schedule(20)) == pytest.approx(0.05 * train.learning_rate)


def test_cosine_warmup_rises_linearly_then_decays_over_the_rest():
    train = preset("small").override(["train.epochs=3", "train.warmup_epochs=0.5"]).train
    rate = train.learning_rate
    schedule = learning_rate_schedule(train, steps_per_epoch=10)  # 5 warm-up updates of 30
    rates = [float(schedule(step)) for step in (0, 1, 4, 5, 30)]
    np.testing.assert_allclose(rates[:3], [rate / 5, rate / 5 + (rate - rate / 5) / 5, rate * 0.84])
    np.testing.assert_allclose(rates[3:], [rate, 0.05 * rate], rtol=1e-6)
    middle = float(schedule(5 + 25 // 2))  # half of the 25 decay updates done
    assert middle == pytest.approx(rate * (0.05 + 0.95 * 0.5 * (1 + np.cos(np.pi * 12 / 25))))


@pytest.mark.parametrize(
    "assignments, message",
    [
        (
            ["train.lr_schedule=halving", "train.warmup_epochs=1"],
            "train.warmup_epochs: expected 0 with train.lr_schedule=halving",
        ),
        (
            ["train.epochs=2", "train.warmup_epochs=2"],
            r"train.warmup_epochs: expected fewer than train.epochs \(2\)",
        ),
        (["train.warmup_epochs=-1"], "train.warmup_epochs: expected"),
    ],
)
def test_warmup_is_validated(assignments, message):
    with pytest.raises(ConfigError, match=message):
        preset("small").override(assignments)


def test_mixed_float16_trains_with_loss_scaling_and_float32_logits():
    import keras
    import tensorflow as tf

    from s2s_keras.training import build_model, compile_model

    config = preset("tiny").override(
        ["train.precision=mixed_float16", "model.attention=luong_general"]
    )
    model = build_model(config, list("abcdef"), ["X", "Y", "Z"])
    compile_model(model, config, steps_per_epoch=1)
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert model.attention_decoder.compute_dtype == "float16"
    inputs = {"source_ids": tf.constant([[4, 5, 0]]), "target_in_ids": tf.constant([[2, 4]])}
    history = model.fit(inputs, tf.constant([[4, 3]]), epochs=2, verbose=0)
    assert all(np.isfinite(history.history["loss"]))
    assert model(inputs).dtype == tf.float32


def write_pairs(tmp_path, count: int = 300, bad_line: bool = False) -> str:
    path = write_reversal_pairs(tmp_path, count)
    if bad_line:
        with open(path, encoding="utf-8") as handle:
            lines = handle.readlines()
        lines.insert(7, "no tab\n")
        with open(path, "w", encoding="utf-8") as handle:
            handle.write("".join(lines))
    return path


@pytest.mark.parametrize("splits", [("characters", "whitespace"), ("wordpiece", "characters")])
def test_streamed_vocabulary_pass_equals_the_in_memory_one(tmp_path, splits):
    from s2s_keras.training import load_data

    config = preset("tiny").override(
        [
            f"data.source=tsv:{write_pairs(tmp_path)}",
            f"data.source_split={splits[0]}",
            f"data.target_split={splits[1]}",
            "data.vocabulary_size=30",
        ]
    )
    corpus, *in_memory = load_data(config)
    streamed_corpus, *streamed = load_data(config.override(["data.streaming=true"]))
    assert streamed == in_memory
    assert len(streamed_corpus.train) == len(corpus.train) and streamed_corpus.valid == corpus.valid
    source_vocabulary, target_vocabulary, lengths = streamed
    if splits[0] == "characters":
        counts = collections.Counter(c for s, _ in corpus.train for c in s)
        assert source_vocabulary == sorted(counts, key=lambda c: (-counts[c], c))
        assert sum(lengths.values()) == len(corpus.train)
        assert lengths == collections.Counter(
            max(len(s), len(t.split()) + 1) for s, t in corpus.train
        )
    else:
        assert lengths is None  # measured after the wordpiece vocabulary is learned


def test_streamed_training_matches_in_memory_and_logs_padding_per_epoch(tmp_path):
    import csv
    import json

    from s2s_keras.training import train

    config = preset("tiny").override(
        [
            f"data.source=tsv:{write_pairs(tmp_path, bad_line=True)}",
            "data.on_bad_line=skip",
            "train.epochs=2",
            "train.batch_size=16",
        ]
    )
    summaries = {}
    for mode in ("false", "true"):
        run_dir = tmp_path / f"run-{mode}"
        train(config.override([f"data.streaming={mode}"]), str(run_dir), verbose=0)
        with open(run_dir / "history.csv") as handle:
            rows = list(csv.DictReader(handle))
        with open(run_dir / "summary.json") as handle:
            summaries[mode] = json.load(handle)
        padding = [float(row["padding_fraction"]) for row in rows]
        assert len(padding) == 2 and all(0.0 < value < 0.5 for value in padding)
        assert summaries[mode]["history"]["padding_fraction"] == pytest.approx(padding)
        assert summaries[mode]["train_padding_fraction"] == pytest.approx(sum(padding) / 2)
    streamed, in_memory = summaries["true"], summaries["false"]
    assert streamed["streamed"] and not in_memory["streamed"]
    assert (
        streamed["pairs"] == in_memory["pairs"]
        and streamed["skipped_lines"] == in_memory["skipped_lines"] == 1
    )
    # The same examples in other batches (a stream is arranged per example through its shuffle
    # window, a list per batch: `data._table_batches`), so other numbers; both learn alike.
    for summary in (streamed, in_memory):
        loss = summary["history"]["loss"]
        assert loss[1] < loss[0]
    assert streamed["history"]["val_loss"][1] == pytest.approx(
        in_memory["history"]["val_loss"][1], rel=0.05
    )


def test_init_from_starts_from_the_pretrained_vocabularies_and_weights(tmp_path):
    import json

    import keras
    import tensorflow as tf

    from s2s_keras.fine_tuning import copy_weights, load_pretrained
    from s2s_keras.training import build_model, train

    pretrained_dir = tmp_path / "pretrained"
    pretrained = train(
        preset("tiny").override(
            [f"data.source=tsv:{write_pairs(tmp_path)}", "train.epochs=6", "train.batch_size=16"]
        ),
        str(pretrained_dir),
        verbose=0,
    )
    # New data with a letter the pretrained vocabulary lacks ("g" maps to [UNK]).
    rng = np.random.default_rng(1)
    words = ["".join(rng.choice(list("abcdefg"), size=rng.integers(2, 7))) for _ in range(150)]
    (tmp_path / "new.tsv").write_text(
        "".join(f"{w}\t{' '.join(reversed(w.upper()))}\n" for w in words)
    )
    config = preset("tiny").override(
        [
            f"data.source=tsv:{tmp_path / 'new.tsv'}",
            "train.epochs=1",
            "train.batch_size=16",
            f"train.init_from={pretrained_dir}",
        ]
    )
    loaded = load_pretrained(config)
    model = build_model(config, loaded.source_vocabulary, loaded.target_vocabulary)
    copy_weights(loaded, model, "pretrained")
    inputs = {"source_ids": tf.constant([[4, 5, 6, 0]]), "target_in_ids": tf.constant([[2, 4, 5]])}
    np.testing.assert_array_equal(
        model(inputs), pretrained(inputs)
    )  # the same function before training

    tuned = train(config, str(tmp_path / "tuned"), verbose=0)
    assert (
        tuned.source_vocabulary == pretrained.source_vocabulary
    )  # not relearned from the new data
    assert "g" not in tuned.source_vocabulary
    scratch_dir = tmp_path / "scratch"
    train(config.override(["train.init_from="]), str(scratch_dir), verbose=0)
    losses = [
        json.loads((path / "summary.json").read_text())["history"]["val_loss"][0]
        for path in (tmp_path / "tuned", scratch_dir)
    ]
    assert losses[0] < 0.7 * losses[1], (
        losses
    )  # one epoch from the pretrained weights beats one from scratch
    assert isinstance(keras.saving.load_model(tmp_path / "tuned" / "model.keras"), type(pretrained))


def test_init_from_names_what_does_not_fit(tmp_path):
    from s2s_keras.fine_tuning import load_pretrained
    from s2s_keras.training import train

    pretrained_dir = tmp_path / "pretrained"
    data = f"data.source=tsv:{write_pairs(tmp_path, count=60)}"
    train(preset("tiny").override([data, "train.epochs=1"]), str(pretrained_dir), verbose=0)
    base = preset("tiny").override([data, f"train.init_from={pretrained_dir}"])
    with pytest.raises(
        ValueError,
        match=r"model\.hidden_units: 16 here, 32 in the pretrained(.|\n)*"
        r"model\.reverse_source: False here, True",
    ):
        load_pretrained(base.override(["model.reverse_source=false", "model.hidden_units=16"]))
    with pytest.raises(ValueError, match="data.source_split: 'whitespace' here, 'characters'"):
        load_pretrained(base.override(["data.source_split=whitespace"]))
    with pytest.raises(ValueError, match="is a Seq2Seq; task lm needs a LanguageModel"):
        load_pretrained(base.override(["task=lm"]))
    with pytest.raises(
        ValueError, match="is a Seq2Seq; task classify needs a Classifier or a LanguageModel"
    ):
        load_pretrained(base.override(["task=classify"]))
    with pytest.raises(
        FileNotFoundError, match="nowhere not found \\(a finished run dir or a .keras file\\)"
    ):
        load_pretrained(base.override([f"train.init_from={tmp_path / 'nowhere'}"]))


WORDS = ["good", "bad", "film", "plot", "dull", "fine"]


def write_sentences(tmp_path, count: int = 60, unique_words: bool = False) -> str:
    """text<TAB>label lines of WORDS (a language model reads the text); with `unique_words`
    each text also has a word of its own (`w<line>`)."""
    import random

    rng = random.Random(0)
    lines = []
    for index in range(count):
        words = [rng.choice(WORDS) for _ in range(rng.randint(1, 5))] + (
            [f"w{index}"] if unique_words else []
        )
        lines.append(
            f"{' '.join(words)}\t{'pos' if words.count('good') >= words.count('bad') else 'neg'}\n"
        )
    path = tmp_path / "sentences.tsv"
    path.write_text("".join(lines))
    return str(path)


def language_model_run(tmp_path, data: str, *overrides) -> tuple:
    """`(model, run dir)`: a language model over WORDS but "fine" (untrained: its weights are
    its initialization), saved as a finished run (config.json + model.keras)."""
    from s2s_keras.run_dir import CONFIG_FILE, MODEL_FILE
    from s2s_keras.training import build_model

    config = preset("tiny").override([data, "task=lm", "data.source_split=whitespace", *overrides])
    model = build_model(config, WORDS[:-1], None)
    run_dir = tmp_path / "lm"
    run_dir.mkdir()
    (run_dir / CONFIG_FILE).write_text(config.to_json())
    model.save(run_dir / MODEL_FILE)
    return model, run_dir


def classifier_from(data: str, run_dir, *overrides):
    """A tiny bidirectional classifier's config that starts from the language model in `run_dir`."""
    return preset("tiny").override(
        [
            data,
            "task=classify",
            "data.source_split=whitespace",
            "model.bidirectional=true",
            "model.reverse_source=false",
            f"train.init_from={run_dir}",
            *overrides,
        ]
    )


@pytest.mark.parametrize(
    "bidirectional, shared",
    [
        (True, []),
        (False, ["model.num_layers=2"]),
        (True, ["model.tie_embeddings=true", "model.embedding_size=32"]),
    ],
)
def test_init_from_a_language_model_gives_the_classifier_its_embedding_and_layers(
    tmp_path, bidirectional, shared
):
    import tensorflow as tf

    from s2s_keras.fine_tuning import copy_weights, load_pretrained, pretrained_vocabularies
    from s2s_keras.training import build_model

    data = f"data.source=tsv:{write_sentences(tmp_path)}"
    language_model, run_dir = language_model_run(tmp_path, data, *shared)
    config = classifier_from(data, run_dir, f"model.bidirectional={bidirectional}", *shared)
    loaded = load_pretrained(config, ["neg", "pos"])
    classifier = build_model(config, *pretrained_vocabularies(config, loaded, ["neg", "pos"]))
    log = copy_weights(loaded, classifier, "the language model")
    assert classifier.source_vocabulary == language_model.vocabulary
    np.testing.assert_array_equal(
        classifier.source_embedding.embeddings, language_model.target_embedding.embeddings
    )
    ids = tf.constant([[4, 5, 6, 7], [8, 4, 0, 0]])
    mask = ids != 0
    ours, theirs = classifier.source_embedding(ids), language_model.target_embedding(ids)
    units = config.model.hidden_units
    for layer, language_model_layer in zip(
        classifier.encoder_layers, language_model.decoder_layers, strict=True
    ):
        ours, theirs = layer(ours, mask=mask)[0], language_model_layer(theirs, mask=mask)[0]
        # At real tokens (padded steps differ: zeros here, the last output there); a bidirectional
        # layer's outputs are the forward direction's, then the backward one's.
        np.testing.assert_allclose(
            np.asarray(ours)[mask][:, :units], np.asarray(theirs)[mask], rtol=1e-6, atol=1e-6
        )
    if bidirectional:
        backward = classifier.encoder_layers[0].backward_layer
        assert not np.allclose(backward.cell.kernel, language_model.decoder_layers[0].cell.kernel)
        assert backward.path in log.partition("fresh: ")[2]
    assert "label_projection" in log.partition("fresh: ")[2]
    assert tuple(classifier.label_projection.kernel.shape) == (
        units * (2 if bidirectional else 1),
        2,
    )


def test_a_classifier_trains_from_a_language_model_run(tmp_path, capsys):
    from s2s_keras.training import train

    data = f"data.source=tsv:{write_sentences(tmp_path)}"
    language_model, run_dir = language_model_run(tmp_path, data)
    classifier = train(
        classifier_from(data, run_dir, "train.epochs=1", "train.batch_size=16"),
        str(tmp_path / "classifier"),
        verbose=1,
    )
    log = capsys.readouterr().out
    assert classifier.source_vocabulary == language_model.vocabulary and classifier.labels == [
        "neg",
        "pos",
    ]
    assert "(a LanguageModel): its vocabulary; text tokens unknown to it: " in log
    assert "(0.00%)" not in log  # "fine" is not in the language model's vocabulary
    assert (
        "copied target_embedding → source_embedding, "
        "decoder_lstm_0 → encoder_bilstm_0/forward_encoder_lstm_0; "
        "fresh: encoder_bilstm_0/backward_encoder_lstm_0/lstm_cell, label_projection"
    ) in log


def test_init_from_a_language_model_names_what_does_not_fit(tmp_path):
    from s2s_keras.fine_tuning import load_pretrained

    data = f"data.source=tsv:{write_sentences(tmp_path)}"
    _, run_dir = language_model_run(tmp_path, data)
    base = classifier_from(data, run_dir)
    with pytest.raises(
        ValueError,
        match=r"(?s)model\.hidden_units: 16 here, 32 in the pretrained model.*"
        r"model\.reverse_source: True here, False.*"
        r"data\.source_split: 'characters' here, 'whitespace'.*"
        r"data\.source_lowercase: False here, True.*"
        r"data\.seed, data\.valid_fraction, data\.test_fraction: "
        r"1234, 0\.1, 0\.05 here, 1234, 0\.05, 0\.05",
    ):
        load_pretrained(
            base.override(
                [
                    "model.hidden_units=16",
                    "model.reverse_source=true",
                    "data.source_split=characters",
                    "data.source_lowercase=false",
                    "data.valid_fraction=0.1",
                ]
            )
        )
    with pytest.raises(
        ValueError,
        match=r"(?s)model\.num_layers: 2 here, 1.*"
        r"model\.bidirectional with model\.num_layers 2",
    ):
        load_pretrained(base.override(["model.num_layers=2"]))
    with pytest.raises(ValueError, match="is a LanguageModel; task seq2seq needs a Seq2Seq"):
        load_pretrained(base.override(["task=seq2seq"]))
    # Another seed is another split: only a run on another data.source may differ.
    with pytest.raises(ValueError, match=r"data\.seed, .*: 7, 0\.05, 0\.05 here, 1234"):
        load_pretrained(base.override(["data.seed=7"]))
    load_pretrained(
        base.override(
            [
                "data.valid_fraction=0.01",
                "model.bidirectional=false",
                "model.pooling=last",
                "model.learn_initial_state=true",
                "model.dropout=0.5",
            ]
        )
    )


def test_a_language_model_reads_the_text_of_the_training_split_only(tmp_path):
    from s2s_keras.text import PAD_ID, UNK_ID
    from s2s_keras.training import build_model, datasets, load_data

    data = f"data.source=tsv:{write_sentences(tmp_path, count=100, unique_words=True)}"
    config = preset("tiny").override([data, "task=lm", "data.source_split=whitespace"])
    corpus, vocabulary, _, _ = load_data(config)
    classifier_corpus, *_ = load_data(config.override(["task=classify"]))
    assert [corpus.split(name) for name in ("train", "valid", "test")] == [
        classifier_corpus.split(name) for name in ("train", "valid", "test")
    ]
    assert corpus.valid and corpus.test
    # Every text has a word of its own: a valid/test text's is neither in the vocabulary nor
    # trained on.
    assert set(vocabulary) == {word for text, _ in corpus.train for word in text.split()}
    targets = np.concatenate(
        [
            np.ravel(batch)
            for _, batch in datasets(config, corpus, build_model(config, vocabulary, None)).split(
                corpus.train
            )
        ]
    )
    targets = targets[targets != PAD_ID]
    assert UNK_ID not in targets and len(targets) == sum(
        len(text.split()) + 1 for text, _ in corpus.train
    )
