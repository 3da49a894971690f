"""Ensembles: probabilities averaged over members, through the same inference and export code."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import cli_stdout

from s2s_keras import Seq2Seq
from s2s_keras.config import DecodeConfig, preset
from s2s_keras.decoding import greedy_search
from s2s_keras.evaluation import evaluate_language_model
from s2s_keras.inference import LabelPredictor, TextGenerator, Translator
from s2s_keras.models import Classifier, Ensemble, LanguageModel
from s2s_keras.prediction import load_predictor
from s2s_keras.text import END_ID, START_ID

SOURCES = ["abc", "fed", "a", "bbbbbb", ""]


def seq2seq(seed, **kwargs):
    keras.utils.set_random_seed(seed)
    return Seq2Seq(list("abcdef"), ["X", "Y", "Z", "W"], embedding_size=8, hidden_units=8, **kwargs)


def classifier(seed, vocabulary="abcdef", **kwargs):
    keras.utils.set_random_seed(seed)
    return Classifier(
        list(vocabulary),
        ["neg", "pos"],
        source_split="characters",
        embedding_size=8,
        hidden_units=8,
        **kwargs,
    )


def language_model(seed, words="abcdef", **kwargs):
    keras.utils.set_random_seed(seed)
    return LanguageModel(list(words), embedding_size=8, hidden_units=8, **kwargs)


@pytest.fixture(scope="module")
def members():
    # Different architectures on the same tokens: allowed.
    return [
        seq2seq(1, num_layers=2),
        seq2seq(2, num_layers=1, attention="luong_general", bidirectional=True, bridge="dense"),
    ]


def softmax(logits):
    return tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1).numpy()


def test_teacher_forced_probabilities_are_the_members_mean(members):
    ensemble = Ensemble(members)
    source_ids = ensemble.source_tokenizer.tokenize(tf.constant(SOURCES[:4]))
    target_in = tf.constant(
        [[START_ID, 4, 5], [START_ID, 6, 4], [START_ID, 5, 5], [START_ID, 7, 6]]
    )
    logits, alignment = ensemble.teacher_forced(source_ids, target_in)
    mean = np.mean([softmax(m.teacher_forced(source_ids, target_in)[0]) for m in members], axis=0)
    np.testing.assert_allclose(softmax(logits), mean, atol=1e-6)
    np.testing.assert_allclose(
        np.exp(logits.numpy()), mean, atol=1e-6
    )  # log of the mean, not logits
    assert alignment is None


def test_with_precision_copies_each_member_with_its_weights(members):
    """`models.with_precision` of an ensemble (what `s2s export --precision` exports): an
    ensemble of the members' copies, same weights, computing in the new precision."""
    from s2s_keras.models import with_precision

    copy = with_precision(Ensemble(members), "mixed_bfloat16")
    assert isinstance(copy, Ensemble) and len(copy.members) == len(members)
    for member, original in zip(copy.members, members):
        assert member.precision == "mixed_bfloat16" and original.precision == "float32"
        for a, b in zip(member.get_weights(), original.get_weights()):
            np.testing.assert_array_equal(a, b)
    source_ids = copy.source_tokenizer.tokenize(tf.constant(SOURCES[:2]))
    target_in = tf.constant([[START_ID, 4, 5], [START_ID, 6, 4]])
    bf16, _ = copy.teacher_forced(source_ids, target_in)
    exact, _ = Ensemble(members).teacher_forced(source_ids, target_in)
    np.testing.assert_allclose(softmax(bf16), softmax(exact), atol=3e-2)


def test_greedy_equals_argmax_of_the_ensembles_teacher_forced_probabilities(members):
    ensemble = Ensemble(members)
    source_ids = ensemble.source_tokenizer.tokenize(tf.constant(SOURCES[:4]))
    output_ids = greedy_search(
        ensemble.step_function(), ensemble.encode(source_ids), tf.fill([4], START_ID), END_ID, 7
    ).numpy()
    target_in = np.concatenate(
        [np.full((len(output_ids), 1), START_ID), output_ids[:, :-1]], axis=1
    )
    logits, _ = ensemble.teacher_forced(source_ids, tf.constant(target_in, tf.int32))
    real = output_ids != 0
    assert real.sum() > 4
    np.testing.assert_array_equal(np.argmax(logits.numpy(), axis=-1)[real], output_ids[real])


