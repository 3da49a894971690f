"""Inference objects: a right-to-left model's decoding and scores, n-best reranking."""

import json
import os
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import cli_stdout

from s2s_keras import Seq2Seq, cli
from s2s_keras.config import ConfigError, DecodeConfig, preset
from s2s_keras.export import WARMUP_FILE, load_saved_model
from s2s_keras.inference import Reranker, Translator
from s2s_keras.prediction import load_predictor
from s2s_keras.run_dir import rescore_dirs
from s2s_keras.tasks import get_task

SOURCES = ["abc", "fed", "a", "bbbbbb", "cafe", ""]
DECODE = DecodeConfig(max_length=8)


def seq2seq(seed, **kwargs):
    keras.utils.set_random_seed(seed)
    return Seq2Seq(list("abcdef"), ["X", "Y", "Z", "W"], embedding_size=8, hidden_units=8, **kwargs)


def right_to_left(model):
    """The same weights, emitting the target right to left."""
    other = Seq2Seq.from_config({**model.get_config(), "reverse_target": True})
    other.set_weights(model.get_weights())
    return other


def reversed_text(texts):
    return [" ".join(reversed(text.split())) for text in texts]


def test_a_right_to_left_model_decodes_and_scores_the_reversed_sequence():
    """With the same weights, the right-to-left model's text is the other one's read backwards:
    greedy and beam outputs reversed, `log P(Y)` = the other's `log P(reversed Y)`."""
    forward = seq2seq(1)
    backward = Translator(right_to_left(forward), DECODE)
    forward = Translator(forward, DECODE)
    strings = tf.constant(SOURCES)
    greedy = [t.decode() for t in forward.greedy(strings, 8).numpy()]
    assert [t.decode() for t in backward.greedy(strings, 8).numpy()] == reversed_text(greedy)
    outputs, scores = forward.beam(strings, 3, 8, 0.0, 3)
    back_outputs, back_scores = backward.beam(strings, 3, 8, 0.0, 3)
    for row, back_row in zip(outputs.numpy(), back_outputs.numpy()):
        assert [t.decode() for t in back_row] == reversed_text([t.decode() for t in row])
    np.testing.assert_allclose(back_scores.numpy(), scores.numpy(), rtol=1e-5, atol=1e-5)
    targets = ["X Y Z", "W", "", "Z Z X W", "Y X", "X"]
    expected = forward.score(strings, tf.constant(reversed_text(targets)))["log_prob"].numpy()
    got = backward.score(strings, tf.constant(targets))["log_prob"].numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    assert not np.allclose(
        got, forward.score(strings, tf.constant(targets))["log_prob"].numpy(), atol=1e-3
    ), "the targets should not all read alike both ways"


@pytest.fixture(scope="module")
def reranker_parts():
    return Translator(seq2seq(1), DECODE), Translator(seq2seq(2, reverse_target=True), DECODE)


@pytest.mark.parametrize("weight", [0.0, 0.3, 1.0])
def test_reranking_picks_the_candidate_with_the_best_weighted_log_probabilities(
    reranker_parts, weight
):
    translator, scorer = reranker_parts
    strings = tf.constant(SOURCES)
    candidates, _ = translator.beam(strings, 4, 8, 0.0, 4)
    chosen = Reranker(translator, scorer, weight).translate(strings, 4).numpy()
    for source, row, best in zip(SOURCES, candidates.numpy(), chosen):
        sources = tf.constant([source] * len(row))
        forward = translator.score(sources, tf.constant(row))["log_prob"].numpy()
        backward = scorer.score(sources, tf.constant(row))["log_prob"].numpy()
        assert best == row[np.argmax((1 - weight) * forward + weight * backward)]
    if weight == 0.0:  # without a length penalty the beam ranks by the same log-probability
        assert chosen.tolist() == translator.translate(strings, 4).numpy().tolist()


def test_reranking_changes_some_choices_and_a_beam_of_one_is_greedy(reranker_parts):
    translator, scorer = reranker_parts
    strings = tf.constant(SOURCES)
    beam = translator.translate(strings, 4).numpy().tolist()
    assert Reranker(translator, scorer, 1.0).translate(strings, 4).numpy().tolist() != beam
    greedy = translator.greedy(strings, 8).numpy().tolist()
    assert Reranker(translator, scorer, 1.0).translate(strings, 1).numpy().tolist() == greedy
    with pytest.raises(ValueError, match=r"weight: expected a number in \[0, 1\], got 1.5"):
        Reranker(translator, scorer, 1.5)


