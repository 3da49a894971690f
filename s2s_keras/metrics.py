"""Training metrics over real (non-padding) target tokens, and G2P word/phone error rates."""

from __future__ import annotations

import typing

import keras

from s2s_keras.text import PAD_ID


@keras.saving.register_keras_serializable(package="s2s_keras")
class MaskedAccuracy(keras.metrics.Mean):
    """Share of non-padding target positions whose argmax logit is the reference token."""

    def __init__(self, name="masked_accuracy", **kwargs):
        super().__init__(name=name, **kwargs)

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = keras.ops.cast(y_true, "int32")
        correct = keras.ops.cast(
            keras.ops.equal(keras.ops.argmax(y_pred, axis=-1), y_true), "float32"
        )
        mask = keras.ops.cast(keras.ops.not_equal(y_true, PAD_ID), "float32")
        if sample_weight is not None:
            mask = mask * keras.ops.cast(sample_weight, "float32")
        return super().update_state(correct, sample_weight=mask)


def edit_distance(a: typing.Sequence, b: typing.Sequence) -> int:
    """Levenshtein distance between two token sequences (unit costs)."""
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, start=1):
        current = [i]
        for j, y in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


def error_rates(
    hypotheses: typing.Mapping[str, typing.Sequence[str]],
    references: typing.Mapping[str, typing.Sequence[typing.Sequence[str]]],
) -> dict:
    """Multi-reference G2P scoring as published.

    `hypotheses[source]` is one token list; `references[source]` is a list of token lists.
    A word is correct if its hypothesis equals ANY reference (WER = wrong words / words).
    PER = Σ edit distance to the closest reference / Σ length of that closest reference
    (ties: the shorter reference).
    """
    missing = set(references) - set(hypotheses)
    if missing:
        raise ValueError(
            f"error_rates: no hypothesis for {len(missing)} source(s), e.g. {sorted(missing)[:3]}"
        )
    wrong = errors = length = 0
    for source, refs in references.items():
        hypothesis = list(hypotheses[source])
        distance, closest = min((edit_distance(hypothesis, ref), len(ref)) for ref in refs)
        wrong += distance > 0  # distance 0 to the closest reference: equal to one of them
        errors += distance
        length += closest
    words = len(references)
    return {
        "wer": wrong / words if words else 0.0,
        "per": errors / length if length else 0.0,
        "num_words": words,
    }