def test_translator_decodes_and_scores_through_the_ensemble(members):
    ensemble = Ensemble(members)
    translator = Translator(ensemble, DecodeConfig(max_length=6))
    strings = tf.constant(SOURCES)
    greedy = translator.greedy(strings, 6).numpy()
    outputs, _ = translator.beam(strings, 1, 6, 0.0, 1)
    assert (
        outputs.numpy()[:, 0].tolist() == greedy.tolist()
    )  # beam 1 is greedy, on the ensemble too
    assert greedy[-1] == b""  # an empty source still gives ""
    # Forced decoding of those outputs: each token's probability is the mean of the members'.
    targets = tf.constant([s.decode() for s in greedy[:4]])
    scored = translator.score(strings[:4], targets)
    alone = [
        Translator(m, DecodeConfig()) for m in members
    ]  # (a tf.function holds its object weakly)
    singles = [translator_i.score(strings[:4], targets) for translator_i in alone]
    token_probs = np.exp(np.stack([s["token_log_probs"].numpy() for s in singles]))
    np.testing.assert_allclose(
        np.exp(scored["token_log_probs"].numpy()), token_probs.mean(axis=0), atol=1e-5
    )
    assert "alignment" not in scored


def test_classifier_probabilities_are_the_members_mean():
    models = [classifier(1, pooling="mean"), classifier(2, pooling="last", bidirectional=True)]
    strings = tf.constant(["abc", "fed cab", ""])
    predictor = LabelPredictor(Ensemble(models), max_tokens=10)
    ensemble = predictor.classify(strings)
    alone = [
        LabelPredictor(m, max_tokens=10) for m in models
    ]  # (a tf.function holds its object weakly)
    singles = [member.classify(strings)["probabilities"].numpy() for member in alone]
    np.testing.assert_allclose(
        ensemble["probabilities"].numpy(), np.mean(singles, axis=0), atol=1e-6
    )
    best = np.array([b"neg", b"pos"])[np.mean(singles, axis=0).argmax(axis=1)]
    assert ensemble["labels"].numpy().tolist() == best.tolist()


def test_members_that_read_or_write_other_tokens_are_refused_by_name():
    with pytest.raises(ValueError, match=r"b\.keras: source_tokenizer"):
        Ensemble([classifier(1), classifier(2, vocabulary="abcdeg")], names=["a.keras", "b.keras"])
    keras.utils.set_random_seed(3)
    other_labels = Classifier(
        list("abcdef"),
        ["neg", "pos", "mixed"],
        source_split="characters",
        embedding_size=8,
        hidden_units=8,
    )
    with pytest.raises(ValueError, match=r"c: labels \['neg', 'pos', 'mixed'\]"):
        Ensemble([classifier(1), other_labels], names=["a", "c"])
    with pytest.raises(
        ValueError,
        match="all be Seq2Seq, all Classifier or all LanguageModel; got member 0: Classifier, "
        "member 1: Seq2Seq",
    ):
        Ensemble([classifier(1), seq2seq(1)])
    with pytest.raises(ValueError, match="s: Seq2Seq, lm: LanguageModel"):
        Ensemble([seq2seq(1), language_model(1)], names=["s", "lm"])
    with pytest.raises(ValueError, match="lm2: target_tokenizer"):
        Ensemble([language_model(1), language_model(2, words="abcdeg")], names=["lm1", "lm2"])
    with pytest.raises(ValueError, match="at least 2"):
        Ensemble([classifier(1)])
    keras.utils.set_random_seed(4)
    other_target = Seq2Seq(list("abcdef"), ["X", "Y", "Z"], embedding_size=8, hidden_units=8)
    with pytest.raises(ValueError, match="m2: target_tokenizer"):
        Ensemble([seq2seq(1), other_target], names=["m1", "m2"])
    with pytest.raises(ValueError, match=r"r2l: target_tokenizer \(.*direction\) differs"):
        Ensemble([seq2seq(1), seq2seq(2, reverse_target=True)], names=["l2r", "r2l"])