def test_cli_evaluate_export_and_predict_rerank_with_the_rescoring_runs(tmp_path, capsys):
    """`--rescore B --rescore-weight 1`: `s2s evaluate --run-dir A` scores what `Reranker`
    picks, `s2s export --run-dir A` serves it (`serving_default`, and `rerank`'s n-best, both
    warmed up), `s2s predict --model A` prints it; other tasks refuse a rescorer."""
    from tensorflow_serving.apis import prediction_log_pb2

    rows = [("abc", "X Y"), ("bad", "W X"), ("cafe", "Y Y Z"), ("fed", "Z"), ("ace", "X")]
    models = {"forward": seq2seq(1), "backward": seq2seq(2, reverse_target=True)}
    translator, scorer = (Translator(m, preset("tiny").decode) for m in models.values())
    chosen = Reranker(translator, scorer, 1.0).translate([s for s, _ in rows], 3).numpy()
    # Untrained models: make two references the reranked outputs, so the score tells.
    rows[0], rows[1] = (rows[0][0], chosen[0].decode()), (rows[1][0], chosen[1].decode())
    tsv = tmp_path / "pairs.tsv"
    tsv.write_text("".join(f"{s}\t{t}\n" for s, t in rows))
    config = json.loads(preset("tiny").to_json())
    config["data"]["source"] = f"tsv:{tsv},valid={tsv},test={tsv}"
    for name, model in models.items():
        (tmp_path / name).mkdir()
        model.save(tmp_path / name / "model.keras")
        config["model"]["reverse_target"] = name == "backward"
        (tmp_path / name / "config.json").write_text(json.dumps(config))
    forward, rescore = str(tmp_path / "forward"), ["--rescore", str(tmp_path / "backward")]
    weight = ["--rescore-weight", "1"]
    out = cli_stdout(
        capsys, "evaluate", "--beam-size", "3", *weight, "--run-dir", forward, *rescore
    )
    result = json.loads(out.splitlines()[-1])
    exact = np.mean([h.decode() == t for h, (_, t) in zip(chosen, rows)])
    assert result["exact_match"] == pytest.approx(exact) and exact >= 0.4
    assert result["rescore"] == [str(tmp_path / "backward")] and result["rescore_weight"] == 1.0
    # The export and `s2s predict` rerank the exported width (tiny: beam 5).
    words = [s for s, _ in rows] + [""]
    reranker = Reranker(translator, scorer, 1.0)
    outputs, scores = (x.numpy() for x in reranker.ranked(tf.constant(words), 5, 3))
    base = str(tmp_path / "export")
    version = cli_stdout(
        capsys, "export", "--run-dir", forward, *rescore, *weight, "--export-base", base
    )
    extra = os.path.join(version.strip(), "assets.extra")
    assert os.path.isfile(os.path.join(extra, "rescore-0.keras"))
    records = tf.data.TFRecordDataset(os.path.join(extra, WARMUP_FILE)).as_numpy_iterator()
    logs = [prediction_log_pb2.PredictionLog.FromString(record).predict_log for record in records]
    warmed = {log.request.model_spec.signature_name for log in logs}
    assert warmed == {"serving_default", "nbest", "greedy", "sample", "score", "rerank"}
    loaded = load_saved_model(version.strip())
    served = loaded.serving_default(inputs=tf.constant(words))
    assert served["outputs"].numpy().tolist() == outputs[:, 0].tolist()
    np.testing.assert_allclose(served["scores"], scores[:, 0], rtol=1e-5, atol=1e-5)
    ranked = loaded.rerank(inputs=tf.constant(words), num_results=tf.fill([len(words)], 3))
    assert ranked["outputs"].numpy().tolist() == outputs.tolist() and outputs[-1, 0] == b""
    assert outputs[:, 0].tolist() != translator.translate(tf.constant(words), 5).numpy().tolist()
    out = cli_stdout(
        capsys, "predict", "--model", forward, *rescore, *weight, "--num-results", "3", *words[:2]
    )
    two = reranker.ranked(tf.constant(words[:2]), 5, 3)[0].numpy()  # the same batch
    assert [line.split("\t")[1] for line in out.splitlines()] == [
        text.decode() for row in two for text in row
    ]
    assert (
        load_predictor(version.strip())(words[:2], num_results=3)[0][0][0] == outputs[0, 0].decode()
    )
    for task in ("classify", "lm"):
        with pytest.raises(ConfigError, match=f"--rescore: the {task} task has no n-best rerank"):
            get_task(task).evaluate(None, preset("tiny"), [], rescorer=models["backward"])
    onnx = ["--format", "onnx", "--output", base]
    assert cli.main(["export", "--run-dir", forward, *rescore, *onnx]) == 2
    assert "--rescore is a savedmodel option" in capsys.readouterr().err
    # A run carrying its reranker in `rescore/` (weight: its decode.rescore_weight) reranks
    # without --rescore; --rescore names another; an ensemble of run dirs carries none.
    carrier = tmp_path / "carrier"
    shutil.copytree(tmp_path / "forward", carrier)
    shutil.copytree(tmp_path / "backward", carrier / "rescore")
    config["model"]["reverse_target"], config["decode"]["rescore_weight"] = False, 1.0
    (carrier / "config.json").write_text(json.dumps(config))
    out = cli_stdout(capsys, "evaluate", "--beam-size", "3", "--run-dir", str(carrier))
    assert json.loads(out.splitlines()[-1])["exact_match"] == pytest.approx(exact)
    assert rescore_dirs([str(carrier)], None) == [str(carrier / "rescore")]
    assert rescore_dirs([str(carrier)], [forward]) == [forward]
    assert rescore_dirs([str(carrier), forward], None) is None
