"""layers/lstm.py: the hoisted LSTM loop and its hand-written backward pass against Keras' own
LSTM (same weights): outputs, states and every gradient, with padding, reversal and bf16."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from s2s_keras.layers import LSTM, cell_steppers, step_cells
from s2s_keras.layers.lstm import lstm_sequence, lstm_step, lstm_weights

BATCH, STEPS, FEATURES, UNITS = 4, 6, 5, 7
LENGTHS = [6, 3, 1, 0]  # full, padded, one step, empty


def _pair(dtype="float32", **kwargs):
    ours = LSTM(
        UNITS, return_sequences=True, return_state=True, use_cudnn=False, dtype=dtype, **kwargs
    )
    theirs = keras.layers.LSTM(
        UNITS, return_sequences=True, return_state=True, use_cudnn=False, dtype=dtype, **kwargs
    )
    x = tf.random.stateless_normal([BATCH, STEPS, FEATURES], seed=[1, 2])
    ours(x)
    theirs(x)
    rng = np.random.default_rng(0)
    theirs.set_weights(
        [rng.uniform(-0.5, 0.5, w.shape).astype("float32") for w in ours.get_weights()]
    )
    ours.set_weights(theirs.get_weights())
    return ours, theirs, x


def _mask(left_padded=False):
    mask = np.arange(STEPS)[None, :] < np.array(LENGTHS)[:, None]
    return tf.constant(mask[:, ::-1] if left_padded else mask)


def _outputs_and_gradients(layer, x, mask, initial_state, training=None):
    with tf.GradientTape() as tape:
        tape.watch([x, *initial_state])
        outputs, h, c = layer(x, mask=mask, initial_state=initial_state, training=training)
        # weights every output differently, so that each one's gradient matters
        loss = (
            tf.reduce_sum(tf.cast(outputs, tf.float32) * tf.range(1.0, UNITS + 1.0))
            + tf.reduce_sum(tf.cast(h, tf.float32) ** 2)
            + tf.reduce_sum(tf.cast(c, tf.float32) * 3.0)
        )
    gradients = tape.gradient(loss, [x, *initial_state, *layer.trainable_weights])
    return [
        tf.cast(tf.convert_to_tensor(v), tf.float32).numpy() for v in (outputs, h, c, *gradients)
    ]


@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("left_padded", [False, True])
@pytest.mark.parametrize("training", [True, False])
def test_outputs_states_and_gradients_equal_keras(go_backwards, left_padded, training):
    """training=True: the loop with the written-out backward pass; False: inference, which packs
    right-padded rows (the forward, unreversed, right-padded case) and differentiates as TF does."""
    ours, theirs, x = _pair(go_backwards=go_backwards)
    initial_state = [tf.random.stateless_normal([BATCH, UNITS], seed=[3, i]) for i in range(2)]
    mask = _mask(left_padded)
    for mine, reference in zip(
        _outputs_and_gradients(ours, x, mask, initial_state, training),
        _outputs_and_gradients(theirs, x, mask, initial_state, training),
    ):
        np.testing.assert_allclose(mine, reference, rtol=1e-5, atol=1e-5)


def test_inference_packs_rows_padded_on_one_side(monkeypatch):
    """Inference on rows padded on the right, or on the left (a right-padded batch read
    backwards), runs the packed loop (and only then): each step multiplies the rows real at
    that step, the longest first."""
    import s2s_keras.layers.lstm as lstm

    calls = []
    packed = lstm._packed_recurrence
    monkeypatch.setattr(
        lstm, "_packed_recurrence", lambda *args: calls.append(args[3]) or packed(*args)
    )
    ours, theirs, x = _pair()
    for left_padded in (False, True):
        mine = ours(x, mask=_mask(left_padded), training=False)
        for got, expected in zip(mine, theirs(x, mask=_mask(left_padded))):
            np.testing.assert_allclose(got, expected, atol=1e-5)
    ours(x, mask=_mask(), training=True)
    both_sides = np.array([[False] + [True] * (STEPS - 2) + [False]] * BATCH)
    both_sides[0, 0] = True  # rows of different lengths, not one span
    mine = ours(x, mask=tf.constant(both_sides), training=False)
    for got, expected in zip(mine, theirs(x, mask=tf.constant(both_sides))):
        np.testing.assert_allclose(got, expected, atol=1e-5)
    # eagerly, tf.cond runs only the branch taken: padding on one side, not training
    assert len(calls) == 2 and all(list(lengths.numpy()) == LENGTHS for lengths in calls)


@pytest.mark.parametrize("go_backwards", [False, True])
def test_inference_runs_a_span_every_row_shares_unmasked(go_backwards, monkeypatch):
    """Inference where every row is real over the same steps (one request; a batch of one
    length; padded on the right, the left or both) runs `_span_recurrence`: those steps only,
    no masks. Outputs, states and gradients equal Keras'; mixed lengths do not take it."""
    import s2s_keras.layers.lstm as lstm

    calls = []
    span = lstm._span_recurrence
    monkeypatch.setattr(
        lstm, "_span_recurrence", lambda *args: calls.append(args[3:5]) or span(*args)
    )
    ours, theirs, x = _pair(go_backwards=go_backwards)
    initial_state = [tf.random.stateless_normal([BATCH, UNITS], seed=[3, i]) for i in range(2)]
    for real in ([1, 1, 1, 1, 0, 0], [0, 0, 1, 1, 1, 1], [0, 1, 1, 1, 0, 0], [1] * STEPS):
        mask = tf.constant([[bool(r) for r in real]] * BATCH)
        for mine, reference in zip(
            _outputs_and_gradients(ours, x, mask, initial_state, training=False),
            _outputs_and_gradients(theirs, x, mask, initial_state),
        ):
            np.testing.assert_allclose(mine, reference, rtol=1e-5, atol=1e-5)
        start = real[::-1].index(1) if go_backwards else real.index(1)
        assert [int(v) for v in calls.pop()] == [start, sum(real)]
    one = ours(x[:1], mask=tf.constant([[True] * 3 + [False] * 3]), training=False)
    for got, expected in zip(one, theirs(x[:1], mask=tf.constant([[True] * 3 + [False] * 3]))):
        np.testing.assert_allclose(got, expected, atol=1e-5)
    assert len(calls) == 1
    ours(x, mask=_mask(), training=False)  # mixed lengths
    ours(x, mask=tf.zeros([BATCH, STEPS], tf.bool), training=False)  # no real step
    assert len(calls) == 1


