"""Reverses the real (non-padding) tokens of each row, keeping padding on the right."""

from __future__ import annotations

import keras
import tensorflow as tf

from s2s_keras.text import PAD_ID


@keras.saving.register_keras_serializable(package="s2s_keras")
class ReverseSequence(keras.layers.Layer):
    """`[[a, b, c, 0, 0]] -> [[c, b, a, 0, 0]]` for right-padded id rows `(batch, time)`.

    Sutskever et al. (2014) feed the source reversed: the first target tokens then sit close to
    the source tokens they depend on. Applied twice it is the identity. With `lengths`
    `(batch,)`, any `(batch, time, ...)` tensor is reversed over its first `lengths` steps (how
    the encoder's outputs are put back into source order for attention).

    Example:
        >>> ReverseSequence()(tf.constant([[4, 5, 6, 0]])).numpy().tolist()
        [[6, 5, 4, 0]]
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True  # padding stays where it was

    def call(self, inputs, lengths=None):
        if lengths is None:
            lengths = tf.reduce_sum(tf.cast(tf.not_equal(inputs, PAD_ID), tf.int64), axis=1)
        return tf.reverse_sequence(inputs, tf.cast(lengths, tf.int64), seq_axis=1, batch_axis=0)

    def compute_output_shape(self, inputs_shape, lengths_shape=None):
        return inputs_shape
