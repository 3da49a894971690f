"""The token side of every model that emits tokens (`Seq2Seq`'s decoder, `LanguageModel`):
the target tokenizer, its embedding and the output projection, tied or not."""

from __future__ import annotations

import keras
import tensorflow as tf

from s2s_keras.models.recurrent_encoder import uniform_initializers
from s2s_keras.text import Tokenizer


class TargetSideMixin:
    """Builds `target_tokenizer` and `target_embedding` (`_build_target_embedding`), then, after
    the model's other layers (the creation order is the variable order `.keras` files rely on),
    `output_projection` (`_build_output_projection`; None when tied: `_project` then multiplies
    by the embedding matrix transposed, in float32)."""

    def _build_target_embedding(
        self,
        vocabulary,
        split: str,
        lowercase: bool,
        embedding_size: int,
        tie_embeddings: bool,
        init_scale: float,
        precision: str,
        reverse: bool = False,
    ) -> None:
        self.target_tokenizer = Tokenizer(
            vocabulary, split, lowercase, reverse=reverse, name="target_tokenizer"
        )
        embedding_type = (
            keras.layers.ReversibleEmbedding if tie_embeddings else keras.layers.Embedding
        )
        tied = {"reverse_dtype": "float32"} if tie_embeddings else {}
        self.target_embedding = embedding_type(
            self.target_tokenizer.vocabulary_size,
            embedding_size,
            mask_zero=True,
            dtype=precision,
            name="target_embedding",
            **uniform_initializers(init_scale)["embeddings"],
            **tied,
        )

    def _build_output_projection(self, tie_embeddings: bool, init_scale: float) -> None:
        self.output_projection = (
            None
            if tie_embeddings
            else keras.layers.Dense(
                self.target_tokenizer.vocabulary_size,
                dtype="float32",
                name="output_projection",
                **uniform_initializers(init_scale)["kernels"],
            )
        )

    def _project(self, x):
        """Float32 logits over the target vocabulary."""
        if self.output_projection is None:
            return self.target_embedding(x, reverse=True)
        return self.output_projection(x)

    def _projection_weights(self) -> tuple:
        """`(kernel (units, V), bias (V,))` float32: `_project(x)` is `x kernel + bias` (tied:
        the embedding matrix transposed, no bias)."""
        if self.output_projection is None:
            embeddings = tf.cast(
                tf.convert_to_tensor(self.target_embedding.embeddings.value), "float32"
            )
            return tf.transpose(embeddings), tf.zeros(tf.shape(embeddings)[:1])
        layer = self.output_projection
        kernel = tf.convert_to_tensor(layer.kernel.value)
        if layer.bias is None:
            return kernel, tf.zeros(tf.shape(kernel)[1:])
        return kernel, tf.convert_to_tensor(layer.bias.value)