@pytest.mark.slow
def test_cli_evaluates_and_exports_an_ensemble_of_runs(tmp_path, capsys):
    """Two finished runs (written as `s2s train` writes them) → `s2s evaluate --run-dir A B` and
    `s2s export --run-dir A B`; the SavedModel's answers are the in-process ensemble's."""
    rows = [("abc", "X Y"), ("bad", "W X"), ("cafe", "Y Y Z"), ("fed", "Z")]
    (tmp_path / "pairs.tsv").write_text("".join(f"{s}\t{t}\n" for s, t in rows))
    run_dirs = []
    for seed, layers in ((1, 1), (2, 2)):
        run_dir = tmp_path / f"run{seed}"
        run_dir.mkdir()
        seq2seq(seed, num_layers=layers).save(run_dir / "model.keras")
        (run_dir / "config.json").write_text(_config_json(tmp_path / "pairs.tsv", layers))
        run_dirs.append(str(run_dir))
    ensemble = Ensemble([keras.saving.load_model(f"{d}/model.keras") for d in run_dirs])
    translator = Translator(ensemble, preset("tiny").decode)
    expected = translator.translate([s for s, _ in rows], beam_size=1).numpy()  # what evaluate runs
    # Untrained members: make two references the ensemble's own outputs (at least 2 of 4 exact),
    # which the first member alone decodes otherwise (checked below).
    rows[0] = (rows[0][0], expected[0].decode())
    rows[1] = (rows[1][0], expected[1].decode())
    (tmp_path / "pairs.tsv").write_text("".join(f"{s}\t{t}\n" for s, t in rows))
    # `s2s evaluate --run-dir A B`, `s2s export --run-dir A B`, `s2s predict --model A --model B`
    # (in this process: each start of TensorFlow costs seconds)
    words = [s for s, _ in rows]
    out = [
        cli_stdout(capsys, *command)
        for command in (
            ["evaluate", "--split", "test", "--beam-size", "1", "--run-dir", *run_dirs],
            ["export", "--run-dir", *run_dirs, "--export-base", str(tmp_path / "export")],
            ["predict", "--model", run_dirs[0], "--model", run_dirs[1], "--beam-size", "1", *words],
        )
    ]
    result = json.loads(out[0].splitlines()[-1])
    exact = np.mean([h.decode() == t for h, (_, t) in zip(expected, rows)])
    assert exact >= 0.5 and result["exact_match"] == pytest.approx(exact), (expected, result)
    first = Translator(ensemble.members[0], preset("tiny").decode)
    assert (
        first.translate([s for s, _ in rows[:2]], beam_size=1).numpy().tolist()
        != expected[:2].tolist()
    )
    version = out[1].strip()
    extra = sorted(p.name for p in (tmp_path / "export" / "1" / "assets.extra").iterdir())
    assert {
        "member-0.keras",
        "member-1.keras",
        "member-0.config.json",
        "member-1.config.json",
        "config.json",
    } <= set(extra) and "model.keras" not in extra
    loaded = tf.saved_model.load(version)
    served = loaded.greedy(inputs=tf.constant([s for s, _ in rows]))["outputs"].numpy()
    assert served.tolist() == expected.tolist()
    # `s2s predict --model A --model B`: the same ensemble from the run dirs.
    assert [line.split("\t")[1] for line in out[2].splitlines()] == [e.decode() for e in expected]
    with pytest.raises(FileNotFoundError, match=r"--model '.*/1': an ensemble is made of run dirs"):
        load_predictor([run_dirs[0], version])


def _config_json(tsv, num_layers):
    config = json.loads(preset("tiny").to_json())
    config["data"]["source"] = f"tsv:{tsv},valid={tsv},test={tsv}"
    config["model"]["num_layers"] = num_layers
    return json.dumps(config)


def test_an_exported_classifier_ensemble_serves_the_members_mean(tmp_path):
    import tensorflow_text  # noqa: F401

    from s2s_keras.export import export

    config = preset("tiny").override(["task=classify", "data.source_split=characters"])
    models = [classifier(1), classifier(2, num_layers=2)]
    strings = tf.constant(["abc", "fed", ""])
    alone = [LabelPredictor(m, max_tokens=config.decode.max_input_length) for m in models]
    mean = np.mean(
        [predictor.classify(strings)["probabilities"].numpy() for predictor in alone], axis=0
    )
    loaded = tf.saved_model.load(
        export(Ensemble(models), config, str(tmp_path / "export"), [config, config])
    )
    served = loaded.serving_default(inputs=strings)
    np.testing.assert_allclose(served["probabilities"].numpy(), mean, atol=1e-6)
    assert sorted(
        p.name for p in (tmp_path / "export" / "1" / "assets.extra").glob("member-*")
    ) == ["member-0.config.json", "member-0.keras", "member-1.config.json", "member-1.keras"]


@pytest.fixture(scope="module")
def language_models():
    # Different architectures on the same vocabulary: allowed.
    return [
        language_model(1, num_layers=2),
        language_model(2, num_layers=1, cell="gru", tie_embeddings=True),
    ]


