"""A learned initial recurrent state (the seed's `include_h0`) instead of zeros."""

from __future__ import annotations

import typing

import keras


@keras.saving.register_keras_serializable(package="s2s_keras")
class LearnedInitialState(keras.layers.Layer):
    """Trainable vectors `h0` (and `c0` for an LSTM), one per state tensor, repeated per row.

    Args:
        state_sizes: size of each state tensor of the RNN (`[units, units]` for an LSTM,
            `[units]` for a GRU or the tanh RNN; twice that list for a bidirectional layer).

    Call: `ids (batch, time)` (only its batch size is used) → list of `(batch, size)` tensors
    in the layer's compute dtype. Initialized to zeros, so training starts where the usual
    zero state would.

    Example:
        >>> states = LearnedInitialState([3, 3])(keras.ops.zeros((2, 5), "int32"))
        >>> [tuple(s.shape) for s in states]
        [(2, 3), (2, 3)]
    """

    def __init__(self, state_sizes: typing.Sequence[int], **kwargs):
        super().__init__(**kwargs)
        self.state_sizes = [int(size) for size in state_sizes]

    def build(self, input_shape=None):
        self.states = [
            self.add_weight(shape=(size,), initializer="zeros", name=f"h0_{index}")
            for index, size in enumerate(self.state_sizes)
        ]
        self.built = True

    def call(self, ids):
        batch_size = keras.ops.shape(ids)[0]
        return [
            keras.ops.broadcast_to(
                keras.ops.cast(state, self.compute_dtype)[None, :], (batch_size, size)
            )
            for state, size in zip(self.states, self.state_sizes)
        ]

    def compute_output_shape(self, input_shape):
        return [(input_shape[0], size) for size in self.state_sizes]

    def get_config(self):
        return {**super().get_config(), "state_sizes": self.state_sizes}
