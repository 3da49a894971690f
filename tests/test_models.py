import numpy as np
import pytest
import tensorflow as tf
from conftest import REPO, run_python

from s2s_keras import Seq2Seq

INPUTS = {
    "source_ids": tf.constant([[4, 5, 6, 0], [7, 0, 0, 0]], tf.int32),
    "target_in_ids": tf.constant([[2, 4, 5], [2, 6, 0]], tf.int32),
}


def test_build_shapes_and_config(tiny_model):
    logits = tiny_model(INPUTS)
    assert logits.shape == (2, 3, 4 + 4) and logits.dtype == tf.float32
    config = tiny_model.get_config()
    assert config["hidden_units"] == 8 and config["target_vocabulary"] == ["X", "Y", "Z", "W"]
    assert Seq2Seq.from_config(config).count_params() == tiny_model.count_params()


def test_decode_steps_reproduce_teacher_forced_logits(tiny_model):
    logits = tiny_model(INPUTS).numpy()
    state = tiny_model.encode(INPUTS["source_ids"])
    for t in range(3):
        step_logits, state = tiny_model.decode_step(INPUTS["target_in_ids"][:, t], state)
        np.testing.assert_allclose(step_logits.numpy()[0], logits[0, t], atol=1e-5)
    np.testing.assert_allclose(
        tiny_model.decode_step(
            INPUTS["target_in_ids"][1:, 0], tiny_model.encode(INPUTS["source_ids"][1:])
        )[0].numpy()[0],
        logits[1, 0],
        atol=1e-5,
    )


def test_padding_does_not_change_the_encoding(tiny_model):
    short = tiny_model.encode(tf.constant([[4, 5]]))
    padded = tiny_model.encode(tf.constant([[4, 5, 0, 0, 0]]))
    for (h1, c1), (h2, c2) in zip(short, padded):
        np.testing.assert_allclose(h1, h2, atol=1e-6)
        np.testing.assert_allclose(c1, c2, atol=1e-6)


def test_keras_file_reloads_in_another_process_with_identical_outputs(tiny_model, tmp_path):
    from s2s_keras.config import preset
    from s2s_keras.training import compile_model

    compile_model(tiny_model, preset("tiny"), steps_per_epoch=1)  # as saved by `s2s train`
    path = tmp_path / "model.keras"
    tiny_model.save(path)
    expected = tiny_model(INPUTS).numpy()
    np.save(tmp_path / "expected.npy", expected)
    out = run_python(
        f"""
import numpy as np, keras, tensorflow as tf
import s2s_keras
model = keras.saving.load_model({str(path)!r}, safe_mode=True)
assert type(model).__name__ == "Seq2Seq", type(model)
logits = model({{"source_ids": tf.constant({INPUTS["source_ids"].numpy().tolist()}),
                 "target_in_ids": tf.constant({INPUTS["target_in_ids"].numpy().tolist()})}})
np.testing.assert_array_equal(logits.numpy(), np.load({str(tmp_path / "expected.npy")!r}))
print(model.source_tokenizer.vocabulary)
""",
        cwd=REPO,
    )
    assert "['a', 'b', 'c', 'd', 'e', 'f']" in out


def test_reverse_source_encodes_the_reversed_tokens(tiny_model):
    reversing = Seq2Seq.from_config({**tiny_model.get_config(), "reverse_source": True})
    reversing.set_weights(tiny_model.get_weights())
    forward = tiny_model.encode(tf.constant([[6, 5, 4, 0]]))
    backward = reversing.encode(tf.constant([[4, 5, 6, 0]]))
    for (h1, c1), (h2, c2) in zip(forward, backward):
        np.testing.assert_allclose(h1, h2, atol=1e-6)
        np.testing.assert_allclose(c1, c2, atol=1e-6)


def test_mixed_bfloat16_keeps_float32_logits_and_round_trips(tiny_model, tmp_path):
    import keras

    model = Seq2Seq.from_config({**tiny_model.get_config(), "precision": "mixed_bfloat16"})
    assert model.encoder_layers[0].compute_dtype == "bfloat16"
    assert model.encoder_layers[0].cell.kernel.dtype == "float32"  # weights stay float32
    logits = model(INPUTS)
    assert logits.dtype == tf.float32
    step_logits, _ = model.decode_step(tf.constant([2, 2]), model.encode(INPUTS["source_ids"]))
    assert step_logits.dtype == tf.float32
    model.save(tmp_path / "bf16.keras")
    restored = keras.saving.load_model(tmp_path / "bf16.keras")
    assert restored.precision == "mixed_bfloat16"
    np.testing.assert_array_equal(restored(INPUTS).numpy(), logits.numpy())