def test_language_model_ensemble_forward_start_and_carried_state_average_the_members(
    language_models,
):
    ensemble = Ensemble(language_models)
    ids = tf.constant([[END_ID, 4, 5, 6, 7, 8], [END_ID, 9, 8, 7, 0, 0]])
    logits, states = ensemble.forward(ids)
    mean = np.mean([softmax(m.forward(ids)[0]) for m in language_models], axis=0)
    np.testing.assert_allclose(np.exp(logits.numpy()), mean, atol=1e-6)
    assert len(states) == 2 and len(states[0]) == 2 and len(states[1]) == 1  # each member's layers
    # start: every member's own state after all but the prompt's last token.
    state, last = ensemble.start(ids)
    assert last.numpy().tolist() == [8, 7]
    for member, member_state in zip(language_models, state):
        expected, _ = member.start(ids)
        for ours, theirs in zip(tf.nest.flatten(member_state), tf.nest.flatten(expected)):
            np.testing.assert_allclose(ours.numpy(), theirs.numpy(), atol=1e-6)
    # Carried state (truncated BPTT, contiguous text: no padding): chunks give the whole pass,
    # each member continuing its own state.
    stream = tf.constant([[END_ID, 4, 5, 6, 7, 8], [9, 8, 7, END_ID, 4, 4]])
    ensemble.carry_state(2)
    try:
        chunks = [
            ensemble({"input_ids": stream[:, :4]}).numpy(),
            ensemble({"input_ids": stream[:, 4:]}).numpy(),
        ]
    finally:
        ensemble.carry_state(None)
    np.testing.assert_allclose(
        np.concatenate(chunks, axis=1), ensemble.forward(stream)[0].numpy(), atol=1e-5
    )


def test_language_model_ensemble_generates_the_argmax_and_scores_the_mean(language_models):
    ensemble = Ensemble(language_models)
    prompt = [END_ID, 4, 5]
    state, start = ensemble.start(tf.constant([prompt]))
    generated = greedy_search(ensemble.step_function(), state, start, END_ID, 6).numpy()[0].tolist()
    logits = ensemble.forward(tf.constant([prompt + generated]))[0].numpy()[0]
    logits[:, [0, 2]] = -np.inf  # padding and <s>: never emitted
    assert logits[2 : 2 + len(generated)].argmax(axis=-1).tolist() == generated
    generator = TextGenerator(ensemble, DecodeConfig(max_length=6))
    texts = tf.constant(["a b", "f e d c", ""])
    outputs, _ = generator.beam(texts, 1, 6, 0.0, 1)
    assert (
        outputs.numpy()[:, 0].tolist() == generator.greedy(texts, 6).numpy().tolist()
    )  # beam 1 is greedy
    scored = generator.score(texts)
    alone = [
        TextGenerator(m, DecodeConfig()) for m in language_models
    ]  # (tf.function holds its object weakly)
    token_probs = np.exp([g.score(texts)["token_log_probs"].numpy() for g in alone])
    real = scored["num_tokens"].numpy()
    for row, n in enumerate(real):
        np.testing.assert_allclose(
            np.exp(scored["token_log_probs"].numpy()[row, :n]),
            token_probs.mean(axis=0)[row, :n],
            atol=1e-6,
        )


def test_language_model_ensemble_perplexity_with_carried_state(language_models):
    """`s2s evaluate`'s measure: the stream in `batch_size` rows, chunks of `bptt_length`, each
    member's state carried — equal to one pass over each row of the ensemble's mean."""
    ensemble = Ensemble(language_models)
    config = preset("tiny").override(
        ["task=lm", "data.source_split=whitespace", "data.bptt_length=3", "train.batch_size=2"]
    )
    texts = ["a b c", "d e", "a a b b", "f"]
    result = evaluate_language_model(ensemble, config, [(t, t) for t in texts])
    stream = [END_ID] + [
        i for t in texts for i in [4 + "abcdef".index(w) for w in t.split()] + [END_ID]
    ]
    steps = (len(stream) - 1) // 2
    inputs = np.reshape(stream[: 2 * steps], (2, steps))
    targets = np.reshape(stream[1 : 2 * steps + 1], (2, steps))
    log_probs = ensemble.forward(tf.constant(inputs))[0].numpy()
    nll = -np.take_along_axis(log_probs, targets[..., None], axis=-1).mean()
    assert result["tokens"] == targets.size
    np.testing.assert_allclose(result["perplexity"], np.exp(nll), rtol=1e-5)
    assert not any(m._carry for m in language_models)  # carrying turned off again


def test_an_exported_language_model_ensemble_generates_and_scores_as_in_process(
    tmp_path, language_models
):
    import tensorflow_text  # noqa: F401

    from s2s_keras.export import export

    config = preset("tiny").override(
        ["task=lm", "data.source_split=whitespace", "decode.max_length=6"]
    )
    ensemble = Ensemble(language_models)
    generator = TextGenerator(ensemble, config.decode)
    texts = tf.constant(["a b", "f e", ""])
    loaded = tf.saved_model.load(
        export(ensemble, config, str(tmp_path / "export"), [config, config])
    )
    assert (
        loaded.serving_default(inputs=texts)["outputs"].numpy().tolist()
        == generator.greedy(texts, 6).numpy().tolist()
    )
    np.testing.assert_allclose(
        loaded.score(inputs=texts)["log_prob"].numpy(),
        generator.score(texts)["log_prob"].numpy(),
        atol=1e-5,
    )
