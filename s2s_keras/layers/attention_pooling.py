"""Attention pooling: one vector from a masked sequence, weighted by a learned query."""

from __future__ import annotations

import keras


@keras.saving.register_keras_serializable(package="s2s_keras")
class AttentionPooling(keras.layers.Layer):
    """`a_t = softmax_t(v · tanh(W x_t + b))` over unmasked steps, output `Σ_t a_t x_t`
    (Yang et al. 2016's word attention; `v` is the learned query).

    Args:
        units: size of the hidden scoring layer `W`.

    Call: `x (batch, time, features)`, `mask (batch, time)` bool → `(pooled (batch, features),
    weights (batch, time))`; masked steps get weight exactly 0 (a row with no unmasked step
    pools to zeros).

    Example:
        >>> pooled, weights = AttentionPooling(4)(keras.ops.ones((2, 3, 5)),
        ...                                      mask=keras.ops.array([[True, True, False]] * 2))
        >>> tuple(pooled.shape), weights.numpy()[0].tolist()
        ((2, 5), [0.5, 0.5, 0.0])
    """

    def __init__(self, units: int, kernel_initializer=None, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        init = {} if kernel_initializer is None else {"kernel_initializer": kernel_initializer}
        self.hidden = keras.layers.Dense(
            units, activation="tanh", dtype=self.dtype_policy, name="hidden", **init
        )
        self.query = keras.layers.Dense(
            1, use_bias=False, dtype=self.dtype_policy, name="query", **init
        )
        self.supports_masking = True

    def build(self, input_shape):
        self.hidden.build(input_shape)
        self.query.build((*input_shape[:-1], self.units))
        self.built = True

    def call(self, x, mask=None):
        scores = keras.ops.cast(self.query(self.hidden(x))[..., 0], "float32")
        if mask is None:
            mask = keras.ops.ones(keras.ops.shape(scores), "bool")
        scores = keras.ops.where(mask, scores, -1e9)
        weights = keras.ops.where(mask, keras.ops.softmax(scores, axis=-1), 0.0)
        pooled = keras.ops.sum(keras.ops.cast(weights, x.dtype)[..., None] * x, axis=1)
        return pooled, weights

    def compute_output_spec(self, x, mask=None):
        return (
            keras.KerasTensor((x.shape[0], x.shape[2]), dtype=self.compute_dtype),
            keras.KerasTensor((x.shape[0], x.shape[1]), dtype="float32"),
        )

    def compute_mask(self, x, mask=None):
        return None

    def get_config(self):
        return {**super().get_config(), "units": self.units}
