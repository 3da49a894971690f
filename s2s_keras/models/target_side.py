"""The token side of every model that emits tokens (`Seq2Seq`'s decoder, `LanguageModel`):
the target tokenizer, its embedding and the output projection, tied or not."""

from __future__ import annotations

import keras

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
    ) -> None:
        self.target_tokenizer = Tokenizer(vocabulary, split, lowercase, name="target_tokenizer")
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