# --- The model family ------------------------------------------------------------------------

FAMILY = [  # a covering grid: every cell, bridge, attention score, bidirectional both ways
    dict(cell="lstm", bidirectional=True, bridge="dense", attention="luong_general"),
    dict(
        cell="gru",
        bidirectional=True,
        bridge="copy",
        attention="bahdanau",
        learn_initial_state=True,
    ),
    dict(
        cell="rnn", bidirectional=False, bridge="copy", attention="luong_dot", tie_embeddings=True
    ),
    dict(
        cell="gru",
        bidirectional=False,
        bridge="zero",
        attention="luong_general",
        recurrent_dropout=0.2,
    ),
    dict(
        cell="rnn", bidirectional=True, bridge="dense", attention="none", learn_initial_state=True
    ),
    dict(
        cell="lstm", bidirectional=False, bridge="copy", attention="bahdanau", reverse_source=True
    ),
    # attention over the decoder's outputs (no input feeding)
    dict(
        cell="lstm",
        bidirectional=True,
        bridge="dense",
        attention="luong_general",
        input_feeding=False,
    ),
    dict(cell="gru", bidirectional=False, bridge="zero", attention="bahdanau", input_feeding=False),
]


def family_model(options, **extra):
    import keras

    keras.utils.set_random_seed(5)
    arguments = dict(embedding_size=8, hidden_units=8, num_layers=2, dropout=0.1)
    return Seq2Seq(list("abcdef"), ["X", "Y", "Z", "W"], **{**arguments, **options, **extra})


@pytest.mark.parametrize("options", FAMILY, ids=lambda o: "-".join(str(v) for v in o.values()))
def test_decode_steps_reproduce_teacher_forced_logits_for_every_option(options):
    model = family_model(options)
    logits = model(INPUTS).numpy()
    state = model.encode(INPUTS["source_ids"])
    real = INPUTS["target_in_ids"].numpy() != 0  # padded steps' outputs are never used
    for t in range(3):
        step_logits, state = model.decode_step(INPUTS["target_in_ids"][:, t], state)
        np.testing.assert_allclose(
            step_logits.numpy()[real[:, t]], logits[real[:, t], t], atol=1e-5
        )
    # dropout only while training
    assert not np.allclose(model(INPUTS, training=True).numpy(), logits)


@pytest.mark.parametrize("bridge, per_direction", [("copy", 4), ("dense", 8)])
def test_bidirectional_encoder_and_bridge_shapes(bridge, per_direction):
    model = family_model(dict(cell="lstm", bidirectional=True, bridge=bridge))
    assert model.encoder_layers[0].forward_layer.units == per_direction
    state = model.encode(INPUTS["source_ids"])
    assert [[tuple(t.shape) for t in layer] for layer in state] == [[(2, 8), (2, 8)]] * 2
    logits, state = model.decode_step(tf.constant([2, 2]), state)
    assert logits.shape == (2, 4 + 4)


@pytest.mark.parametrize("attention, input_feeding", [("luong_general", True), ("bahdanau", False)])
def test_the_encoder_may_be_narrower_than_the_decoder(attention, input_feeding):
    options = dict(cell="lstm", bidirectional=True, bridge="dense", attention=attention)
    model = family_model(
        options, encoder_units=2, encoder_num_layers=2, num_layers=1, input_feeding=input_feeding
    )
    assert [layer.forward_layer.units for layer in model.encoder_layers] == [2, 2]
    assert model.encoder_layers[1].forward_layer.cell.kernel.shape == (4, 8)  # reads 2 × 2
    state = model.encode(INPUTS["source_ids"])
    assert state["memory"].shape[-1] == 4  # both directions' 2 units; the decoder has 8
    logits = model(INPUTS).numpy()
    step_logits, _ = model.decode_step(INPUTS["target_in_ids"][:, 0], state)
    np.testing.assert_allclose(step_logits.numpy(), logits[:, 0], atol=1e-5)
    rebuilt = Seq2Seq.from_config(model.get_config())
    assert rebuilt.encoder_units == 2 and rebuilt.count_params() == model.count_params()
    with pytest.raises(ValueError, match="encoder_units=8 × 2 direction.* bridge='copy' needs"):
        family_model(dict(bidirectional=True, bridge="copy"), encoder_units=8)


