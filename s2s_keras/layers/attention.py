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

    def call(self, query, keys, memory, memory_mask):
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
        scores = keras.ops.where(memory_mask, keras.ops.cast(scores, "float32"), _MASKED)
        weights = keras.ops.softmax(scores, axis=-1)
        # Exactly 0 on padding even where a whole row is padding (the uniform softmax there).
        weights = keras.ops.where(memory_mask, weights, 0.0)
        context = keras.ops.sum(keras.ops.cast(weights, dtype)[:, :, None] * memory, axis=1)
        attentional = keras.ops.tanh(
            keras.ops.matmul(
                keras.ops.concatenate([context, query], axis=-1),
                keras.ops.cast(self.output_kernel, dtype),
            )
        )
        return attentional, weights

    def compute_output_shape(self, query_shape, *args):
        return (query_shape[0], self.units), (query_shape[0], None)

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "memory_units": self.memory_units,
            "score": self.score,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
        }
