"""Sequence → label: the seq2seq encoder, pooled into one vector, then a softmax over labels."""

from __future__ import annotations

import typing

import keras

from s2s_keras.config import CELLS, POOLINGS, PRECISIONS
from s2s_keras.keras_workarounds import DistributedBuildFix
from s2s_keras.layers import AttentionPooling
from s2s_keras.models.recurrent_encoder import RecurrentEncoderMixin, uniform_initializers


@keras.saving.register_keras_serializable(package="s2s_keras")
class Classifier(RecurrentEncoderMixin, DistributedBuildFix, keras.Model):
    """The `Seq2Seq` encoder (same layers, same names) + pooling + a softmax over `labels`
    (e.g. sentiment): `P(label | X)`.

    Encoder: source ids → (optionally reversed) → embedding (mask_zero) → `num_layers` stacked
    recurrent layers of `hidden_units` (per direction when `bidirectional`), dropout between
    layers. Pooling (`pooling`): `last` — the top layer's final `h` (forward and backward
    concatenated); `mean` — the masked mean of the top layer's outputs over real tokens;
    `attention` — `AttentionPooling` (a learned query). Then dropout and a float32 dense layer to
    one logit per label.

    Args:
        source_vocabulary: token list (without reserved tokens); labels: the label strings, in
            id order. source_split, source_lowercase: see `Tokenizer`.
        cell, learn_initial_state, embedding_size, hidden_units, num_layers, dropout,
        recurrent_dropout, bidirectional, reverse_source, init_scale, precision: as `Seq2Seq`.
        pooling: `last`, `mean` or `attention`.
        max_source_tokens: the training cut (`data.max_source_tokens`: sources kept their last
            that many tokens; 0: uncut), kept so that inference cuts inputs the same way.

    Inputs: `{"source_ids": (batch, S)}` int32, 0 = padding. Output: float32 logits
    `(batch, len(labels))`. `pool(source_ids)` gives `(vector, attention weights or None)`.

    Example:
        >>> model = Classifier(list("abc"), ["neg", "pos"], source_split="characters",
        ...                    embedding_size=8, hidden_units=8)
        >>> tuple(model({"source_ids": tf.constant([[4, 5, 0]])}).shape)
        (1, 2)
    """

    def __init__(
        self,
        source_vocabulary: typing.Sequence[str],
        labels: typing.Sequence[str],
        source_split: str = "whitespace",
        source_lowercase: bool = True,
        cell: str = "lstm",
        learn_initial_state: bool = False,
        embedding_size: int = 128,
        hidden_units: int = 128,
        num_layers: int = 1,
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        bidirectional: bool = False,
        pooling: str = "mean",
        reverse_source: bool = False,
        init_scale: float = 0.0,
        precision: str = "float32",
        max_source_tokens: int = 0,
        **kwargs,
    ):
        for name, value, known in (
            ("precision", precision, PRECISIONS),
            ("cell", cell, CELLS),
            ("pooling", pooling, POOLINGS),
        ):
            if value not in known:
                raise ValueError(f"Classifier {name}: expected one of {known}, got {value!r}")
        if len(labels) < 2 or len(set(labels)) != len(labels):
            raise ValueError(
                f"Classifier labels: expected at least 2 distinct labels, got {list(labels)!r}"
            )
        # === Layers ===
        self._build_source_embedding(
            source_vocabulary,
            source_split,
            source_lowercase,
            embedding_size,
            reverse_source,
            init_scale,
            precision,
        )
        self._build_encoder_layers(
            cell,
            hidden_units,
            num_layers,
            bidirectional,
            learn_initial_state,
            recurrent_dropout,
            init_scale,
            precision,
        )
        self.between_layers = keras.layers.Dropout(dropout, name="between_layers_dropout")
        features = hidden_units * (2 if bidirectional else 1)
        inits = uniform_initializers(init_scale)
        self.attention_pooling = (
            AttentionPooling(
                features,
                kernel_initializer=inits["initializer"],
                dtype=precision,
                name="attention_pooling",
            )
            if pooling == "attention"
            else None
        )
        self.pooled_dropout = keras.layers.Dropout(dropout, name="pooled_dropout")
        self.label_projection = keras.layers.Dense(
            len(labels), dtype="float32", name="label_projection", **inits["kernels"]
        )

        self.pooling = pooling  # read by _pool while the graph is built

        # === Functional graph ===
        source_ids = keras.Input(shape=(None,), dtype="int32", name="source_ids")
        vector, _ = self._pool(source_ids)
        logits = self.label_projection(self.pooled_dropout(vector))
        super().__init__(inputs={"source_ids": source_ids}, outputs=logits, **kwargs)

        # === Config ===
        self.source_vocabulary = list(source_vocabulary)
        self.labels = list(labels)
        self.source_split = source_split
        self.source_lowercase = source_lowercase
        self.cell = cell
        self.learn_initial_state = learn_initial_state
        self.embedding_size = embedding_size
        self.hidden_units = hidden_units
        self.num_layers = num_layers
        self.dropout = dropout
        self.recurrent_dropout = recurrent_dropout
        self.bidirectional = bidirectional
        self.reverse_source = reverse_source
        self.init_scale = init_scale
        self.precision = precision
        self.max_source_tokens = max_source_tokens

    def pool(self, source_ids):
        """Inference: `(pooled vector (batch, features), attention weights (batch, S) or None)`."""
        return self._pool(source_ids, training=False)

    def _pool(self, source_ids, training=None):
        states, outputs, mask = self._run_encoder(source_ids, training=training)
        if self.attention_pooling is not None:
            return self.attention_pooling(outputs, mask=mask)
        if self.pooling == "mean":
            # An all-padding row (an empty input) pools to zeros, not 0/0.
            weights = keras.ops.cast(mask, outputs.dtype)[..., None]
            count = keras.ops.maximum(keras.ops.sum(weights, axis=1), 1.0)
            return keras.ops.sum(outputs * weights, axis=1) / count, None
        return states[-1][0], None  # the top layer's h (an LSTM's state is [h, c])

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "source_vocabulary": self.source_vocabulary,
            "labels": self.labels,
            "source_split": self.source_split,
            "source_lowercase": self.source_lowercase,
            "cell": self.cell,
            "learn_initial_state": self.learn_initial_state,
            "embedding_size": self.embedding_size,
            "hidden_units": self.hidden_units,
            "num_layers": self.num_layers,
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
            "bidirectional": self.bidirectional,
            "pooling": self.pooling,
            "reverse_source": self.reverse_source,
            "init_scale": self.init_scale,
            "precision": self.precision,
            "max_source_tokens": self.max_source_tokens,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