def test_option_errors_name_the_option():
    with pytest.raises(ValueError, match="cell: expected one of"):
        family_model({}, cell="transformer")
    with pytest.raises(ValueError, match="tie_embeddings: needs embedding_size == hidden_units"):
        family_model({}, tie_embeddings=True, embedding_size=6)
    with pytest.raises(ValueError, match="alignment: this model has no attention"):
        family_model({}).alignment(INPUTS["source_ids"], INPUTS["target_in_ids"])


def test_alignment_is_masked_and_in_source_order_with_reversal():
    options = dict(attention="bahdanau", bidirectional=False)
    forward = family_model(options)
    reversing = family_model(options, reverse_source=True)
    reversing.set_weights(forward.get_weights())
    source = tf.constant([[4, 5, 6, 0, 0], [7, 8, 0, 0, 0]])
    mirrored = tf.constant([[6, 5, 4, 0, 0], [8, 7, 0, 0, 0]])
    target_in = INPUTS["target_in_ids"]
    weights = reversing.alignment(source, target_in).numpy()
    np.testing.assert_allclose(weights.sum(axis=-1), 1.0, atol=1e-6)
    assert (weights[0, :, 3:] == 0).all() and (weights[1, :, 2:] == 0).all()
    # The reversing model reads [c b a] but reports weights over [a b c].
    expected = forward.alignment(mirrored, target_in).numpy()
    np.testing.assert_allclose(weights[0, :, :3], expected[0, :, 2::-1], atol=1e-6)
    np.testing.assert_allclose(weights[1, :, :2], expected[1, :, 1::-1], atol=1e-6)


def test_gradients_equal_central_finite_differences():
    from s2s_keras.losses import SequenceCrossentropy

    model = family_model(
        dict(cell="lstm", attention="luong_general", bidirectional=True, bridge="dense"),
        dropout=0.0,
    )
    target_out = tf.constant([[4, 5, 3], [6, 3, 0]])
    loss_fn = SequenceCrossentropy()

    def loss():
        return loss_fn(target_out, model(INPUTS))

    checked = [
        model.encoder_layers[0].forward_layer.cell.recurrent_kernel,
        model.attention_decoder.cells[1].recurrent_kernel,
        model.attention_decoder.attention.key_kernel,
        model.bridge_layers[0].kernel,
    ]
    with tf.GradientTape() as tape:
        value = loss()
    grads = tape.gradient(value, checked)
    rng = np.random.default_rng(1)
    eps = 1e-2
    for variable, grad in zip(checked, grads):
        for _ in range(3):
            index = tuple(rng.integers(0, n) for n in variable.shape)
            original = variable.numpy()
            for sign, store in ((1, "plus"), (-1, "minus")):
                bumped = original.copy()
                bumped[index] += sign * eps
                variable.assign(bumped)
                if store == "plus":
                    plus = float(loss())
                else:
                    minus = float(loss())
            variable.assign(original)
            numeric = (plus - minus) / (2 * eps)
            assert abs(numeric - float(grad.numpy()[index])) < 2e-4 + 0.02 * abs(numeric), (
                variable.path,
                index,
                numeric,
                float(grad.numpy()[index]),
            )


