"""Inference objects: a right-to-left model's decoding and scores, n-best reranking."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import cli_stdout

from s2s_keras import Seq2Seq
from s2s_keras.config import ConfigError, DecodeConfig, preset
from s2s_keras.inference import Reranker, Translator
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


def test_cli_evaluate_reranks_with_the_rescoring_runs_and_other_tasks_refuse(tmp_path, capsys):
    """`s2s evaluate --run-dir A --rescore B --rescore-weight 1` scores what `Reranker` picks."""
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
    runs = [str(tmp_path / "forward"), "--rescore", str(tmp_path / "backward")]
    flags = ["--beam-size", "3", "--rescore-weight", "1"]
    out = cli_stdout(capsys, "evaluate", *flags, "--run-dir", *runs)
    result = json.loads(out.splitlines()[-1])
    exact = np.mean([h.decode() == t for h, (_, t) in zip(chosen, rows)])
    assert result["exact_match"] == pytest.approx(exact) and exact >= 0.4
    assert result["rescore"] == [str(tmp_path / "backward")] and result["rescore_weight"] == 1.0
    for task in ("classify", "lm"):
        with pytest.raises(ConfigError, match=f"the {task} task has no n-best reranking"):
            get_task(task).evaluate(None, preset("tiny"), [], rescore=["run"])
