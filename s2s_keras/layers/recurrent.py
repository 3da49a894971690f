"""The three recurrent cells of the model family, built one way for encoder and decoder."""

from __future__ import annotations

import keras

# cell name → (sequence layer, single-step cell, number of state tensors)
_CELLS = {
    "lstm": (keras.layers.LSTM, keras.layers.LSTMCell, 2),  # state [h, c]
    "gru": (keras.layers.GRU, keras.layers.GRUCell, 1),  # state [h]; Keras's reset_after=True form
    "rnn": (keras.layers.SimpleRNN, keras.layers.SimpleRNNCell, 1),  # h_t = tanh(W_hx x + W_hh h + b)
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


def step_cells(layers, x, state) -> tuple:
    """One time step through stacked sequence layers' cells: `x (batch, in)`, per-layer state
    lists → `(top output (batch, units), new per-layer state lists)`."""
    new_state = []
    for layer, layer_state in zip(layers, state):
        x, cell_state = layer.cell(x, list(layer_state), training=False)
        new_state.append(list(cell_state) if isinstance(cell_state, (list, tuple)) else [cell_state])
    return x, new_state
