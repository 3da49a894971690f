"""Global attention over the encoder's outputs (Luong et al. 2015; Bahdanau et al. 2015)."""

from __future__ import annotations

import keras

SCORES = ("luong_dot", "luong_general", "bahdanau")
# Large finite: masked scores must give exactly 0 weight without -inf - -inf = NaN.
_MASKED = -1e9


@keras.saving.register_keras_serializable(package="s2s_keras")
class Attention(keras.layers.Layer):
    """Scores the decoder's top state `h_t` against every source position `m_s`, then mixes.

        luong_dot:     score(h_t, m_s) = h_t · m_s                 (needs memory_units == units)
        luong_general: score(h_t, m_s) = h_t · (W_a m_s)
        bahdanau:      score(h_t, m_s) = v · tanh(W_q h_t + W_k m_s)   (additive)
        a_ts = softmax_s(score) over unpadded positions (padded: exactly 0); c_t = Σ_s a_ts m_s
        attentional state h̃_t = tanh(W_c [c_t; h_t])                 (Luong et al., eq. 5)

    Keys (`W_a m_s`, `W_k m_s`) depend only on the source, so `keys(memory)` computes them once
    per sequence and every step reuses them. Scores and the softmax run in float32.

    Args:
        units: decoder state size (and of `h̃`).
        memory_units: size of the encoder outputs `m_s`.
        score: one of `SCORES`.

    Call: `(query (batch, units), keys (batch, S, k), memory (batch, S, memory_units),
    memory_mask (batch, S) bool)` → `(attentional (batch, units), weights (batch, S) float32)`.
    A query `(batch, T, units)` scores every step at once (attention over the outputs of a
    decoder without input feeding) → `(attentional (batch, T, units), weights (batch, T, S))`:
    the same numbers as T single-step calls, computed as batched matmuls. `keys=None` computes
    them from `memory` in the call (a functional model must, to read the kernel's current value).

    Example:
        >>> layer = Attention(4, 6, "bahdanau")
        >>> memory = keras.random.normal((2, 3, 6))
        >>> h, a = layer(keras.ops.ones((2, 4)), layer.keys(memory), memory,
        ...              keras.ops.convert_to_tensor([[True, True, False]] * 2))
        >>> tuple(h.shape), tuple(a.shape)
        ((2, 4), (2, 3))
    """

    def __init__(
        self,
        units: int,
        memory_units: int,
        score: str = "luong_general",
        kernel_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if score not in SCORES:
            raise ValueError(f"Attention score: expected one of {SCORES}, got {score!r}")
        if score == "luong_dot" and memory_units != units:
            raise ValueError(
                f"Attention luong_dot needs memory_units == units, got {memory_units} and {units}"
            )
        self.units = units
        self.memory_units = memory_units
        self.score = score
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.supports_masking = True  # over time: the query's padding mask passes on

    def build(self, input_shape=None):
        init = self.kernel_initializer
        if self.score == "luong_general":
            self.key_kernel = self.add_weight(
                shape=(self.memory_units, self.units), initializer=init, name="key_kernel"
            )
        elif self.score == "bahdanau":
            self.key_kernel = self.add_weight(
                shape=(self.memory_units, self.units), initializer=init, name="key_kernel"
            )
            self.query_kernel = self.add_weight(
                shape=(self.units, self.units), initializer=init, name="query_kernel"
            )
            self.score_vector = self.add_weight(
                shape=(self.units,), initializer=init, name="score_vector"
            )
        self.output_kernel = self.add_weight(
            shape=(self.memory_units + self.units, self.units),
            initializer=init,
            name="output_kernel",
        )
        self.built = True

    def keys(self, memory):
        """`(batch, S, memory_units)` → what the scores compare the query with."""
        if not self.built:
            self.build()
        if self.score == "luong_dot":
            return memory
        return keras.ops.matmul(memory, keras.ops.cast(self.key_kernel, memory.dtype))

    def decoding_state(self, layer_states, memory, memory_mask) -> dict:
        """A decoder's state around this attention: the per-layer cell states, the encoder
        memory, its keys (computed once here) and its mask."""
        return {
            "layers": [list(states) for states in layer_states],
            "memory": memory,
            "keys": self.keys(memory),
            "memory_mask": memory_mask,
        }

    def call(self, query, keys, memory, memory_mask):
        if keys is None:  # from the memory, inside the call (a graph must read the kernel)
            keys = self.keys(memory)
        if len(query.shape) == 3:
            return self._over_time(query, keys, memory, memory_mask)
        dtype = query.dtype
        if self.score == "bahdanau":
            projected = keras.ops.matmul(query, keras.ops.cast(self.query_kernel, dtype))
            scores = keras.ops.sum(
                keras.ops.tanh(keys + projected[:, None, :])
                * keras.ops.cast(self.score_vector, dtype),
                axis=-1,
            )
        else:
            scores = keras.ops.sum(keys * query[:, None, :], axis=-1)
        weights = self._weights(scores, memory_mask)
        context = keras.ops.sum(keras.ops.cast(weights, dtype)[:, :, None] * memory, axis=1)
        return self._attentional(context, query), weights

    def _over_time(self, query, keys, memory, memory_mask):
        """`query (batch, T, units)`: every step's scores, context and `h̃` in batched matmuls."""
        dtype = query.dtype
        if self.score == "bahdanau":
            projected = keras.ops.matmul(query, keras.ops.cast(self.query_kernel, dtype))
            scores = keras.ops.sum(
                keras.ops.tanh(keys[:, None, :, :] + projected[:, :, None, :])
                * keras.ops.cast(self.score_vector, dtype),
                axis=-1,
            )
        else:
            scores = keras.ops.matmul(query, keras.ops.transpose(keys, (0, 2, 1)))
        weights = self._weights(scores, memory_mask[:, None, :])
        context = keras.ops.matmul(keras.ops.cast(weights, dtype), memory)
        return self._attentional(context, query), weights

    def _weights(self, scores, memory_mask):
        """Softmax over the source axis (last) in float32, exactly 0 on padding."""
        scores = keras.ops.where(memory_mask, keras.ops.cast(scores, "float32"), _MASKED)
        weights = keras.ops.softmax(scores, axis=-1)
        # Exactly 0 on padding even where a whole row is padding (the uniform softmax there).
        return keras.ops.where(memory_mask, weights, 0.0)

    def _attentional(self, context, query):
        """`h̃ = tanh(W_c [c; h])`."""
        return keras.ops.tanh(
            keras.ops.matmul(
                keras.ops.concatenate([context, query], axis=-1),
                keras.ops.cast(self.output_kernel, query.dtype),
            )
        )

    def compute_output_shape(self, query_shape, *args):
        return (*query_shape[:-1], self.units), (*query_shape[:-1], None)

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "memory_units": self.memory_units,
            "score": self.score,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
        }
