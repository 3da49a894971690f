"""The encoder-decoder of Sutskever et al. (2014): stacked LSTMs, the encoder's last state
starts the decoder, a softmax over the target vocabulary at each step."""

from __future__ import annotations

import typing

import keras
import tensorflow as tf

from s2s_keras.text import PAD_ID, Tokenizer


@keras.saving.register_keras_serializable(package="s2s_keras")
class Seq2Seq(keras.Model):
    """LSTM encoder-decoder trained with teacher forcing; models `P(Y|X) = Π_t p(y_t | X, y_<t)`.

    source ids → embedding (mask_zero) → `num_layers` stacked LSTMs (dropout between layers);
    layer l's final `[h, c]` starts decoder layer l; target_in ids → embedding → stacked LSTMs →
    Dense logits over the target vocabulary (float32). The tokenizers built from
    `source_vocabulary` / `target_vocabulary` travel with the model (`.keras` and export).

    Args:
        source_vocabulary, target_vocabulary: token lists (without reserved tokens).
        source_split, target_split: `"characters"` or `"whitespace"` (see `Tokenizer`).
        source_lowercase, target_lowercase: Unicode case folding of each side.
        embedding_size, hidden_units, num_layers, dropout: network shape.

    Inputs: `{"source_ids": (batch, S), "target_in_ids": (batch, T)}` int32, 0 = padding.
    Output: logits `(batch, T, target_vocabulary_size)`.
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
                 dropout: float = 0.0, **kwargs):
        # === Layers ===
        source_tokenizer = Tokenizer(source_vocabulary, source_split, source_lowercase,
                                     name="source_tokenizer")
        target_tokenizer = Tokenizer(target_vocabulary, target_split, target_lowercase,
                                     name="target_tokenizer")
        source_embedding = keras.layers.Embedding(source_tokenizer.vocabulary_size, embedding_size,
                                                  mask_zero=True, name="source_embedding")
        target_embedding = keras.layers.Embedding(target_tokenizer.vocabulary_size, embedding_size,
                                                  mask_zero=True, name="target_embedding")
        # use_cudnn=False: the traced graph must run on CPU-only TF Serving even when exported
        # on a GPU machine (CudnnRNNV3 would be baked in otherwise).
        encoder_layers = [keras.layers.LSTM(hidden_units, return_sequences=True, return_state=True,
                                            use_cudnn=False, name=f"encoder_lstm_{i}")
                          for i in range(num_layers)]
        decoder_layers = [keras.layers.LSTM(hidden_units, return_sequences=True, return_state=True,
                                            use_cudnn=False, name=f"decoder_lstm_{i}")
                          for i in range(num_layers)]
        between_layers = keras.layers.Dropout(dropout, name="between_layers_dropout")
        output_projection = keras.layers.Dense(target_tokenizer.vocabulary_size, name="output_projection")

        # === Functional graph ===
        source_ids = keras.Input(shape=(None,), dtype="int32", name="source_ids")
        target_in_ids = keras.Input(shape=(None,), dtype="int32", name="target_in_ids")
        layers = (source_embedding, target_embedding, encoder_layers, decoder_layers, between_layers,
                  output_projection)
        state = _encode(layers, source_ids)
        logits = _decode_sequence(layers, target_in_ids, state)
        super().__init__(inputs={"source_ids": source_ids, "target_in_ids": target_in_ids},
                         outputs=logits, **kwargs)

        self.source_tokenizer = source_tokenizer
        self.target_tokenizer = target_tokenizer
        self.source_embedding = source_embedding
        self.target_embedding = target_embedding
        self.encoder_layers = encoder_layers
        self.decoder_layers = decoder_layers
        self.between_layers = between_layers
        self.output_projection = output_projection
        self._layer_groups = layers

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

    def encode(self, source_ids, training=False):
        """`(batch, S)` ids → decoder start state: a list of `[h, c]` per layer, each `(batch, units)`."""
        return _encode(self._layer_groups, source_ids, training=training)

    def decode_step(self, token_ids, state):
        """One decoder step for `(batch,)` token ids; returns `(logits (batch, V), new state)`."""
        _, target_embedding, _, decoder_layers, _, output_projection = self._layer_groups
        # The embedding layer's own table, looked up without attaching a padding mask (a cell
        # does not take masks; a step never sees padding that matters).
        x = keras.ops.take(target_embedding.embeddings, token_ids, axis=0)
        new_state = []
        for layer, layer_state in zip(decoder_layers, state):
            x, cell_state = layer.cell(x, layer_state, training=False)
            new_state.append(list(cell_state))
        return output_projection(x), new_state

    def get_config(self):
        return {
            "name": self.name, "trainable": self.trainable,
            "source_vocabulary": self.source_vocabulary, "target_vocabulary": self.target_vocabulary,
            "source_split": self.source_split, "target_split": self.target_split,
            "source_lowercase": self.source_lowercase, "target_lowercase": self.target_lowercase,
            "embedding_size": self.embedding_size, "hidden_units": self.hidden_units,
            "num_layers": self.num_layers, "dropout": self.dropout,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _encode(layers, source_ids, training=None):
    source_embedding, _, encoder_layers, _, between_layers, _ = layers
    mask = keras.ops.not_equal(source_ids, PAD_ID)
    x = source_embedding(source_ids)
    state = []
    for index, layer in enumerate(encoder_layers):
        if index:
            x = between_layers(x, training=training)
        x, h, c = layer(x, mask=mask, training=training)
        state.append([h, c])
    return state


def _decode_sequence(layers, target_in_ids, state, training=None):
    _, target_embedding, _, decoder_layers, between_layers, output_projection = layers
    mask = keras.ops.not_equal(target_in_ids, PAD_ID)
    x = target_embedding(target_in_ids)
    for index, (layer, layer_state) in enumerate(zip(decoder_layers, state)):
        if index:
            x = between_layers(x, training=training)
        x, _, _ = layer(x, mask=mask, initial_state=layer_state, training=training)
    return output_projection(x)
