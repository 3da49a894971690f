"""A language model: the seq2seq decoder stack alone, `P(Y) = Π_t p(y_t | y_<t)`."""

from __future__ import annotations

import typing

import keras
import tensorflow as tf

from s2s_keras.config import CELLS, PRECISIONS
from s2s_keras.keras_workarounds import DistributedBuildFix
from s2s_keras.layers import cell_steppers, recurrent_layer, step_cells
from s2s_keras.models.recurrent_encoder import uniform_initializers
from s2s_keras.models.target_side import TargetSideMixin
from s2s_keras.text import END_ID, PAD_ID, START_ID

BEGIN_ID = END_ID  # what the model reads before a sentence's first token (see `LanguageModel`)


@keras.saving.register_keras_serializable(package="s2s_keras")
class LanguageModel(TargetSideMixin, DistributedBuildFix, keras.Model):
    """Embedding → stacked recurrent layers → softmax over the vocabulary (optionally tied to
    the embedding), with dropout on the non-recurrent connections (embedding output, between
    layers, before the projection) as Zaremba et al. (2014).

    A sentence is read as `</s> y_1 … y_n` and predicts `y_1 … y_n </s>`: the end token also
    begins a sentence, exactly as in contiguous text, where sentences follow each other separated
    by `</s>` — so a model trained either way (sentence batches or truncated BPTT over contiguous
    text) generates and scores the same way.

    Args:
        vocabulary: token list (without reserved tokens); split, lowercase: see `Tokenizer`.
        cell, embedding_size, hidden_units, num_layers, dropout, recurrent_dropout,
        tie_embeddings, init_scale, precision: as `Seq2Seq`'s decoder.

    Inputs: `{"input_ids": (batch, T)}` int32, 0 = padding. Output: float32 logits
    `(batch, T, vocabulary size)`. For decoding: `start(prompt_ids) -> (state, next input ids)`
    and `decode_step(token_ids (batch,), state) -> (logits, state)`, the same layers.

    Truncated BPTT: `carry_state(batch_size)` makes training and evaluation calls start from the
    state the previous batch of the same kind (training / evaluation) ended in, kept in
    variables outside the model's weights; `reset_carry()` zeroes them (each epoch and each
    evaluation starts from zeros); `carry_state(None)` turns carrying off.

    Example:
        >>> model = LanguageModel(["a", "b"], embedding_size=8, hidden_units=8)
        >>> tuple(model({"input_ids": tf.constant([[3, 4, 5]])}).shape)
        (1, 3, 6)
    """

    def __init__(
        self,
        vocabulary: typing.Sequence[str],
        split: str = "whitespace",
        lowercase: bool = False,
        cell: str = "lstm",
        embedding_size: int = 200,
        hidden_units: int = 200,
        num_layers: int = 2,
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        tie_embeddings: bool = False,
        init_scale: float = 0.0,
        precision: str = "float32",
        **kwargs,
    ):
        for name, value, known in (("precision", precision, PRECISIONS), ("cell", cell, CELLS)):
            if value not in known:
                raise ValueError(f"LanguageModel {name}: expected one of {known}, got {value!r}")
        if tie_embeddings and embedding_size != hidden_units:
            raise ValueError(
                f"LanguageModel tie_embeddings: needs embedding_size == hidden_units, "
                f"got {embedding_size} and {hidden_units}"
            )
        # === Layers === (the names of Seq2Seq's decoder side)
        inits = uniform_initializers(init_scale)
        self._build_target_embedding(
            vocabulary, split, lowercase, embedding_size, tie_embeddings, init_scale, precision
        )
        self.between_layers = keras.layers.Dropout(dropout, name="between_layers_dropout")
        self.decoder_layers = [
            recurrent_layer(
                cell,
                hidden_units,
                recurrent_dropout=recurrent_dropout,
                dtype=precision,
                name=f"decoder_{cell}_{index}",
                **inits["recurrent"],
            )
            for index in range(num_layers)
        ]
        self._build_output_projection(tie_embeddings, init_scale)

        # === Functional graph ===
        input_ids = keras.Input(shape=(None,), dtype="int32", name="input_ids")
        logits, _ = self.forward(input_ids)
        super().__init__(inputs={"input_ids": input_ids}, outputs=logits, **kwargs)
        self._carry = None  # plain attribute: not a weight, not saved

        # === Config ===
        self.vocabulary = list(vocabulary)
        self.split = split
        self.lowercase = lowercase
        self.cell = cell
        self.embedding_size = embedding_size
        self.hidden_units = hidden_units
        self.num_layers = num_layers
        self.dropout = dropout
        self.recurrent_dropout = recurrent_dropout
        self.tie_embeddings = tie_embeddings
        self.init_scale = init_scale
        self.precision = precision

    def forward(self, input_ids, initial_state=None, training=None):
        """`(logits (batch, T, V) float32, final per-layer states)`; `initial_state` is a list
        of per-layer state lists (None: zeros). Padded steps leave the state unchanged."""
        mask = keras.ops.not_equal(input_ids, PAD_ID)
        x = self.between_layers(self.target_embedding(input_ids), training=training)
        states = []
        for index, layer in enumerate(self.decoder_layers):
            if index:
                x = self.between_layers(x, training=training)
            x, *layer_state = layer(
                x,
                mask=mask,
                training=training,
                initial_state=None if initial_state is None else initial_state[index],
            )
            states.append(layer_state)
        x = self.between_layers(x, training=training)
        return self._project(x), states

    def call(self, inputs, training=None, mask=None):
        if self._carry is None or isinstance(inputs["input_ids"], keras.KerasTensor):
            return super().call(inputs, training=training, mask=mask)
        carried = self._carry["train" if training else "evaluate"]
        logits, states = self.forward(
            inputs["input_ids"], _nest(carried, self._state_shape()), training
        )
        for variable, value in zip(carried, [s for layer in states for s in layer]):
            variable.assign(tf.stop_gradient(tf.cast(value, variable.dtype)))
        return logits

    def carry_state(self, batch_size: int | None) -> None:
        """Turns truncated-BPTT state carrying on for batches of exactly `batch_size` (or off)."""
        if batch_size is None:
            self._carry = None
            return
        self._carry = {
            kind: [
                tf.Variable(tf.zeros([batch_size, units]), trainable=False)
                for layer in self._state_shape()
                for units in layer
            ]
            for kind in ("train", "evaluate")
        }

    def reset_carry(self, kind: str | None = None) -> None:
        """Zeroes the carried state of `kind` (`train`/`evaluate`; None: both)."""
        if self._carry is not None:
            for name in [kind] if kind else list(self._carry):
                for variable in self._carry[name]:
                    variable.assign(tf.zeros_like(variable))

    def start(self, prompt_ids):
        """`prompt_ids (batch, P)`: `</s>` then the prompt's tokens, padded. Returns `(state after
        reading all but the last real token, that last token (batch,))`, ready for a decoder."""
        lengths = tf.reduce_sum(tf.cast(prompt_ids != PAD_ID, tf.int32), axis=1)
        last = tf.gather(prompt_ids, tf.maximum(lengths - 1, 0), batch_dims=1)
        before_last = tf.sequence_mask(lengths - 1, tf.shape(prompt_ids)[1])
        _, state = self.forward(tf.where(before_last, prompt_ids, PAD_ID), training=False)
        return state, last

    def decode_step(self, token_ids, state):
        """One step for `(batch,)` token ids; returns `(logits (batch, V), new state)`. Padding
        and `<s>` are never targets of a language model, so their logits are -1e9 here (an
        untrained model could otherwise emit padding, which the text would silently lose).
        In a decoding loop use `step_function()`, made once outside the loop."""
        return self.step_function()(token_ids, state)

    def step_function(self):
        """`decode_step` with the layers' weights read (and cast) once, here."""
        steppers = cell_steppers(
            self.decoder_layers, self.target_embedding
        )  # the first takes token ids

        def step(token_ids, state):
            x, new_state = step_cells(steppers, token_ids, state)
            logits = self._project(x)
            never = tf.one_hot(PAD_ID, tf.shape(logits)[-1]) + tf.one_hot(
                START_ID, tf.shape(logits)[-1]
            )
            return logits - 1e9 * never, new_state

        return step

    def _state_shape(self):
        """Per layer, the sizes of its state tensors."""
        return [
            [size for size in layer.cell.state_size]
            if isinstance(layer.cell.state_size, (list, tuple))
            else [layer.cell.state_size]
            for layer in self.decoder_layers
        ]

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "vocabulary": self.vocabulary,
            "split": self.split,
            "lowercase": self.lowercase,
            "cell": self.cell,
            "embedding_size": self.embedding_size,
            "hidden_units": self.hidden_units,
            "num_layers": self.num_layers,
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
            "tie_embeddings": self.tie_embeddings,
            "init_scale": self.init_scale,
            "precision": self.precision,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _nest(flat, shape):
    """Flat list of state tensors → per-layer lists."""
    nested, index = [], 0
    for layer in shape:
        nested.append(flat[index : index + len(layer)])
        index += len(layer)
    return nested
