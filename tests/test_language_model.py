"""Language modelling: the decoder stack alone, truncated BPTT, generation and scoring, CLI,
export."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import REPO, cli_stdout, run_cli, run_python

from s2s_keras import cli
from s2s_keras.config import DecodeConfig
from s2s_keras.decoding import greedy_search
from s2s_keras.inference import TextGenerator
from s2s_keras.models import LanguageModel
from s2s_keras.tasks.lm import make_stream_dataset
from s2s_keras.text import END_ID, Tokenizer

WORDS = ["a", "b", "c", "d", "e"]


def language_model(**kwargs):
    keras.utils.set_random_seed(11)
    options = dict(embedding_size=8, hidden_units=8, num_layers=2)
    options.update(kwargs)
    return LanguageModel(WORDS, **options)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_decode_steps_reproduce_the_forward_logits_and_reload(cell, tmp_path):
    model = language_model(cell=cell, tie_embeddings=True)
    ids = tf.constant([[END_ID, 4, 5, 6], [END_ID, 7, 0, 0]])
    logits = model({"input_ids": ids}).numpy()
    state, first = model.start(tf.constant([[END_ID], [END_ID]]))
    assert first.numpy().tolist() == [END_ID, END_ID]
    for t in range(4):
        step, state = model.decode_step(ids[:, t], state)
        np.testing.assert_allclose(step.numpy()[0, 3:], logits[0, t, 3:], atol=1e-5)
        np.testing.assert_array_less(step.numpy()[0, [0, 2]], -1e8)  # padding and <s>
    model.save(tmp_path / "lm.keras")
    np.testing.assert_array_equal(
        keras.saving.load_model(tmp_path / "lm.keras")({"input_ids": ids}).numpy(), logits
    )


def test_start_reads_the_prompt_but_its_last_token():
    model = language_model()
    prompt = tf.constant([[END_ID, 4, 5, 6, 0], [END_ID, 7, 0, 0, 0]])
    state, last = model.start(prompt)
    assert last.numpy().tolist() == [6, 7]
    _, expected = model.forward(tf.constant([[END_ID, 4, 5]]))
    for ours, theirs in zip(state[1], expected[1]):
        np.testing.assert_allclose(ours.numpy()[0], theirs.numpy()[0], atol=1e-6)


def test_stream_batches_continue_each_other_row_by_row():
    tokenizer = Tokenizer(WORDS, split="whitespace", lowercase=False)
    texts = ["a b c", "d e", "a a b b", "c"]  # ids 4.. ; every text then </s>
    batches = list(make_stream_dataset(texts, tokenizer, batch_size=2, bptt_length=3))
    inputs = np.concatenate([b[0]["input_ids"].numpy() for b in batches], axis=1)
    targets = np.concatenate([b[1].numpy() for b in batches], axis=1)
    stream = [
        3,
        4,
        5,
        6,
        3,
        7,
        8,
        3,
        4,
        4,
        5,
        5,
        3,
        6,
        3,
    ]  # </s> a b c </s> d e </s> a a b b </s> c </s>
    steps = (len(stream) - 1) // 2
    np.testing.assert_array_equal(inputs, np.reshape(stream[: 2 * steps], (2, steps)))
    np.testing.assert_array_equal(targets, np.reshape(stream[1 : 2 * steps + 1], (2, steps)))
    assert [b[0]["input_ids"].shape[1] for b in batches] == [3, 3, 1]


def test_carried_state_makes_chunks_equal_one_long_pass():
    model = language_model()
    ids = tf.constant([[3, 4, 5, 6, 7, 8], [8, 7, 6, 5, 4, 3]])
    whole = model({"input_ids": ids}).numpy()
    model.carry_state(2)
    first = model({"input_ids": ids[:, :4]}, training=False).numpy()
    second = model({"input_ids": ids[:, 4:]}, training=False).numpy()
    np.testing.assert_allclose(np.concatenate([first, second], axis=1), whole, atol=1e-5)
    model.reset_carry()
    np.testing.assert_allclose(
        model({"input_ids": ids[:, 4:]}, training=False).numpy(),
        model.forward(ids[:, 4:])[0].numpy(),
        atol=1e-6,
    )  # zero state again
    model.carry_state(None)
    assert len(model.weights) == len(language_model().weights)  # the carry is not a weight


def test_greedy_is_the_argmax_of_its_own_forward_pass_and_score_sums_log_probs():
    model = language_model()
    prompt = [END_ID, 4, 5]  # </s> a b
    state, start = model.start(tf.constant([prompt]))
    generated = greedy_search(model.decode_step, state, start, END_ID, 6).numpy()[0].tolist()
    ids = prompt + generated
    logits = model.forward(tf.constant([ids]))[0].numpy()[0]
    logits[:, [0, 2]] = -np.inf  # padding and <s>: never emitted (see decode_step)
    assert logits[2 : 2 + len(generated)].argmax(axis=-1).tolist() == generated
    text = "a b c"
    generator = TextGenerator(model, DecodeConfig())
    scored = generator.score(tf.constant([text]))
    ids = [END_ID, 4, 5, 6]
    log_probs = tf.nn.log_softmax(model.forward(tf.constant([ids]))[0]).numpy()[0]
    expected = sum(log_probs[t, token] for t, token in enumerate(ids[1:] + [END_ID]))
    np.testing.assert_allclose(scored["log_prob"].numpy()[0], expected, rtol=1e-5)
    np.testing.assert_allclose(scored["perplexity"].numpy()[0], np.exp(-expected / 4), rtol=1e-5)
    assert scored["tokens"].numpy()[0].tolist() == [b"a", b"b", b"c", b"</s>"]


def test_beam_and_sampling_continue_the_prompt_and_take_hostile_input():
    generator = TextGenerator(language_model(), DecodeConfig(max_length=5))
    texts, scores = generator.beam(tf.constant(["a", "", "zzz \x00 😀"]), 3, 5, 0.0, 2)
    assert texts.shape == (3, 2) and scores.shape == (3, 2)
    assert all(t.decode().startswith("a") for t in texts.numpy()[0])
    assert (np.diff(scores.numpy(), axis=1) <= 1e-6).all()  # best first
    samples = generator.sample(tf.constant(["a b"] * 2), 1.0, 3, 7, 5).numpy()
    again = generator.sample(tf.constant(["a b"] * 2), 1.0, 3, 7, 5).numpy()
    assert samples.tolist() == again.tolist()
    assert generator.greedy(tf.constant([], tf.string), 5).shape == (0,)


def text_corpus(count, seed):
    """Sentences from a tiny grammar: the next word is predictable from the previous one."""
    rng = np.random.default_rng(seed)
    follow = {
        "the": ["cat", "dog"],
        "cat": ["sat", "ran"],
        "dog": ["sat", "ran"],
        "sat": ["down"],
        "ran": ["away"],
        "down": [],
        "away": [],
    }
    lines = []
    for _ in range(count):
        words = ["the"]
        while follow[words[-1]]:
            words.append(str(rng.choice(follow[words[-1]])))
        lines.append(" ".join(words))
    return lines


@pytest.mark.slow
@pytest.mark.parametrize("bptt_length", [0, 5])
def test_cli_trains_evaluates_generates_and_exports_a_language_model(bptt_length, tmp_path, capsys):
    lines = text_corpus(600, seed=2)
    (tmp_path / "train.tsv").write_text("".join(f"{line}\t{line}\n" for line in lines[:450]))
    (tmp_path / "valid.tsv").write_text("".join(f"{line}\t{line}\n" for line in lines[450:500]))
    (tmp_path / "test.tsv").write_text("".join(f"{line}\t{line}\n" for line in lines[500:]))
    run_dir = tmp_path / "run"
    data = (
        f"tsv:{tmp_path / 'train.tsv'},valid={tmp_path / 'valid.tsv'},test={tmp_path / 'test.tsv'}"
    )
    run_cli(
        "train",
        "--task",
        "lm",
        "--data",
        data,
        "--preset",
        "tiny",
        "--set",
        "data.source_split=whitespace",
        "--set",
        f"data.bptt_length={bptt_length}",
        "--set",
        f"data.streaming={str(bool(bptt_length)).lower()}",  # BPTT from a streamed file too
        "--set",
        "train.epochs=8",
        "--set",
        "train.batch_size=8",
        "--set",
        "train.learning_rate=0.02",
        "--run-dir",
        str(run_dir),
    )
    history = (run_dir / "history.csv").read_text().splitlines()
    assert "val_perplexity" in history[0]
    if bptt_length:  # every token of the stream but the last few that cannot fill 8 rows
        summary = json.loads((run_dir / "summary.json").read_text())
        tokens = sum(len(line.split()) + 1 for line in lines[:450])
        assert summary["stream_tokens_per_epoch"] + summary["stream_dropped_tokens"] == tokens
        assert summary["stream_dropped_tokens"] < 8
    # evaluate and predict in this process (training and export run as the CLI's own processes)
    capsys.readouterr()
    assert cli.main(["evaluate", "--run-dir", str(run_dir), "--split", "test"]) == 0
    result = json.loads(capsys.readouterr().out.splitlines()[-1])
    # 4 words per sentence + </s>; branching 2 at two of 5 positions → the best model reaches
    # perplexity 2^(2/5) ≈ 1.32; a uniform guess over the 11 ids is 11.
    assert result["perplexity"] < 1.6, result
    assert cli.main(["predict", "--model", str(run_dir), "--beam-size", "1", "the cat"]) == 0
    out = capsys.readouterr().out
    assert out.split("\t")[1].strip() in ("the cat sat down", "the cat ran away")
    if not bptt_length:
        return  # the export does not depend on how the model was trained: once is enough
    version = cli_stdout(
        capsys, "export", "--run-dir", str(run_dir), "--export-base", str(tmp_path / "export")
    ).strip()
    answer = run_python(
        f"""
import json, tensorflow as tf, tensorflow_text
loaded = tf.saved_model.load({version!r})
texts = tf.constant(["the dog", ""])
out = {{name: {{k: v.numpy().tolist() for k, v in getattr(loaded, name)(inputs=texts).items()}}
       for name in ("serving_default", "generate", "sample", "score")}}
print(json.dumps(out, default=lambda b: b.decode()))
""",
        cwd=REPO,
    )
    answer = json.loads(answer.splitlines()[-1])
    assert answer["serving_default"]["outputs"][0] in ("the dog sat down", "the dog ran away")
    assert len(answer["generate"]["outputs"][0]) == 5  # the exported beam width: n-best
    assert answer["score"]["num_tokens"] == [3, 1]
