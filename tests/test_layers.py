import numpy as np
import pytest
import tensorflow as tf

from s2s_keras.layers import ReverseSequence


def test_reverse_keeps_padding_right_aligned_and_is_its_own_inverse():
    ids = tf.constant([[4, 5, 6, 0, 0], [7, 0, 0, 0, 0], [0, 0, 0, 0, 0], [4, 5, 6, 7, 8]])
    reverse = ReverseSequence()
    once = reverse(ids).numpy()
    assert once.tolist() == [[6, 5, 4, 0, 0], [7, 0, 0, 0, 0], [0, 0, 0, 0, 0], [8, 7, 6, 5, 4]]
    np.testing.assert_array_equal(reverse(once).numpy(), ids.numpy())


# --- The seed's equations, computed in NumPy from the layers' own weights ---------------------

import keras  # noqa: E402

from s2s_keras import Seq2Seq  # noqa: E402
from s2s_keras.layers import Attention, LearnedInitialState  # noqa: E402

UNITS = 3
IDS = np.array([[4, 5, 6, 7, 0]])  # one padding step: it must not move the state


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def one_layer_model(cell, **options):
    keras.utils.set_random_seed(3)
    model = Seq2Seq(
        list("abcdef"),
        ["X", "Y", "Z"],
        cell=cell,
        embedding_size=4,
        hidden_units=UNITS,
        num_layers=1,
        **options,
    )
    rng = np.random.default_rng(0)
    for weight in model.weights:  # random biases and h0 too, so every term is exercised
        weight.assign(rng.normal(0, 0.5, weight.shape).astype("float32"))
    return model


def source_vectors(model):
    return model.source_embedding.embeddings.numpy()[IDS[0][IDS[0] != 0]]


def test_lstm_state_follows_the_gate_equations():
    # Keras's LSTM kernels hold the gates in the order i, f, c̃, o.
    model = one_layer_model("lstm")
    cell = model.encoder_layers[0].cell
    W, U, b = cell.kernel.numpy(), cell.recurrent_kernel.numpy(), cell.bias.numpy()
    h = c = np.zeros(UNITS)
    n = UNITS
    for x in source_vectors(model):
        z = x @ W + h @ U + b
        i, f, c_tilde, o = (
            sigmoid(z[:n]),
            sigmoid(z[n : 2 * n]),
            np.tanh(z[2 * n : 3 * n]),
            sigmoid(z[3 * n :]),
        )
        c = f * c + i * c_tilde
        h = o * np.tanh(c)
    [[h_model, c_model]] = model.encode(tf.constant(IDS))
    np.testing.assert_allclose(h_model.numpy()[0], h, atol=1e-5)
    np.testing.assert_allclose(c_model.numpy()[0], c, atol=1e-5)

    # The encoder's last state starts the decoder; logits = W_o h_1 + b_o (softmax in the loss).
    decoder = model.decoder_layers[0].cell
    y = model.target_embedding.embeddings.numpy()[2]  # <s>
    z = y @ decoder.kernel.numpy() + h @ decoder.recurrent_kernel.numpy() + decoder.bias.numpy()
    i, f, c_tilde, o = (
        sigmoid(z[:n]),
        sigmoid(z[n : 2 * n]),
        np.tanh(z[2 * n : 3 * n]),
        sigmoid(z[3 * n :]),
    )
    h1 = o * np.tanh(f * c + i * c_tilde)
    expected = h1 @ model.output_projection.kernel.numpy() + model.output_projection.bias.numpy()
    logits, _ = model.decode_step(tf.constant([2]), model.encode(tf.constant(IDS)))
    np.testing.assert_allclose(logits.numpy()[0], expected, atol=1e-5)


def test_gru_state_follows_its_equations():
    # Keras's GRU (reset_after=True): gates z, r, h̃; input and recurrent biases apart.
    model = one_layer_model("gru")
    cell = model.encoder_layers[0].cell
    W, U, (b_x, b_h) = cell.kernel.numpy(), cell.recurrent_kernel.numpy(), cell.bias.numpy()
    h, n = np.zeros(UNITS), UNITS
    for x in source_vectors(model):
        gx, gh = x @ W + b_x, h @ U + b_h
        z = sigmoid(gx[:n] + gh[:n])
        r = sigmoid(gx[n : 2 * n] + gh[n : 2 * n])
        h_tilde = np.tanh(gx[2 * n :] + r * gh[2 * n :])
        h = z * h + (1 - z) * h_tilde
    [[h_model]] = model.encode(tf.constant(IDS))
    np.testing.assert_allclose(h_model.numpy()[0], h, atol=1e-5)


