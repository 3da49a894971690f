"""Score a split with the inference path: seq2seq outputs against all references (WER / PER,
BLEU / chrF), a classifier's labels (accuracy), a language model's perplexity."""

from __future__ import annotations

import collections
import math

import keras
import tensorflow as tf

from s2s_keras.config import DecodeConfig
from s2s_keras.inference import Translator
from s2s_keras.metrics import error_rates


def translate(translator: Translator, sources, batch_size: int, beam_size: int) -> list:
    """Best output string for each of `sources`, in order, `batch_size` at a time."""
    outputs = []
    for start in range(0, len(sources), batch_size):
        batch = tf.constant(sources[start : start + batch_size], tf.string)
        outputs.extend(
            text.decode("utf-8") for text in translator.translate(batch, beam_size).numpy()
        )
    return outputs


def evaluate_pairs(
    translator: Translator, pairs, batch_size: int, beam_size: int, sentence_level: bool = True
) -> dict:
    """`{"wer", "per", "num_words", "exact_match", "bleu", "chrf"}` over the distinct sources of
    `pairs`, every target of a source being one of its references.

    WER/PER (the G2P measures; WER is the share of outputs equal to no reference, so
    `exact_match = 1 - wer`) compare tokens of the model's target tokenizer (the normalization
    the model was trained on). BLEU and chrF are sacrebleu's corpus scores of the detokenized
    outputs against the raw references (for sentence-level data; `sentence_level=False` skips
    them, as the per-epoch `val_wer` does).
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
    result = error_rates(tokenized_hyps, tokenized_refs)
    result["exact_match"] = 1.0 - result["wer"]
    if sentence_level:
        result.update(sentence_scores(hypotheses, [references[source] for source in sources]))
    return result


def evaluate_classifier(predictor, pairs, batch_size: int) -> dict:
    """`{"accuracy", "num_examples", "per_label": {label: {"precision", "recall", "count"}},
    "confusion": {reference: {predicted: count}}}` of `predictor.classify` (a `LabelPredictor`)
    over `(text, label)` pairs."""
    predicted = []
    for start in range(0, len(pairs), batch_size):
        texts = tf.constant([text for text, _ in pairs[start : start + batch_size]], tf.string)
        predicted.extend(
            label.decode("utf-8") for label in predictor.classify(texts)["labels"].numpy()
        )
    confusion = collections.defaultdict(collections.Counter)
    for (_, reference), label in zip(pairs, predicted):
        confusion[reference][label] += 1
    labels = sorted(set(confusion) | set(predicted))
    per_label = {}
    for label in labels:
        true_positive = confusion[label][label]
        chosen = sum(confusion[reference][label] for reference in confusion)
        count = sum(confusion[label].values())
        per_label[label] = {
            "precision": true_positive / chosen if chosen else 0.0,
            "recall": true_positive / count if count else 0.0,
            "count": count,
        }
    correct = sum(confusion[label][label] for label in labels)
    return {
        "accuracy": correct / len(pairs) if pairs else 0.0,
        "num_examples": len(pairs),
        "per_label": per_label,
        "confusion": {ref: dict(row) for ref, row in sorted(confusion.items())},
    }


def evaluate_language_model(model, config, pairs) -> dict:
    """Perplexity `exp(-Σ log p / tokens)` of the source texts of `pairs`, every token and every
    sentence end predicted. With `data.bptt_length > 0` the texts are one contiguous stream in
    `train.batch_size` streams with the state carried across batches (as it was trained; the
    standard PTB measure — only the first token of each stream starts from a zero state);
    otherwise each sentence from a zero state. Returns `{"perplexity", "nll_per_token",
    "tokens"}`."""
    from s2s_keras.tasks import get_task

    streams = config.data.bptt_length > 0
    if streams:
        model.carry_state(config.train.batch_size)
    try:
        dataset = get_task(config.task).split_batches(config, model, pairs)

        @tf.function
        def step(inputs, targets):
            logits = model(inputs, training=False)  # continues the carried "evaluate" state
            log_probs = tf.nn.log_softmax(tf.cast(logits, tf.float32), axis=-1)
            real = targets != 0
            nll = -tf.gather(log_probs, targets, batch_dims=2)
            return tf.reduce_sum(tf.where(real, nll, 0.0)), tf.reduce_sum(tf.cast(real, tf.float32))

        total = count = 0.0
        for inputs, targets in dataset:
            batch_nll, batch_count = step(inputs, targets)
            total += float(batch_nll)
            count += float(batch_count)
    finally:
        if streams:
            model.carry_state(None)
    nll = total / count if count else 0.0
    return {"perplexity": math.exp(nll), "nll_per_token": nll, "tokens": int(count)}


def sentence_scores(hypotheses, references) -> dict:
    """sacrebleu corpus BLEU and chrF; `references[i]` lists every reference of output i."""
    import sacrebleu

    width = max((len(refs) for refs in references), default=1)
    # sacrebleu wants reference streams of equal length: repeat a source's first reference
    # (a duplicate reference changes neither clipped counts nor the closest length).
    streams = [[refs[min(k, len(refs) - 1)] for refs in references] for k in range(width)]
    return {
        "bleu": sacrebleu.corpus_bleu(hypotheses, streams).score,
        "chrf": sacrebleu.corpus_chrf(hypotheses, streams).score,
    }


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
        result = evaluate_pairs(
            self.translator, self.pairs, self.decode.batch_size, beam_size=1, sentence_level=False
        )
        if logs is not None:
            logs["val_wer"], logs["val_per"] = result["wer"], result["per"]
