"""Stacked recurrent cells + global attention with input feeding (Luong et al. 2015)."""

from __future__ import annotations

import keras
import tensorflow as tf

from s2s_keras.layers.attention import Attention
from s2s_keras.layers.recurrent import recurrent_cell


@keras.saving.register_keras_serializable(package="s2s_keras")
class AttentionDecoder(keras.layers.Layer):
    """The decoder of an attention model, one step at a time in training and in inference.

    Step t (input feeding: the previous attentional state joins the input):
        x_t = [embedding(y_{t-1}); h̃_{t-1}]   (h̃_0 = 0)
        h_t^l, state_t^l = cell_l(x_t^l, state_{t-1}^l)   for l = 1..num_layers (x_t^{l+1} = h_t^l)
        h̃_t, a_t = Attention(h_t^L, memory)             → logits = output_projection(h̃_t)

    Teacher forcing runs the same `step` over the target sequence in a `tf.while_loop`; the
    decoding loops call `step` directly, so training and inference share every weight.
    Dropout (training only): between stacked cells, fresh per time step; recurrent dropout on
    each cell's state (one mask per sequence, as Keras's RNN layers do).

    Args:
        cell: `lstm`, `gru` or `rnn`; units, num_layers: per cell / stack depth.
        input_size: embedding size; memory_units: size of the encoder outputs.
        attention: score function, see `Attention`.
        dropout, recurrent_dropout: rates; kernel_initializer: for every kernel (None: Keras's
            defaults).

    Call: `(embedded (batch, T, input_size), memory (batch, S, memory_units), memory_mask
    (batch, S) bool, initial_state [per layer [h(, c)]])` → `(attentional (batch, T, units),
    weights (batch, T, S) float32)`.
    """

    def __init__(
        self,
        cell: str,
        units: int,
        num_layers: int,
        input_size: int,
        memory_units: int,
        attention: str = "luong_general",
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        kernel_initializer=None,
        seed: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.cell = cell
        self.units = units
        self.num_layers = num_layers
        self.input_size = input_size
        self.memory_units = memory_units
        self.attention_score = attention
        self.dropout = dropout
        self.recurrent_dropout = recurrent_dropout
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.seed = seed
        # None: Keras's defaults (Glorot kernels, orthogonal recurrent kernels).
        initializers = (
            {}
            if self.kernel_initializer is None
            else {
                "kernel_initializer": self.kernel_initializer,
                "recurrent_initializer": self.kernel_initializer,
            }
        )
        self.cells = [
            recurrent_cell(
                cell,
                units,
                recurrent_dropout=recurrent_dropout,
                seed=seed,
                dtype=self.dtype_policy,
                name=f"{cell}_cell_{index}",
                **initializers,
            )
            for index in range(num_layers)
        ]
        self.attention = Attention(
            units,
            memory_units,
            attention,
            kernel_initializer=self.kernel_initializer or "glorot_uniform",
            dtype=self.dtype_policy,
            name="attention",
        )
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.supports_masking = True  # the target padding mask passes on to the outputs

    def build(self, input_shape=None):
        size = self.input_size + self.units
        for cell in self.cells:
            cell.build((None, size))
            size = self.units
        self.attention.build()
        self.built = True

    def start_state(self, layer_states, memory, memory_mask):
        """The decoding state: per-layer cell states, `h̃_0 = 0`, and the encoder memory."""
        batch_size = keras.ops.shape(memory)[0]
        return {
            **self.attention.decoding_state(layer_states, memory, memory_mask),
            "attentional": keras.ops.zeros((batch_size, self.units), self.compute_dtype),
        }

    def step(self, x, state, training=False, dropout_masks=None):
        """`x (batch, input_size)` → `(h̃ (batch, units), weights (batch, S), new state)`."""
        x = keras.ops.concatenate(
            [keras.ops.cast(x, self.compute_dtype), state["attentional"]], axis=-1
        )
        layers = []
        for index, (cell, states) in enumerate(zip(self.cells, state["layers"])):
            if index and dropout_masks is not None:
                x = x * dropout_masks[index - 1]
            x, states = cell(x, list(states), training=training)
            layers.append(list(states) if isinstance(states, (list, tuple)) else [states])
        attentional, weights = self.attention(
            x, state["keys"], state["memory"], state["memory_mask"]
        )
        return attentional, weights, {**state, "layers": layers, "attentional": attentional}

    def call(self, embedded, memory, memory_mask, initial_state, training=None, mask=None):
        # `mask` (target padding) is not needed: padding sits at the end, and the loss ignores
        # the outputs there.
        training = bool(training)
        state = self.start_state(initial_state, memory, memory_mask)
        steps = keras.ops.transpose(keras.ops.cast(embedded, self.compute_dtype), (1, 0, 2))
        masks = None
        if training and self.dropout > 0 and self.num_layers > 1:
            ones = keras.ops.ones(
                (self.num_layers - 1, *keras.ops.shape(steps)[:2], self.units), self.compute_dtype
            )
            masks = keras.ops.transpose(
                keras.random.dropout(ones, self.dropout, seed=self.seed_generator), (1, 0, 2, 3)
            )
        if training and self.recurrent_dropout > 0:
            # Draw each cell's recurrent mask once, outside the loop (the cell caches it).
            for cell, states in zip(self.cells, state["layers"]):
                cell.get_recurrent_dropout_mask(states[0])
        memory_parts = {key: state.pop(key) for key in ("memory", "keys", "memory_mask")}
        length = tf.shape(steps)[0]
        outputs = tf.TensorArray(self.compute_dtype, size=length, element_shape=[None, self.units])
        alignments = tf.TensorArray(tf.float32, size=length, element_shape=[None, None])

        def body(t, carry, outputs, alignments):
            dropout_masks = None if masks is None else masks[t]
            attentional, weights, new_state = self.step(
                steps[t], {**carry, **memory_parts}, training=training, dropout_masks=dropout_masks
            )
            carry = {"layers": new_state["layers"], "attentional": attentional}
            return t + 1, carry, outputs.write(t, attentional), alignments.write(t, weights)

        _, _, outputs, alignments = tf.while_loop(
            lambda t, *_: t < length, body, (tf.constant(0), state, outputs, alignments)
        )
        attentional = outputs.stack()
        weights = alignments.stack()
        for cell in self.cells:
            cell.reset_recurrent_dropout_mask()
        return (
            keras.ops.transpose(attentional, (1, 0, 2)),
            keras.ops.transpose(weights, (1, 0, 2)),
        )

    def compute_mask(self, embedded, mask=None):
        return mask, None

    def compute_output_shape(self, embedded_shape, *args, **kwargs):
        return (
            (embedded_shape[0], embedded_shape[1], self.units),
            (embedded_shape[0], embedded_shape[1], None),
        )

    def get_config(self):
        return {
            **super().get_config(),
            "cell": self.cell,
            "units": self.units,
            "num_layers": self.num_layers,
            "input_size": self.input_size,
            "memory_units": self.memory_units,
            "attention": self.attention_score,
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "seed": self.seed,
        }