def test_no_mask_and_no_initial_state_equal_keras():
    ours, theirs, x = _pair()
    for mine, reference in zip(ours(x), theirs(x)):
        np.testing.assert_allclose(mine, reference, atol=1e-6)


def test_bidirectional_equals_keras():
    ours, theirs, x = _pair()
    ours_bi, theirs_bi = keras.layers.Bidirectional(ours), keras.layers.Bidirectional(theirs)
    mask = _mask()
    ours_bi(x, mask=mask)
    theirs_bi(x, mask=mask)
    theirs_bi.set_weights(ours_bi.get_weights())
    for mine, reference in zip(ours_bi(x, mask=mask), theirs_bi(x, mask=mask)):
        np.testing.assert_allclose(mine, reference, atol=1e-5)


def test_mixed_bfloat16_is_close_to_keras_and_keeps_float32_weights():
    ours, theirs, x = _pair(dtype="mixed_bfloat16")
    assert ours.cell.kernel.dtype == "float32"
    initial_state = [tf.zeros([BATCH, UNITS])] * 2
    results = [_outputs_and_gradients(layer, x, _mask(), initial_state) for layer in (ours, theirs)]
    outputs = ours(x, mask=_mask())
    assert all(o.dtype == tf.bfloat16 for o in outputs)
    for mine, reference in zip(*results):
        scale = max(np.abs(reference).max(), 1e-3)
        # bf16 has 8 significant bits; ours keeps the gate arithmetic in float32
        assert np.abs(mine - reference).max() / scale < 0.05


@pytest.mark.parametrize("dtype", ["float32", "mixed_bfloat16"])
def test_steps_reproduce_the_sequence(dtype):
    """The decoding step (weights read once) gives the sequence loop's outputs and states."""
    ours, _, x = _pair(dtype=dtype)
    compute = ours.compute_dtype
    h = c = tf.zeros([BATCH, UNITS], compute)
    outputs, last_h, last_c = lstm_sequence(
        tf.cast(x, compute), h, c, None, lstm_weights(ours.cell)
    )
    [step] = cell_steppers([ours])
    state = [h, c]
    for t in range(STEPS):
        output, [state] = step_cells([step], tf.cast(x[:, t], compute), [state])
        tolerance = 1e-6 if dtype == "float32" else 2e-2
        np.testing.assert_allclose(
            tf.cast(output, tf.float32), tf.cast(outputs[:, t], tf.float32), atol=tolerance
        )
    np.testing.assert_allclose(
        tf.cast(state[1], tf.float32), tf.cast(last_c, tf.float32), atol=tolerance
    )


