"""The training loss: token-level cross-entropy over real (non-padding) target tokens."""

from __future__ import annotations

import keras

# Private, as Keras's own losses use it; tests/test_losses.py checks we still match Keras.
from keras.src.backend import set_keras_mask

from s2s_keras.text import PAD_ID


@keras.saving.register_keras_serializable(package="s2s_keras")
class SequenceCrossentropy(keras.losses.Loss):
    """Mean over real target tokens of `-Σ_v q(v) log p(v | X, y_<t)` from float32 logits.

    `q` is the one-hot target (label_smoothing 0: the negative log-likelihood whose sum over a
    sequence is `-log P(Y|X)`), or with label smoothing ε (Szegedy et al. 2016)
    `q = (1 - ε)·onehot + ε/V`. Padding positions (id 0) add nothing and are not counted.

    Example:
        >>> loss = SequenceCrossentropy()
        >>> float(loss([[3, 0]], [[[0., 0., 0., 9.], [5., 0., 0., 0.]]])) < 1e-3
        True
    """

    def __init__(self, label_smoothing: float = 0.0, name: str = "sequence_crossentropy", **kwargs):
        super().__init__(name=name, **kwargs)
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(
                f"SequenceCrossentropy label_smoothing: expected a rate in [0, 1), "
                f"got {label_smoothing!r}"
            )
        self.label_smoothing = label_smoothing

    def call(self, y_true, y_pred):
        y_true = keras.ops.cast(y_true, "int32")
        log_probs = keras.ops.log_softmax(keras.ops.cast(y_pred, "float32"), axis=-1)
        valid = keras.ops.not_equal(y_true, PAD_ID)
        nll = -keras.ops.take_along_axis(
            log_probs, keras.ops.where(valid, y_true, 0)[..., None], axis=-1
        )[..., 0]
        if self.label_smoothing:
            nll = (1.0 - self.label_smoothing) * nll - self.label_smoothing * keras.ops.mean(
                log_probs, axis=-1
            )
        loss = keras.ops.where(valid, nll, 0.0)
        # As Keras's `ignore_class`: the mask makes the mean run over real tokens only.
        set_keras_mask(loss, valid)
        return loss

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing}