def test_tanh_rnn_with_learned_initial_state_follows_the_seed():
    # The seed: h_t = tanh(W_hx x_t + W_hh h_{t-1} + b), from a learnable h0.
    model = one_layer_model("rnn", learn_initial_state=True)
    cell = model.encoder_layers[0].cell
    h = model.initial_states[0].states[0].numpy()
    assert np.abs(h).sum() > 0
    for x in source_vectors(model):
        h = np.tanh(x @ cell.kernel.numpy() + h @ cell.recurrent_kernel.numpy() + cell.bias.numpy())
    [[h_model]] = model.encode(tf.constant(IDS))
    np.testing.assert_allclose(h_model.numpy()[0], h, atol=1e-5)


def test_bptt_gives_tied_weights_the_sum_of_every_time_steps_gradient():
    # loss = v · h_T for the tanh RNN; BPTT by hand: dL/dW_hh = Σ_t h_{t-1} ⊗ δ_t.
    model = one_layer_model("rnn", learn_initial_state=True)
    layer, h0_layer = model.encoder_layers[0], model.initial_states[0]
    cell = layer.cell
    xs = source_vectors(model)
    v = np.array([0.3, -1.0, 0.7])
    with tf.GradientTape() as tape:
        _, h_last = layer(tf.constant(xs[None]), initial_state=h0_layer(tf.constant(IDS)))
        loss = tf.reduce_sum(h_last[0] * v)
    grads = tape.gradient(loss, [cell.kernel, cell.recurrent_kernel, cell.bias, h0_layer.states[0]])

    W, U, b = cell.kernel.numpy(), cell.recurrent_kernel.numpy(), cell.bias.numpy()
    hs = [h0_layer.states[0].numpy()]
    for x in xs:
        hs.append(np.tanh(x @ W + hs[-1] @ U + b))
    dW, dU, db, dh = np.zeros_like(W), np.zeros_like(U), np.zeros_like(b), v
    for t in range(len(xs), 0, -1):
        delta = dh * (1 - hs[t] ** 2)
        dW += np.outer(xs[t - 1], delta)
        dU += np.outer(hs[t - 1], delta)  # the same W_hh at every step: contributions add up
        db += delta
        dh = delta @ U.T
    for got, expected in zip(grads, (dW, dU, db, dh)):
        np.testing.assert_allclose(got.numpy(), expected, atol=1e-5)


def test_attention_weights_sum_to_one_and_are_zero_on_padding():
    for score in ("luong_dot", "luong_general", "bahdanau"):
        layer = Attention(4, 4, score)
        memory = tf.random.normal((3, 5, 4))
        mask = tf.constant([[True] * 5, [True, True, False, False, False], [False] * 5])
        attentional, weights = layer(tf.random.normal((3, 4)), layer.keys(memory), memory, mask)
        weights = weights.numpy()
        np.testing.assert_allclose(weights[:2].sum(axis=1), 1.0, atol=1e-6)
        assert (weights[1, 2:] == 0).all() and (weights[2] == 0).all()
        assert attentional.shape == (3, 4) and np.abs(attentional.numpy()).max() <= 1.0


def test_attention_over_time_equals_one_call_per_step():
    for score in ("luong_dot", "luong_general", "bahdanau"):
        layer = Attention(4, 4, score)
        memory = tf.random.normal((3, 5, 4))
        mask = tf.constant([[True] * 5, [True, True, False, False, False], [False] * 5])
        queries = tf.random.normal((3, 6, 4))
        keys = layer.keys(memory)
        attentional, weights = layer(queries, keys, memory, mask)
        assert attentional.shape == (3, 6, 4) and weights.shape == (3, 6, 5)
        for t in range(6):
            step_attentional, step_weights = layer(queries[:, t], keys, memory, mask)
            np.testing.assert_allclose(attentional[:, t].numpy(), step_attentional, atol=1e-6)
            np.testing.assert_allclose(weights[:, t].numpy(), step_weights, atol=1e-6)
        assert (weights.numpy()[1, :, 2:] == 0).all() and (weights.numpy()[2] == 0).all()


def test_luong_dot_needs_equal_sizes():
    with pytest.raises(ValueError, match="luong_dot needs memory_units == units"):
        Attention(4, 8, "luong_dot")


def test_learned_initial_state_starts_at_zero_and_repeats_per_row():
    layer = LearnedInitialState([2, 3])
    states = layer(tf.zeros((4, 7), tf.int32))
    assert [s.shape for s in states] == [(4, 2), (4, 3)] and all(
        np.all(s.numpy() == 0) for s in states
    )
    assert len(layer.trainable_weights) == 2