def test_step_equals_the_gate_equations():
    ours, _, x = _pair()
    kernel, recurrent, bias = (w.numpy() for w in ours.cell.weights)
    h = np.random.default_rng(1).normal(size=(BATCH, UNITS)).astype("float32")
    c = np.random.default_rng(2).normal(size=(BATCH, UNITS)).astype("float32")
    z = x[:, 0].numpy() @ kernel + h @ recurrent + bias
    sigmoid = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    i, f, g, o = (
        sigmoid(z[:, :UNITS]),
        sigmoid(z[:, UNITS : 2 * UNITS]),
        np.tanh(z[:, 2 * UNITS : 3 * UNITS]),
        sigmoid(z[:, 3 * UNITS :]),
    )
    expected_c = f * c + i * g
    new_h, new_c = lstm_step(x[:, 0], tf.constant(h), tf.constant(c), lstm_weights(ours.cell))
    np.testing.assert_allclose(new_c, expected_c, atol=1e-5)
    np.testing.assert_allclose(new_h, o * np.tanh(expected_c), atol=1e-5)


def test_recurrent_dropout_while_training_falls_back_to_keras_loop():
    ours, theirs, x = _pair(recurrent_dropout=0.5, seed=7)
    # not training: no dropout, our loop; equal to Keras
    np.testing.assert_allclose(ours(x)[0], theirs(x)[0], atol=1e-6)
    training = ours(x, training=True)[0].numpy()
    assert np.isfinite(training).all() and not np.allclose(training, ours(x)[0])


def test_saves_and_reloads(tmp_path):
    ours, _, x = _pair()
    model = keras.Sequential(
        [keras.Input((STEPS, FEATURES)), LSTM(UNITS, return_sequences=True, use_cudnn=False)]
    )
    model.layers[0].set_weights(ours.get_weights()[:3])
    model.save(tmp_path / "m.keras")
    again = keras.saving.load_model(tmp_path / "m.keras")
    assert isinstance(again.layers[0], LSTM)
    np.testing.assert_allclose(again(x), model(x), atol=1e-6)


@pytest.mark.parametrize("precision", ["mixed_bfloat16", "float32"])
@pytest.mark.parametrize("name", ["small", "lstm"])
def test_g2p_presets_train_and_decode_on_the_fast_path(name, precision, monkeypatch):
    """The fast path, guarded by behaviour (not a timing): the models of `make train`'s preset
    and of the defaults, in bf16 (what `auto` picks on a CPU with native bf16) and float32
    alike, never enter Keras' per-step LSTM loop in their training step or decoding."""
    import dataclasses

    from s2s_keras.config import preset
    from s2s_keras.decoding import greedy_search
    from s2s_keras.text import END_ID, START_ID
    from s2s_keras.training import build_model, compile_model

    config = preset(name)
    assert config.train.precision == "auto" and config.model.cell == "lstm"
    config = dataclasses.replace(
        config,
        model=dataclasses.replace(
            config.model,
            hidden_units=8,
            embedding_size=8,
            # a narrower encoder than the decoder, as `small`'s, stays narrower
            encoder_units=4 if config.model.encoder_units else 0,
        ),
        train=dataclasses.replace(config.train, precision=precision),
    )
    model = build_model(config, list("abcdef"), ["X", "Y", "Z"])
    compile_model(model, config, steps_per_epoch=1)

    def refuse(*args, **kwargs):
        raise AssertionError("Keras' per-step LSTM loop ran")

    monkeypatch.setattr(keras.layers.RNN, "inner_loop", refuse)
    monkeypatch.setattr(keras.layers.LSTMCell, "call", refuse)
    import s2s_keras.layers.lstm as lstm

    tables = []
    input_table = lstm.input_table
    monkeypatch.setattr(lstm, "input_table", lambda *a: tables.append(a) or input_table(*a))
    inputs = {
        "source_ids": tf.constant([[4, 5, 6, 0], [7, 8, 0, 0]]),
        "target_in_ids": tf.constant([[START_ID, 4, 5], [START_ID, 6, 0]]),
    }
    history = model.fit(
        tf.data.Dataset.from_tensors((inputs, tf.constant([[4, 5, END_ID], [6, END_ID, 0]]))),
        epochs=1,
        verbose=0,
    )
    assert np.isfinite(history.history["loss"][0])
    directions = 2 if config.model.bidirectional else 1
    # the first layers' inputs from token tables: each encoder direction and the decoder, in
    # every trace of the training step
    assert tables and len(tables) % (directions + 1) == 0
    recurrent = [
        direction
        for layer in model.encoder_layers + model.decoder_layers
        for direction in (
            (layer.forward_layer, layer.backward_layer)
            if isinstance(layer, keras.layers.Bidirectional)
            else (layer,)
        )
    ]
    encoder_layers = config.model.encoder_num_layers or config.model.num_layers
    assert len(recurrent) == directions * encoder_layers + config.model.num_layers
    dtype = "bfloat16" if precision == "mixed_bfloat16" else "float32"
    assert all(isinstance(layer, LSTM) and layer.compute_dtype == dtype for layer in recurrent)
    ids = greedy_search(
        model.step_function(),
        model.encode(inputs["source_ids"]),
        tf.constant([START_ID] * 2),
        END_ID,
        5,
    )
    assert ids.shape[0] == 2


