"""The encoder-decoder of Sutskever et al. (2014): stacked LSTMs, the encoder's last state
starts the decoder, a softmax over the target vocabulary at each step."""

from __future__ import annotations

import typing

import keras

from s2s_keras.config import PRECISIONS
from s2s_keras.layers import ReverseSequence
from s2s_keras.text import PAD_ID, Tokenizer


@keras.saving.register_keras_serializable(package="s2s_keras")
class Seq2Seq(keras.Model):
    """LSTM encoder-decoder trained with teacher forcing; models `P(Y|X) = Π_t p(y_t | X, y_<t)`.

    source ids → (optionally reversed) → embedding (mask_zero) → `num_layers` stacked LSTMs
    (dropout between layers); layer l's final `[h, c]` starts decoder layer l; target_in ids →
    embedding → stacked LSTMs → Dense logits over the target vocabulary. The tokenizers built
    from `source_vocabulary` / `target_vocabulary` travel with the model (`.keras` and export).

    Args:
        source_vocabulary, target_vocabulary: token lists (without reserved tokens).
        source_split, target_split: `"characters"` or `"whitespace"` (see `Tokenizer`).
        source_lowercase, target_lowercase: Unicode case folding of each side.
        embedding_size, hidden_units, num_layers, dropout: network shape.
        reverse_source: feed the source tokens in reverse order (padding stays on the right).
        precision: `"float32"` or `"mixed_bfloat16"` (bf16 compute, float32 weights); the
            output projection, softmax and loss always run in float32.

    Inputs: `{"source_ids": (batch, S), "target_in_ids": (batch, T)}` int32, 0 = padding.
    Output: float32 logits `(batch, T, target_vocabulary_size)`.
    Inference (used by `s2s_keras.decoding`): `encode(source_ids) -> state`,
    `decode_step(token_ids (batch,), state) -> (logits (batch, V), state)`; the same layer objects.

    Example:
        >>> model = Seq2Seq(list("abc"), list("xyz"), embedding_size=8, hidden_units=8)
        >>> logits = model({"source_ids": tf.constant([[4, 5, 0]]),
        ...                 "target_in_ids": tf.constant([[2, 6]])})
        >>> tuple(logits.shape)
        (1, 2, 7)
    """

    def __init__(self, source_vocabulary: typing.Sequence[str], target_vocabulary: typing.Sequence[str],
                 source_split: str = "characters", target_split: str = "whitespace",
                 source_lowercase: bool = True, target_lowercase: bool = False,
                 embedding_size: int = 128, hidden_units: int = 256, num_layers: int = 2,
                 dropout: float = 0.0, reverse_source: bool = False, precision: str = "float32",
                 **kwargs):
        if precision not in PRECISIONS:
            raise ValueError(f"Seq2Seq precision: expected one of {PRECISIONS}, got {precision!r}")
        # === Layers ===
        self.source_tokenizer = Tokenizer(source_vocabulary, source_split, source_lowercase,
                                          name="source_tokenizer")
        self.target_tokenizer = Tokenizer(target_vocabulary, target_split, target_lowercase,
                                          name="target_tokenizer")
        self.source_reverser = ReverseSequence(name="source_reverser") if reverse_source else None
        self.source_embedding = keras.layers.Embedding(
            self.source_tokenizer.vocabulary_size, embedding_size, mask_zero=True,
            dtype=precision, name="source_embedding")
        self.target_embedding = keras.layers.Embedding(
            self.target_tokenizer.vocabulary_size, embedding_size, mask_zero=True,
            dtype=precision, name="target_embedding")
        # use_cudnn=False: the traced graph must run on CPU-only TF Serving even when exported
        # on a GPU machine (CudnnRNNV3 would be baked in otherwise).
        self.encoder_layers = [
            keras.layers.LSTM(hidden_units, return_sequences=True, return_state=True,
                              use_cudnn=False, dtype=precision, name=f"encoder_lstm_{i}")
            for i in range(num_layers)]
        self.decoder_layers = [
            keras.layers.LSTM(hidden_units, return_sequences=True, return_state=True,
                              use_cudnn=False, dtype=precision, name=f"decoder_lstm_{i}")
            for i in range(num_layers)]
        self.between_layers = keras.layers.Dropout(dropout, name="between_layers_dropout")
        self.output_projection = keras.layers.Dense(
            self.target_tokenizer.vocabulary_size, dtype="float32", name="output_projection")

        # === Functional graph ===
        source_ids = keras.Input(shape=(None,), dtype="int32", name="source_ids")
        target_in_ids = keras.Input(shape=(None,), dtype="int32", name="target_in_ids")
        logits = self._decode_sequence(target_in_ids, self._encode(source_ids))
        super().__init__(inputs={"source_ids": source_ids, "target_in_ids": target_in_ids},
                         outputs=logits, **kwargs)

        # === Config ===
        self.source_vocabulary = list(source_vocabulary)
        self.target_vocabulary = list(target_vocabulary)
        self.source_split = source_split
        self.target_split = target_split
        self.source_lowercase = source_lowercase
        self.target_lowercase = target_lowercase
        self.embedding_size = embedding_size
        self.hidden_units = hidden_units
        self.num_layers = num_layers
        self.dropout = dropout
        self.reverse_source = reverse_source
        self.precision = precision

    def encode(self, source_ids, training=False):
        """`(batch, S)` ids → decoder start state: a list of `[h, c]` per layer, each `(batch, units)`."""
        return self._encode(source_ids, training=training)

    def decode_step(self, token_ids, state):
        """One decoder step for `(batch,)` token ids; returns `(logits (batch, V), new state)`."""
        # The embedding layer's own table, looked up without attaching a padding mask (a cell
        # does not take masks; a step never sees padding that matters).
        x = keras.ops.take(self.target_embedding.embeddings, token_ids, axis=0)
        x = keras.ops.cast(x, self.target_embedding.compute_dtype)
        new_state = []
        for layer, layer_state in zip(self.decoder_layers, state):
            x, cell_state = layer.cell(x, layer_state, training=False)
            new_state.append(list(cell_state))
        return self.output_projection(x), new_state

    def _encode(self, source_ids, training=None):
        if self.source_reverser is not None:
            source_ids = self.source_reverser(source_ids)
        mask = keras.ops.not_equal(source_ids, PAD_ID)
        x = self.source_embedding(source_ids)
        state = []
        for index, layer in enumerate(self.encoder_layers):
            if index:
                x = self.between_layers(x, training=training)
            x, h, c = layer(x, mask=mask, training=training)
            state.append([h, c])
        return state

    def _decode_sequence(self, target_in_ids, state, training=None):
        mask = keras.ops.not_equal(target_in_ids, PAD_ID)
        x = self.target_embedding(target_in_ids)
        for index, (layer, layer_state) in enumerate(zip(self.decoder_layers, state)):
            if index:
                x = self.between_layers(x, training=training)
            x, _, _ = layer(x, mask=mask, initial_state=layer_state, training=training)
        return self.output_projection(x)

    def get_config(self):
        return {
            "name": self.name, "trainable": self.trainable,
            "source_vocabulary": self.source_vocabulary, "target_vocabulary": self.target_vocabulary,
            "source_split": self.source_split, "target_split": self.target_split,
            "source_lowercase": self.source_lowercase, "target_lowercase": self.target_lowercase,
            "embedding_size": self.embedding_size, "hidden_units": self.hidden_units,
            "num_layers": self.num_layers, "dropout": self.dropout,
            "reverse_source": self.reverse_source, "precision": self.precision,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