@pytest.mark.slow
@pytest.mark.parametrize("options", FAMILY, ids=lambda o: "-".join(str(v) for v in o.values()))
def test_every_option_trains_saves_reloads_and_exports(options, tmp_path):
    import keras
    import tensorflow_text  # noqa: F401

    from s2s_keras.config import preset
    from s2s_keras.export import export
    from s2s_keras.training import build_model, compile_model

    # 2 layers and dropout: the graph-mode training path with between-layer dropout masks.
    config = preset("tiny").override(
        [
            "model.embedding_size=16",
            "model.hidden_units=16",
            "model.num_layers=2",
            "model.dropout=0.2",
        ]
        + [f"model.{key}={value}" for key, value in options.items()]
    )
    keras.utils.set_random_seed(5)
    model = build_model(config, list("abcdef"), ["X", "Y", "Z", "W"])
    compile_model(model, config, steps_per_epoch=1)
    history = model.fit(INPUTS, tf.constant([[4, 5, 3], [6, 3, 0]]), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    model.save(tmp_path / "model.keras")
    restored = keras.saving.load_model(tmp_path / "model.keras")
    assert {key: restored.get_config()[key] for key in options} == options
    np.testing.assert_array_equal(restored(INPUTS).numpy(), model(INPUTS).numpy())

    loaded = tf.saved_model.load(export(model, config, str(tmp_path / "saved")))
    result = loaded.nbest(inputs=tf.constant(["abc", ""]), beam_size=tf.constant([3, 3]))
    assert result["outputs"].shape[:2] == (2, 3)
    scored = loaded.score(sources=tf.constant(["abc", "fed"]), targets=tf.constant(["X Y", "Z"]))
    assert ("alignment" in scored) == (options["attention"] != "none")
    if "alignment" in scored:
        np.testing.assert_allclose(
            tf.reduce_sum(scored["alignment"], -1).numpy()[0], 1.0, atol=1e-5
        )


@pytest.mark.parametrize("bridge", ["dense", "zero"])
def test_encoder_and_decoder_depths_may_differ(bridge):
    model = family_model(
        dict(cell="lstm", bidirectional=True, bridge=bridge, attention="bahdanau"),
        encoder_num_layers=3,
        num_layers=2,
    )
    assert len(model.encoder_layers) == 3 and len(model.attention_decoder.cells) == 2
    state = model.encode(INPUTS["source_ids"])
    assert [[tuple(t.shape) for t in layer] for layer in state["layers"]] == [[(2, 8), (2, 8)]] * 2
    if bridge == "zero":
        assert all(np.all(t.numpy() == 0) for layer in state["layers"] for t in layer)
    logits = model(INPUTS).numpy()
    step_logits, _ = model.decode_step(INPUTS["target_in_ids"][:, 0], state)
    np.testing.assert_allclose(step_logits.numpy(), logits[:, 0], atol=1e-5)
    with pytest.raises(ValueError, match="bridge='copy' needs equal depths"):
        family_model({}, encoder_num_layers=3)


def test_a_keras_file_saved_before_the_shared_encoder_still_loads_with_its_optimizer():
    """tests/fixtures/seq2seq-attention-compiled-pre-0.1.0.keras was written before
    `RecurrentEncoderMixin` existed (bidirectional, dense bridge, attention, learned h0; compiled
    and trained one step): its weights AND optimizer slots must load (the slots follow the
    variables' creation order)."""
    import keras

    fixtures = f"{REPO}/tests/fixtures"
    model = keras.saving.load_model(
        f"{fixtures}/seq2seq-attention-compiled-pre-0.1.0.keras"
    )  # raises if a slot mismatches
    assert int(model.optimizer.iterations.numpy()) == 1
    logits = model(
        {
            "source_ids": tf.constant([[4, 5, 6, 0], [7, 0, 0, 0]]),
            "target_in_ids": tf.constant([[2, 4, 5], [2, 6, 0]]),
        }
    ).numpy()
    # float rounding only: layers/lstm.py's loop sums in another order than the one that wrote it
    np.testing.assert_allclose(
        logits,
        np.load(f"{fixtures}/seq2seq-attention-compiled-pre-0.1.0-logits.npy"),
        rtol=1e-5,
        atol=1e-8,
    )


FIXTURES = f"{REPO}/tests/fixtures"
FIXTURE_NAMES = sorted(
    name[: -len(".json")] for name in __import__("os").listdir(FIXTURES) if name.endswith(".json")
)


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_keras_files_of_every_task_keep_loading_and_answering_the_same(name):
    """tests/fixtures/<name>.keras (written by `write_fixtures.py` of the version in the name,
    compiled and trained one step): weights and optimizer slots load; logits and the inference
    outputs (greedy, beam, labels) are the ones recorded when it was written."""
    import json

    import keras

    from s2s_keras.config import DecodeConfig
    from s2s_keras.inference import LabelPredictor, TextGenerator, Translator

    with open(f"{FIXTURES}/{name}.json") as handle:
        expected = json.load(handle)
    model = keras.saving.load_model(f"{FIXTURES}/{name}.keras")
    assert int(model.optimizer.iterations.numpy()) == 1
    inputs = {
        "seq2seq": INPUTS,
        "classify": {"source_ids": INPUTS["source_ids"]},
        "lm": {"input_ids": tf.constant([[3, 4, 5], [3, 6, 0]])},
    }[expected["task"]]
    np.testing.assert_allclose(
        model(inputs).numpy(), np.load(f"{FIXTURES}/{name}-logits.npy"), rtol=1e-5, atol=1e-7
    )
    words = tf.constant(expected["words"])
    if expected["task"] == "classify":
        predictor = LabelPredictor(model, model.max_source_tokens)
        result = predictor.classify(words)
        assert [label.decode() for label in result["labels"].numpy()] == expected["labels"]
        np.testing.assert_allclose(
            result["probabilities"].numpy(), expected["probabilities"], atol=1e-6
        )
        return
    decoder = (Translator if expected["task"] == "seq2seq" else TextGenerator)(
        model, DecodeConfig(max_length=8)
    )
    assert [text.decode() for text in decoder.greedy(words, 8).numpy()] == expected["greedy"]
    outputs, scores = decoder.beam(words, 3, 8, 0.0, 2)
    assert [[text.decode() for text in row] for row in outputs.numpy()] == expected["beam"]
    np.testing.assert_allclose(scores.numpy(), expected["beam_scores"], atol=1e-5)


@pytest.mark.parametrize(
    "options",
    [
        dict(
            cell="lstm",
            bidirectional=True,
            bridge="dense",
            attention="luong_general",
            input_feeding=False,
        ),
        dict(
            cell="lstm", bidirectional=False, bridge="copy", attention="none", reverse_source=True
        ),
    ],
    ids=["bidirectional-attention", "reversed-source"],
)
def test_training_from_token_tables_equals_embedding_then_multiplying(options, monkeypatch):
    """The first encoder and decoder layers take their projected inputs from token tables in
    training (`token_inputs`): the model's loss and every gradient are those of embedding the
    tokens and multiplying."""
    import s2s_keras.layers.lstm as lstm
    from s2s_keras.losses import SequenceCrossentropy

    model = family_model(options, dropout=0.0)
    target_out = tf.constant([[4, 5, 3], [6, 3, 0]])

    def loss_and_gradients():
        with tf.GradientTape() as tape:
            loss = SequenceCrossentropy()(target_out, model(INPUTS, training=True))
        grads = tape.gradient(loss, model.trainable_weights)
        return [loss] + [tf.convert_to_tensor(g) for g in grads]

    tables = []
    input_table = lstm.input_table
    monkeypatch.setattr(lstm, "input_table", lambda *a: tables.append(a) or input_table(*a))
    got = loss_and_gradients()
    assert len(tables) == (3 if options["bidirectional"] else 2)
    with lstm.without_token_tables():  # embed, then multiply
        expected = loss_and_gradients()
    assert len(tables) == (3 if options["bidirectional"] else 2)
    for a, b, variable in zip(got, expected, [None] + model.trainable_weights, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-5, err_msg=str(variable))


@pytest.mark.parametrize(
    "tie_embeddings, precision",
    [(False, "float32"), (True, "float32"), (False, "mixed_bfloat16"), (True, "mixed_bfloat16")],
)
def test_fused_greedy_and_beam_search_give_the_results_of_the_loops_in_tensorflow_ops(
    tie_embeddings, precision
):
    """Within `lstm.fused_inference` an LSTM decoder without attention searches greedily and by
    beams in one op each (`S2sLstmGreedy`, `S2sLstmBeamSearch`, their bf16 counterparts under
    `mixed_bfloat16`, where they run): the results of `greedy_search` and `beam_search` over its
    step in TensorFlow's ops, with its own output projection or the embedding's transpose."""
    from s2s_keras.decoding import beam_search, greedy_search
    from s2s_keras.layers import lstm, lstm_kernels
    from s2s_keras.text import END_ID, START_ID

    compute_dtype = "bfloat16" if precision == "mixed_bfloat16" else precision
    if lstm_kernels.decoding_ops(compute_dtype) is None:
        pytest.skip(f"the {compute_dtype} decoding ops do not run here: {lstm_kernels.status()}")
    options = dict(cell="lstm", bidirectional=True, bridge="dense", attention="none")
    sizes = dict(embedding_size=32, hidden_units=32) if precision != "float32" else {}
    model = family_model(
        options, tie_embeddings=tie_embeddings, dropout=0.0, precision=precision, **sizes
    )
    state = model.encode(INPUTS["source_ids"])
    start_ids = tf.fill([INPUTS["source_ids"].shape[0]], START_ID)
    expected = greedy_search(model.step_function(), state, start_ids, END_ID, 7).numpy()
    expected_beams = beam_search(model.step_function(), state, start_ids, END_ID, 7, 3, 0.6, 2)
    with lstm.fused_inference():
        step = model.step_function()
    assert step.greedy_search is not None and step.beam_search is not None
    got = greedy_search(step, state, start_ids, END_ID, 7).numpy()
    np.testing.assert_array_equal(got, expected)
    assert len(set(map(tuple, got))) > 1  # the rows decode differently
    ids, scores = beam_search(step, state, start_ids, END_ID, 7, 3, 0.6, 2)
    np.testing.assert_array_equal(ids.numpy(), expected_beams[0].numpy())
    np.testing.assert_allclose(scores.numpy(), expected_beams[1].numpy(), rtol=1e-5)
