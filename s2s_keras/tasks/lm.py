"""lm: a language model over the source column (`LanguageModel`): sentences or truncated BPTT
over contiguous text (Zaremba et al. 2014), perplexity, generation and scoring."""

from __future__ import annotations

import itertools
import math

import keras
import numpy as np
import tensorflow as tf

from s2s_keras.config import Config, DataConfig, DecodeConfig, check
from s2s_keras.data import (
    STRING_BATCH,
    TrainingData,
    distributable,
    lm_shift,
    make_dataset,
)
from s2s_keras.evaluation import evaluate_language_model
from s2s_keras.export import Serving, decoding_requests, decoding_signatures, vector
from s2s_keras.inference import TextGenerator
from s2s_keras.losses import SequenceCrossentropy
from s2s_keras.metrics import MaskedAccuracy
from s2s_keras.models import LanguageModel
from s2s_keras.prediction import SequencePredictor
from s2s_keras.tasks.base import RECURRENT_SPACE, Examples, Task
from s2s_keras.text import END_ID, Tokenizer


class NextToken(Examples):
    """Sentences of the source column: `({"input_ids": </s> + y}, y + </s>)` (see
    `LanguageModel`)."""

    counted = (1,)

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def encode(self, sources, targets):
        return lm_shift(self.tokenizer.tokenize_ragged(sources))

    def to_model(self, inputs, outputs):
        return {"input_ids": inputs}, outputs


def make_stream_dataset(
    texts,
    tokenizer: Tokenizer,
    batch_size: int,
    bptt_length: int,
    epoch_range: tuple[int, int] | None = None,
) -> tf.data.Dataset:
    """Contiguous text for truncated BPTT (Zaremba et al. 2014), `texts` any iterable of strings
    (read once): every text's tokens followed by
    `</s>`, one after the other (after a first `</s>`), cut into `batch_size` equal streams laid
    side by side; batch i is steps `[i·L, (i+1)·L)` of every stream, `({"input_ids": (batch, L)},
    next tokens (batch, L))`, so that row r of batch i+1 continues row r of batch i (the last
    batch may be shorter). Order is fixed (no shuffling: it would break the streams); with
    `epoch_range`, that order once per epoch. The last `< batch_size` tokens are dropped (the
    streams must be equal); `stream_statistics` reports how many."""
    ids = _stream_ids(texts, tokenizer)
    if len(ids) == 1:
        raise ValueError("make_stream_dataset: no texts (is the split empty?)")
    steps = (len(ids) - 1) // batch_size
    if steps < 1:
        raise ValueError(f"make_stream_dataset: {len(ids)} tokens cannot fill {batch_size} streams")
    inputs = tf.reshape(ids[: batch_size * steps], [batch_size, steps])
    outputs = tf.reshape(ids[1 : batch_size * steps + 1], [batch_size, steps])
    starts = tf.range(0, steps, bptt_length)
    chunks = tf.data.Dataset.from_tensor_slices(starts).map(
        lambda start: (
            {"input_ids": inputs[:, start : start + bptt_length]},
            outputs[:, start : start + bptt_length],
        )
    )
    if epoch_range is not None:
        chunks = chunks.repeat(epoch_range[1] - epoch_range[0])
    return distributable(chunks)


