"""Sequence → label: the Classifier on the seq2seq encoder, its inference, CLI and export."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import REPO, cli_stdout, run_cli, run_python

from s2s_keras import Seq2Seq, cli
from s2s_keras.inference import LabelPredictor
from s2s_keras.models import Classifier

IDS = tf.constant([[4, 5, 6, 0], [7, 0, 0, 0]], tf.int32)


def classifier(**kwargs):
    keras.utils.set_random_seed(3)
    options = dict(source_split="characters", embedding_size=8, hidden_units=8, num_layers=2)
    options.update(kwargs)
    return Classifier(list("abcdef"), ["neg", "pos", "neutral"], **options)


@pytest.mark.parametrize("pooling", ["last", "mean", "attention"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_every_pooling_ignores_padding_and_reloads(pooling, bidirectional, tmp_path):
    model = classifier(pooling=pooling, bidirectional=bidirectional, precision="mixed_bfloat16")
    logits = model({"source_ids": IDS}).numpy()
    assert logits.shape == (2, 3) and logits.dtype == np.float32
    padded = model({"source_ids": tf.pad(IDS, [[0, 0], [0, 3]])}).numpy()
    np.testing.assert_array_equal(logits, padded)
    model.save(tmp_path / "c.keras")
    reloaded = keras.saving.load_model(tmp_path / "c.keras")
    np.testing.assert_array_equal(reloaded({"source_ids": IDS}).numpy(), logits)
    assert reloaded.get_config() == model.get_config()


def test_mean_pooling_is_the_masked_mean_then_the_projection():
    model = classifier(pooling="mean")
    _, outputs, mask = model._run_encoder(IDS, training=False)
    outputs, mask = outputs.numpy(), mask.numpy()
    means = np.stack([outputs[row][mask[row]].mean(axis=0) for row in range(2)])
    kernel, bias = (w.numpy() for w in model.label_projection.weights)
    np.testing.assert_allclose(model({"source_ids": IDS}).numpy(), means @ kernel + bias, atol=1e-5)


def test_last_pooling_is_the_top_layers_final_h_of_the_unpadded_sequence():
    model = classifier(pooling="last", num_layers=1)
    short = model.pool(tf.constant([[7]]))[0].numpy()
    _, h, _ = model.encoder_layers[0](model.source_embedding(tf.constant([[7]])))
    np.testing.assert_allclose(short, h.numpy(), atol=1e-6)
    np.testing.assert_allclose(model.pool(IDS)[0].numpy()[1], short[0], atol=1e-6)


def test_attention_pooling_weights_sum_to_one_and_are_zero_on_padding():
    _, weights = classifier(pooling="attention").pool(IDS)
    weights = weights.numpy()
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-6)
    assert (weights[0, 3:] == 0).all() and (weights[1, 1:] == 0).all()


def test_the_encoder_is_the_seq2seq_encoder():
    """Same layers, same names: Seq2Seq encoder weights load into a Classifier and encode alike."""
    keras.utils.set_random_seed(5)
    seq2seq = Seq2Seq(
        list("abcdef"),
        ["X", "Y"],
        embedding_size=8,
        hidden_units=8,
        num_layers=2,
        bidirectional=True,
        bridge="dense",
        reverse_source=False,
    )
    model = classifier(bidirectional=True)
    encoder = ["source_embedding"] + [layer.name for layer in seq2seq.encoder_layers]
    for name in encoder:
        model.get_layer(name).set_weights(seq2seq.get_layer(name).get_weights())
    theirs = seq2seq._run_encoder(IDS, training=False)
    ours = model._run_encoder(IDS, training=False)
    np.testing.assert_allclose(ours[1].numpy(), theirs[1].numpy(), atol=1e-6)
    for a, b in zip(ours[0][-1], theirs[0][-1]):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6)


def test_label_predictor_probabilities_cut_and_hostile_inputs():
    model = classifier(pooling="mean", source_split="whitespace", max_source_tokens=3)
    predictor = LabelPredictor(model, max_tokens=3)
    result = predictor.classify(tf.constant(["a b c", "f f f f f a b c", "", "\x00 😀 \xff"]))
    probabilities = result["probabilities"].numpy()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-6)
    labels = np.array(model.labels)[probabilities.argmax(axis=1)]
    assert [label.decode() for label in result["labels"].numpy()] == labels.tolist()
    np.testing.assert_allclose(
        probabilities[0], probabilities[1], atol=1e-6
    )  # only the last 3 tokens count
    assert result["classes"].numpy().tolist()[0] == [b"neg", b"pos", b"neutral"]
    assert predictor.classify(tf.constant([], tf.string))["probabilities"].shape == (0, 3)


def sentiment_rows(count, seed):
    """Texts whose label is decided by which cue word they hold; filler words are noise."""
    rng = np.random.default_rng(seed)
    filler = ["the", "film", "was", "a", "plot", "actor", "scene", "and", "it", "very"]
    cues = {"pos": ["great", "superb", "loved"], "neg": ["awful", "boring", "hated"]}
    rows = []
    for _ in range(count):
        label = "pos" if rng.random() < 0.5 else "neg"
        words = list(rng.choice(filler, size=rng.integers(3, 9)))
        words.insert(int(rng.integers(0, len(words) + 1)), str(rng.choice(cues[label])))
        rows.append((" ".join(words), label))
    return rows


@pytest.mark.slow
def test_cli_trains_evaluates_predicts_and_exports_a_classifier(tmp_path, capsys):
    rows = sentiment_rows(1200, seed=1)
    (tmp_path / "train.tsv").write_text("".join(f"{t}\t{label}\n" for t, label in rows[:900]))
    (tmp_path / "valid.tsv").write_text("".join(f"{t}\t{label}\n" for t, label in rows[900:1000]))
    (tmp_path / "test.tsv").write_text("".join(f"{t}\t{label}\n" for t, label in rows[1000:]))
    run_dir = tmp_path / "run"
    data = (
        f"tsv:{tmp_path / 'train.tsv'},valid={tmp_path / 'valid.tsv'},test={tmp_path / 'test.tsv'}"
    )
    run_cli(
        "train",
        "--task",
        "classify",
        "--data",
        data,
        "--preset",
        "tiny",
        "--set",
        "data.source_split=whitespace",
        "--set",
        "model.pooling=attention",
        "--set",
        "model.bidirectional=true",
        "--set",
        "train.epochs=6",
        "--set",
        "train.batch_size=32",
        "--set",
        "data.max_source_tokens=8",
        "--set",
        "data.streaming=true",
        "--run-dir",
        str(run_dir),
    )
    config = json.loads((run_dir / "config.json").read_text())
    assert config["task"] == "classify"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["train_sources_cut"] == sum(len(t.split()) > 8 for t, _ in rows[:900]) > 0
    # evaluate, predict and export in this process (training runs as the CLI's own process)
    capsys.readouterr()
    assert cli.main(["evaluate", "--run-dir", str(run_dir), "--split", "test"]) == 0
    result = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert result["accuracy"] >= 0.95 and result["num_examples"] == 200
    assert sum(sum(row.values()) for row in result["confusion"].values()) == 200
    assert (
        cli.main(["predict", "--model", str(run_dir), "the film was superb", "an awful plot"]) == 0
    )
    out = capsys.readouterr().out
    assert [line.split("\t")[1] for line in out.splitlines()] == ["pos", "neg"]
    version = cli_stdout(
        capsys, "export", "--run-dir", str(run_dir), "--export-base", str(tmp_path / "export")
    ).strip()
    from test_export import audit_ops

    assert audit_ops(version) <= {"NormalizeUTF8", "CaseFoldUTF8"}, audit_ops(version)
    answer = run_python(
        f"""
import json, tensorflow as tf, tensorflow_text
loaded = tf.saved_model.load({version!r})
out = loaded.signatures["serving_default"](inputs=tf.constant(["i loved this film", "boring", ""]))
print(json.dumps({{k: v.numpy().tolist() for k, v in out.items()}}, default=lambda b: b.decode()))
""",
        cwd=REPO,
    )
    answer = json.loads(answer.splitlines()[-1])
    assert answer["labels"][:2] == ["pos", "neg"] and len(answer["probabilities"]) == 3


def test_a_label_only_in_the_test_split_is_an_error(tmp_path):
    (tmp_path / "train.tsv").write_text("good film\tpos\nbad film\tneg\n")
    (tmp_path / "test.tsv").write_text("fine film\tmixed\n")
    result = run_cli(
        "train",
        "--task",
        "classify",
        "--preset",
        "tiny",
        "--set",
        "data.source_split=whitespace",
        "--data",
        f"tsv:{tmp_path / 'train.tsv'},test={tmp_path / 'test.tsv'}",
        "--run-dir",
        str(tmp_path / "run"),
        check=False,
    )
    assert result.returncode == 2 and "['mixed'] of the test split never occur" in result.stderr
