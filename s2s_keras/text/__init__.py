"""Tokenizers and vocabularies as Keras layers (the same objects in tf.data, training and
export)."""

from s2s_keras.text.tokenizer import (
    END_ID,
    PAD_ID,
    RESERVED,
    START_ID,
    UNK_ID,
    TokenCounter,
    Tokenizer,
    build_vocabulary,
)

__all__ = [
    "Tokenizer",
    "TokenCounter",
    "build_vocabulary",
    "PAD_ID",
    "UNK_ID",
    "START_ID",
    "END_ID",
    "RESERVED",
]