def stream_statistics(texts, tokenizer: Tokenizer, batch_size: int, bptt_length: int) -> dict:
    """`batches` per epoch, `tokens` predicted per epoch, `dropped_tokens` (see
    `make_stream_dataset`)."""
    total = len(_stream_ids(texts, tokenizer)) - 1
    steps = total // batch_size
    return {
        "batches": -(-steps // bptt_length),
        "tokens": steps * batch_size,
        "dropped_tokens": total - steps * batch_size,
        "padding_fraction": 0.0,
    }


def _stream_ids(texts, tokenizer: Tokenizer) -> tf.Tensor:
    """`</s>`, then every text's ids and `</s>`: one int32 vector (the texts themselves are read
    `STRING_BATCH` at a time from any iterable, so a streamed split is never held as text)."""
    texts, pieces = iter(texts), [tf.constant([END_ID], tf.int32)]
    while chunk := list(itertools.islice(texts, STRING_BATCH)):
        pieces.append(
            lm_shift(tokenizer.tokenize_ragged(tf.constant(chunk, tf.string)))[1].flat_values
        )
    return tf.concat(pieces, axis=0)


class CarryReset(keras.callbacks.Callback):
    """Truncated BPTT: every epoch (and every evaluation) starts its streams from a zero state."""

    def on_epoch_begin(self, epoch, logs=None):
        self.model.reset_carry("train")

    def on_test_begin(self, logs=None):
        self.model.reset_carry("evaluate")


class PerplexityLog(keras.callbacks.Callback):
    """Adds `perplexity` / `val_perplexity` = exp(token cross-entropy) to every epoch's logs
    (before the callbacks that write them); with label smoothing it is not the model's
    perplexity."""

    def on_epoch_end(self, epoch, logs=None):
        for name in ("loss", "val_loss"):
            if logs is not None and name in logs:
                logs[name.replace("loss", "perplexity")] = math.exp(min(logs[name], 50.0))


class LanguageModelServing(Serving):
    """Prompts → prompt + continuation: `serving_default` (greedy), `generate` (beam), `sample`,
    and `score` (see `export.py`)."""

    def __init__(self, generator: TextGenerator):
        super().__init__(generator.model)
        decoding = decoding_signatures(generator, generator.decode)

        @tf.function(input_signature=[vector(tf.string, "inputs")])
        def score(inputs):
            return generator.score(inputs)

        self.publish(
            {
                "serving_default": decoding["greedy"],
                "generate": decoding["nbest"],
                "sample": decoding["sample"],
                "score": score,
            }
        )


def _texts(pairs):
    """The source column, lazily (a streamed split is read, not held)."""
    return (source for source, _ in pairs)


class LanguageModelTask(Task):
    name = "lm"
    model_class = LanguageModel
    tuning_space = {
        k: v
        for k, v in RECURRENT_SPACE.items()
        if k not in ("model.attention", "model.bidirectional", "model.reverse_source")
    }
    architecture = ("cell", "embedding_size", "hidden_units", "num_layers", "tie_embeddings")
    unused_fields = ("encoder_num_layers", "encoder_units", "reverse_target")

    def check_config(self, config: Config) -> None:
        model = config.model
        check(
            model.attention == "none",
            "model.attention",
            model.attention,
            "none with task=lm (attention belongs to the seq2seq decoder)",
        )
        check(
            not model.bidirectional,
            "model.bidirectional",
            model.bidirectional,
            "false with task=lm (a language model reads left to right)",
        )
        if config.data.bptt_length:
            check(
                config.train.strategy in ("auto", "one_device"),
                "train.strategy",
                config.train.strategy,
                "auto or one_device with data.bptt_length > 0 (the carried state lives on one "
                "device; use data.bptt_length=0, sentence batches, to distribute a language model)",
            )

    def vocabularies(self, counters: tuple, corpus, data: DataConfig) -> tuple:
        return counters[0].vocabulary(data.vocabulary_size), None

    def build_model(self, config: Config, source_vocabulary, target_vocabulary):
        data, model = config.data, config.model
        return LanguageModel(
            source_vocabulary,
            split=data.source_split,
            lowercase=data.source_lowercase,
            precision=config.train.precision,
            **{
                name: getattr(model, name)
                for name in self.architecture + ("dropout", "recurrent_dropout", "init_scale")
            },
        )

    def examples(self, config: Config, model) -> NextToken:
        return NextToken(model.target_tokenizer)

    def lengths(self, config: Config, source_lengths, target_lengths) -> np.ndarray:
        return np.asarray(source_lengths) + 1  # + </s>

    def source_tokenizer(self, model):
        return model.target_tokenizer  # a language model's one tokenizer reads the source column

    def datasets(self, config: Config, corpus, model, lengths=None) -> TrainingData:
        """Sentence batches (`data.bptt_length` 0), or contiguous text for truncated BPTT."""
        if not config.data.bptt_length:
            return super().datasets(config, corpus, model, lengths)
        batch_size, bptt_length = config.train.batch_size, config.data.bptt_length

        def make(pairs, shuffle, epoch_range, padding):
            return make_stream_dataset(
                _texts(pairs),
                model.target_tokenizer,
                batch_size,
                bptt_length,
                epoch_range=epoch_range,
            )

        def statistics(pairs):
            return stream_statistics(_texts(pairs), model.target_tokenizer, batch_size, bptt_length)

        train = statistics(corpus.train)
        valid = None
        if corpus.valid:
            valid = make(corpus.valid, False, None, None).apply(
                tf.data.experimental.assert_cardinality(statistics(corpus.valid)["batches"])
            )
        return TrainingData(
            train["batches"],
            valid,
            make,
            corpus,
            {
                "stream_tokens_per_epoch": train["tokens"],
                "stream_dropped_tokens": train["dropped_tokens"],
            },
        )

    def split_batches(self, config: Config, model, pairs) -> tf.data.Dataset:
        """One unshuffled pass over `pairs` as training batches them (evaluation)."""
        if config.data.bptt_length:
            return make_stream_dataset(
                _texts(pairs),
                model.target_tokenizer,
                config.train.batch_size,
                config.data.bptt_length,
            )
        data = config.data
        return make_dataset(
            pairs,
            NextToken(model.target_tokenizer),
            config.train.batch_size,
            shuffle=False,
            bucket_width=data.bucket_width,
            max_bucket_length=data.max_bucket_length,
            batch_tokens=data.batch_tokens,
        )

    def statistics(self, config: Config, corpus, model, data: TrainingData) -> dict:
        return data.statistics

    def loss_and_metrics(self, config: Config) -> tuple:
        return SequenceCrossentropy(config.train.label_smoothing), [MaskedAccuracy()]

    def callbacks(self, config: Config, model, corpus, monitor: str) -> list:
        """Perplexity in the logs; for truncated BPTT the carried state (turned on here), reset
        at each epoch and each evaluation."""
        callbacks = [PerplexityLog()]
        if config.data.bptt_length:
            model.carry_state(config.train.batch_size)
            callbacks.insert(0, CarryReset())
        return callbacks

    def after_training(self, model) -> None:
        model.carry_state(None)

    def pretrained_vocabularies(self, pretrained, labels) -> tuple:
        return pretrained.vocabulary, labels

    def tokenized_columns(self, pretrained) -> list:
        return [("text", pretrained.target_tokenizer, 0)]

    def inference(self, model, decode: DecodeConfig) -> TextGenerator:
        return TextGenerator(model, decode)

    def serving_module(self, model, config: Config, rescorer=None) -> LanguageModelServing:
        self.no_reranking(rescorer)
        return LanguageModelServing(self.inference(model, config.decode))

    def warmup_requests(self, decode: DecodeConfig) -> dict:
        words = np.array([b"hello", b"world"])
        requests = decoding_requests(words, decode, nbest="generate")
        return {
            "serving_default": requests["greedy"],
            "generate": requests["generate"],
            "sample": requests["sample"],
            "score": {"inputs": np.array([b"hello world", b""])},
        }

    def evaluate(
        self, model, config: Config, pairs, beam_size: int | None = None, rescorer=None
    ) -> dict:
        self.no_reranking(rescorer)
        return evaluate_language_model(model, config, pairs)

    def predictor(self, model, config: Config, rescorer=None) -> SequencePredictor:
        self.no_reranking(rescorer)
        return SequencePredictor.of_decoder(self.inference(model, config.decode))

    def saved_model_predictor(self, loaded) -> SequencePredictor:
        return SequencePredictor.of_saved_model(
            loaded, loaded.generate, lambda texts: loaded.score(inputs=texts)
        )
