"""Decode a split with the inference path and score it against all references (WER / PER)."""

from __future__ import annotations

import collections

import keras
import tensorflow as tf

from s2s_keras.config import DecodeConfig
from s2s_keras.inference import Translator
from s2s_keras.metrics import error_rates


def translate(translator: Translator, sources, batch_size: int, beam_size: int) -> list:
    """Best output string for each of `sources`, in order, `batch_size` at a time."""
    outputs = []
    for start in range(0, len(sources), batch_size):
        batch = tf.constant(sources[start:start + batch_size], tf.string)
        outputs.extend(text.decode("utf-8") for text in translator.translate(batch, beam_size).numpy())
    return outputs


def evaluate_pairs(translator: Translator, pairs, batch_size: int, beam_size: int) -> dict:
    """`{"wer", "per", "num_words"}` over the distinct sources of `pairs`.

    References are tokenized by the model's target tokenizer (the same normalization the
    model was trained on), so hypotheses and references compare token by token.
    """
    references = collections.defaultdict(list)
    for source, target in pairs:
        references[source].append(target)
    sources = sorted(references)
    hypotheses = translate(translator, sources, batch_size, beam_size)
    flat_refs = [target for source in sources for target in references[source]]
    ref_tokens = iter(_split(translator, flat_refs))
    tokenized_refs = {source: [next(ref_tokens) for _ in references[source]] for source in sources}
    tokenized_hyps = dict(zip(sources, _split(translator, hypotheses)))
    return error_rates(tokenized_hyps, tokenized_refs)


def _split(translator: Translator, texts) -> list:
    tokens = translator.model.target_tokenizer.split(tf.constant(texts, tf.string)).to_list()
    return [[token.decode("utf-8") for token in row] for row in tokens]


class ValidationErrorRates(keras.callbacks.Callback):
    """Logs `val_wer` and `val_per` of greedy decoding on `pairs` at the end of every epoch,
    so that TensorBoard, early stopping and Keras Tuner can use them like any metric.

    Put it before the callbacks that read them (they all receive the same logs dict)."""

    def __init__(self, pairs, decode: DecodeConfig):
        super().__init__()
        self.pairs, self.decode = pairs, decode
        self.translator = None

    def on_train_begin(self, logs=None):
        self.translator = Translator(self.model, self.decode)  # traced once per training run

    def on_epoch_end(self, epoch, logs=None):
        result = evaluate_pairs(self.translator, self.pairs, self.decode.batch_size, beam_size=1)
        if logs is not None:
            logs["val_wer"], logs["val_per"] = result["wer"], result["per"]