@pytest.mark.parametrize("dtype", ["float32", "mixed_bfloat16"])
def test_first_decoding_step_gathers_its_input_projection_from_a_table(dtype, monkeypatch):
    """With an embedding, the first layer's step takes token ids and looks `x W_x + b` up in
    `E W_x + b` (`input_table`): the same numbers as embedding the token and multiplying."""
    import s2s_keras.layers.lstm as lstm
    from s2s_keras.layers.lstm import input_table

    ours, _, _ = _pair(dtype=dtype)
    embedding = keras.layers.Embedding(12, FEATURES, dtype=dtype)
    embedding.build((None, None))
    ids = tf.constant([3, 0, 11, 5])
    weights = lstm_weights(ours.cell)
    table = input_table(embedding.embeddings.value, weights)
    assert table.shape == (12, 4 * UNITS) and table.dtype == tf.float32
    compute = ours.compute_dtype
    state = [[tf.cast(tf.random.stateless_normal([4, UNITS], [1, 2]), compute)] * 2]
    [step] = cell_steppers([ours], embedding)
    monkeypatch.setattr(lstm, "TABLE_MAX_ROWS", 0)  # the embed-then-multiply step
    [multiply] = cell_steppers([ours], embedding)
    tolerance = 1e-6 if dtype == "float32" else 1e-2
    for got, expected in zip(
        step_cells([step], ids, state)[1][0], step_cells([multiply], ids, state)[1][0]
    ):
        np.testing.assert_allclose(
            tf.cast(got, tf.float32), tf.cast(expected, tf.float32), atol=tolerance
        )
    looked_up = tf.cast(tf.gather(embedding.embeddings.value, ids), compute)
    expected = tf.cast(tf.matmul(looked_up, weights[0]), tf.float32) + weights[2]
    np.testing.assert_allclose(tf.gather(table, ids), expected, atol=tolerance)


def _token_run(layer, table_of, ids, training=True, **reads):
    """Outputs, states and the gradients of a weighted sum of them (embedding, then layer
    weights) for a pass over `embedding(ids)`."""
    variables = table_of.trainable_weights + layer.trainable_weights
    with tf.GradientTape() as tape:
        results = layer(table_of(ids), mask=ids != 0, training=training, **reads)
        loss = sum(
            tf.reduce_sum(tf.cast(t, tf.float32) * tf.random.stateless_normal(t.shape, [3, i]))
            for i, t in enumerate(results)
        )
    grads = [tf.convert_to_tensor(g) for g in tape.gradient(loss, variables)]
    return [tf.cast(t, tf.float32) for t in results], grads


