"""The recurrent encoder every task shares: tokenizer → (reversal) → embedding → stacked,
optionally bidirectional recurrent layers. `Seq2Seq` and `Classifier` both build it through
`RecurrentEncoderMixin`, so they hold the same layers under the same attribute names."""

from __future__ import annotations

import keras

from s2s_keras.layers import (
    Bidirectional,
    LearnedInitialState,
    ReverseSequence,
    recurrent_layer,
    state_count,
    token_inputs,
)
from s2s_keras.text import PAD_ID, Tokenizer


def uniform_initializers(init_scale: float) -> dict:
    """`{"kernels", "recurrent", "embeddings"}` keyword sets: U(-init_scale, init_scale) for every
    weight when `init_scale > 0` (Sutskever et al.: 0.08), else empty (the Keras defaults)."""
    if init_scale <= 0:
        return {"kernels": {}, "recurrent": {}, "embeddings": {}, "initializer": None}
    init = keras.initializers.RandomUniform(-init_scale, init_scale)
    return {
        "kernels": {"kernel_initializer": init},
        "recurrent": {"kernel_initializer": init, "recurrent_initializer": init},
        "embeddings": {"embeddings_initializer": init},
        "initializer": init,
    }


class RecurrentEncoderMixin:
    """Builds and runs the encoder layers of a `keras.Model` subclass.

    `_build_source_embedding(...)` creates `source_tokenizer`, `source_reverser` (or None) and
    `source_embedding`; `_build_encoder_layers(...)` `encoder_layers` and `initial_states`; the
    model creates
    `between_layers` (the dropout between stacked layers) itself. `_run_encoder(source_ids)`
    returns `(per-layer final states, outputs (batch, S, units × directions) in source order,
    source mask (batch, S))`; a bidirectional layer's states are forward and backward
    concatenated."""

    def _build_source_embedding(
        self,
        vocabulary,
        split: str,
        lowercase: bool,
        embedding_size: int,
        reverse_source: bool,
        init_scale: float,
        precision: str,
    ) -> None:
        """The source tokenizer, reverser (or None) and embedding."""
        self.source_tokenizer = Tokenizer(vocabulary, split, lowercase, name="source_tokenizer")
        self.source_reverser = ReverseSequence(name="source_reverser") if reverse_source else None
        self.source_embedding = keras.layers.Embedding(
            self.source_tokenizer.vocabulary_size,
            embedding_size,
            mask_zero=True,
            dtype=precision,
            name="source_embedding",
            **uniform_initializers(init_scale)["embeddings"],
        )

    def _build_encoder_layers(
        self,
        cell: str,
        units: int,
        depth: int,
        bidirectional: bool,
        learn_initial_state: bool,
        recurrent_dropout: float,
        init_scale: float,
        precision: str,
    ) -> None:
        """The stacked recurrent layers (and learned initial states). A separate step from
        `_build_source_embedding`: the order in which a model creates its layers is the order of
        its variables, which `.keras` files rely on for the optimizer's slots."""
        directions = 2 if bidirectional else 1
        self.encoder_layers = []
        for index in range(depth):
            layer = recurrent_layer(
                cell,
                units,
                recurrent_dropout=recurrent_dropout,
                dtype=precision,
                name=f"encoder_{cell}_{index}",
                **uniform_initializers(init_scale)["recurrent"],
            )
            if bidirectional:
                layer = Bidirectional(layer, dtype=precision, name=f"encoder_bi{cell}_{index}")
            self.encoder_layers.append(layer)
        self.initial_states = (
            [
                LearnedInitialState(
                    [units] * state_count(cell) * directions,
                    dtype=precision,
                    name=f"encoder_initial_state_{index}",
                )
                for index in range(depth)
            ]
            if learn_initial_state
            else []
        )

    def _run_encoder(self, source_ids, training=None):
        source_mask = keras.ops.not_equal(source_ids, PAD_ID)
        if self.source_reverser is not None:
            source_ids = self.source_reverser(source_ids)
        mask = keras.ops.not_equal(source_ids, PAD_ID)
        x = self.source_embedding(source_ids)
        states = []
        for index, layer in enumerate(self.encoder_layers):
            if index:
                x = self.between_layers(x, training=training)
            initial_state = self.initial_states[index](source_ids) if self.initial_states else None
            reads = {} if index else token_inputs(layer, self.source_embedding, source_ids)
            x, *layer_states = layer(
                x, mask=mask, initial_state=initial_state, training=training, **reads
            )
            if isinstance(layer, keras.layers.Bidirectional):
                half = len(layer_states) // 2
                layer_states = [
                    keras.ops.concatenate([forward, backward], axis=-1)
                    for forward, backward in zip(layer_states[:half], layer_states[half:])
                ]
            states.append(layer_states)
        if self.source_reverser is not None:
            lengths = keras.ops.sum(keras.ops.cast(mask, "int32"), axis=1)
            x = self.source_reverser(x, lengths=lengths)
        return states, x, source_mask
