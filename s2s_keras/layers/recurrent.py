"""The three recurrent cells of the model family, built one way for encoder and decoder."""

from __future__ import annotations

import keras
import tensorflow as tf

from s2s_keras.layers.lstm import (
    LSTM,
    Bidirectional,
    has_lstm_equations,
    input_table,
    lstm_projected_step,
    lstm_step,
    lstm_weights,
    reads_token_table,
)

# cell name → (sequence layer, single-step cell, number of state tensors)
_CELLS = {
    "lstm": (
        LSTM,
        keras.layers.LSTMCell,
        2,
    ),  # state [h, c]; Keras' LSTM with a faster loop (layers/lstm.py)
    "gru": (keras.layers.GRU, keras.layers.GRUCell, 1),  # state [h]; Keras's reset_after=True form
    "rnn": (
        keras.layers.SimpleRNN,
        keras.layers.SimpleRNNCell,
        1,
    ),  # h_t = tanh(W_hx x + W_hh h + b)
}


def state_count(cell: str) -> int:
    """How many state tensors one layer of `cell` carries (2 for an LSTM: h and c)."""
    return _CELLS[cell][2]


def recurrent_layer(cell: str, units: int, **kwargs) -> keras.layers.RNN:
    """A sequence layer returning `(outputs (batch, time, units), *states)`.

    `use_cudnn=False`: the traced graph must run on CPU-only TF Serving even when exported on a
    GPU machine (CudnnRNNV3 would be baked in otherwise)."""
    layer_type = _CELLS[cell][0]
    if cell != "rnn":
        kwargs["use_cudnn"] = False
    return layer_type(units, return_sequences=True, return_state=True, **kwargs)


def recurrent_cell(cell: str, units: int, **kwargs) -> keras.layers.Layer:
    """A single-step cell: `cell(x (batch, in), [states]) -> (output (batch, units), [states])`."""
    return _CELLS[cell][1](units, **kwargs)


def token_inputs(layer, embedding, token_ids) -> dict:
    """Keyword arguments for calling `layer`, the first sequence layer of a stack, on
    `embedding(token_ids)`: `{token_ids, embedding}` when its training loop may gather its
    projected inputs from a table (`layers/lstm.py`), else `{}`."""
    inner = layer.forward_layer if isinstance(layer, Bidirectional) else layer
    if isinstance(layer, (LSTM, Bidirectional)) and reads_token_table(inner, embedding):
        return {"token_ids": token_ids, "embedding": embedding}
    return {}


def cell_steppers(layers, embedding=None) -> list:
    """Per stacked sequence layer, a step function `(x (batch, in), state list) -> (output,
    state list)` with the layer's weights. Make them once, OUTSIDE a decoding loop: an LSTM's
    kernels are read and cast there (`layers/lstm.py`), not at every step. With `embedding`, the
    first step function takes token ids `(batch,)` instead of vectors (and for an LSTM over a
    small vocabulary gathers its projected inputs from `input_table`, made here)."""
    steppers = []
    for index, layer in enumerate(layers):
        if index == 0 and embedding is not None and reads_token_table(layer, embedding):
            weights = lstm_weights(layer.cell)

            def step(
                token_ids,
                state,
                weights=weights,
                table=input_table(embedding.embeddings.value, weights),
            ):
                h, c = lstm_projected_step(tf.gather(table, token_ids), state[0], state[1], weights)
                return h, [h, c]

            steppers.append(step)
            continue
        if isinstance(layer, LSTM) and has_lstm_equations(
            layer.cell
        ):  # the math of its sequence loop

            def step(x, state, weights=lstm_weights(layer.cell)):
                h, c = lstm_step(x, state[0], state[1], weights)
                return h, [h, c]
        else:

            def step(x, state, cell=layer.cell):
                output, cell_state = cell(x, list(state), training=False)
                return output, list(cell_state) if isinstance(cell_state, (list, tuple)) else [
                    cell_state
                ]

        if index == 0 and embedding is not None:

            def step(token_ids, state, vector_step=step):
                # The embedding's own table, looked up without attaching a padding mask (a cell
                # does not take masks; a step never sees padding that matters).
                x = keras.ops.take(embedding.embeddings, token_ids, axis=0)
                return vector_step(keras.ops.cast(x, embedding.compute_dtype), state)

        steppers.append(step)
    return steppers


def step_cells(steppers, x, state) -> tuple:
    """One time step through stacked layers' `cell_steppers`: `x (batch, in)`, per-layer state
    lists → `(top output (batch, units), new per-layer state lists)`."""
    new_state = []
    for step, layer_state in zip(steppers, state):
        x, layer_state = step(x, layer_state)
        new_state.append(layer_state)
    return x, new_state