@pytest.mark.parametrize("dtype", ["float32", "mixed_bfloat16"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("rows", ["training", "inference", "one request"])
def test_first_layer_gathers_its_inputs_from_the_token_table(
    dtype, bidirectional, rows, monkeypatch
):
    """Called with `token_ids` and their `embedding`, a pass takes `x W_x + b` from
    `input_table` (made once per pass and direction) instead of multiplying the embedded
    tokens: the same outputs, states and gradients of the embedding and of every LSTM weight,
    in training and in inference's packed loop (batches); a single request's loop multiplies."""
    import s2s_keras.layers.lstm as lstm
    from s2s_keras.layers import Bidirectional

    keras.utils.set_random_seed(3)
    layer = LSTM(UNITS, return_sequences=True, return_state=True, use_cudnn=False, dtype=dtype)
    if bidirectional:
        layer = Bidirectional(layer, dtype=dtype)
    embedding = keras.layers.Embedding(12, FEATURES, mask_zero=True, dtype=dtype)
    lengths = np.array(LENGTHS)[:, None]
    ids = np.random.default_rng(4).integers(1, 12, [BATCH, STEPS])
    ids = tf.constant(np.where(np.arange(STEPS)[None, :] < lengths, ids, 0), tf.int32)
    layer(embedding(ids), mask=ids != 0)
    if rows == "one request":
        ids = ids[:1]
    training = rows == "training"
    tables = []

    def counted(*args):
        tables.append(args)
        return input_table(*args)

    input_table = lstm.input_table
    monkeypatch.setattr(lstm, "input_table", counted)
    got = _token_run(layer, embedding, ids, training, token_ids=ids, embedding=embedding)
    # one request's span loop multiplies its few rows: a table would cost more
    assert len(tables) == (0 if rows == "one request" else 2 if bidirectional else 1)
    tables.clear()
    with lstm.without_token_tables():
        expected = _token_run(layer, embedding, ids, training, token_ids=ids, embedding=embedding)
    assert not tables  # embedded, then multiplied
    assert all(
        np.array_equal(a, b)
        for a, b in zip(
            expected[0] + expected[1], sum(_token_run(layer, embedding, ids, training), [])
        )
    )
    tolerance = 1e-5 if dtype == "float32" else 2e-2
    for a, b in zip(got[0] + got[1], expected[0] + expected[1], strict=True):
        np.testing.assert_allclose(a, b, atol=tolerance, rtol=tolerance)
    assert float(tf.reduce_max(tf.abs(got[1][0]))) > 0  # the embedding is trained through it


def test_token_ids_need_their_embedding_and_a_small_table():
    ours, _, x = _pair()
    ids = tf.ones([BATCH, STEPS], tf.int32)
    with pytest.raises(ValueError, match=r"needs the embedding"):
        ours(x, token_ids=ids, training=True)
    big = keras.layers.Embedding(2000, FEATURES)
    big.build((None, None))
    with pytest.raises(ValueError, match=r"at most 1024 rows"):
        ours(x, token_ids=ids, embedding=big, training=True)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_a_small_tables_gradient_is_one_one_hot_matmul(dtype):
    """`gather_table`: `tf.gather`'s rows, and for a table of at most `ONE_HOT_MAX_ROWS` rows
    `tf.gather`'s gradient (a sum of `dz` per id, repeated ids included) as one dense matmul
    in the compute dtype, within the rounding of `dz` to it; a larger table keeps
    `tf.gather`'s own sparse gradient."""
    from s2s_keras.layers import lstm

    rng = np.random.default_rng(5)
    ids = tf.constant(rng.integers(0, 9, [4, 6]), tf.int32)  # 24 ids of 9 rows: repeats
    weights = tf.constant(rng.normal(size=[4, 6, 8]), tf.float32)

    def run(table):
        with tf.GradientTape() as tape:
            tape.watch(table)
            rows = lstm.gather_table(table, ids, tf.as_dtype(dtype))
            loss = tf.reduce_sum(rows * weights)
        return rows, tape.gradient(loss, table)

    table = tf.constant(rng.normal(size=[9, 8]), tf.float32)
    rows, gradient = run(table)
    with lstm.without_one_hot_gradient():
        expected_rows, expected = run(table)
    assert isinstance(expected, tf.IndexedSlices)
    assert not isinstance(gradient, tf.IndexedSlices) and gradient.dtype == tf.float32
    np.testing.assert_array_equal(rows, expected_rows)
    tolerance = 1e-6 if dtype == "float32" else 2e-2
    np.testing.assert_allclose(
        gradient, tf.convert_to_tensor(expected), rtol=tolerance, atol=tolerance
    )
    assert isinstance(run(tf.zeros([lstm.ONE_HOT_MAX_ROWS + 1, 8]))[1], tf.IndexedSlices)
