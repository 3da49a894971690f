"""seq2seq: source → target sequence (`Seq2Seq`), teacher forcing, decoding, WER/PER/BLEU."""

from __future__ import annotations

import collections
import dataclasses

import numpy as np
import tensorflow as tf

from s2s_keras.config import Config, ConfigError, DataConfig, DecodeConfig
from s2s_keras.data import TeacherForcing, teacher_forcing_lengths
from s2s_keras.evaluation import ValidationErrorRates, evaluate_pairs, translate
from s2s_keras.export import (
    Serving,
    decoding_requests,
    decoding_signatures,
    per_request,
    vector,
)
from s2s_keras.inference import Reranker, Translator
from s2s_keras.losses import SequenceCrossentropy
from s2s_keras.metrics import MaskedAccuracy
from s2s_keras.models import Seq2Seq
from s2s_keras.prediction import SequencePredictor
from s2s_keras.tasks.base import RECURRENT_SPACE, Task
from s2s_keras.text import TokenCounter


class Seq2SeqServing(Serving):
    """Signatures of a seq2seq export: `serving_default` (beam, the exported width), `nbest`,
    `greedy`, `sample`, `score` (see `export.py`). With a `Reranker`, `serving_default` answers
    its best and `rerank` its n-best (the other signatures stay the translator's)."""

    def __init__(self, translator: Translator, reranker: Reranker | None = None):
        models = [translator.model] + ([reranker.scorer.model] if reranker else [])
        super().__init__(*models)
        d: DecodeConfig = translator.decode
        no_ints = tf.constant([], tf.int32)

        @tf.function(input_signature=[vector(tf.string, "inputs")])
        def serving_default(inputs):
            if reranker is not None:
                outputs, scores = reranker.ranked(inputs, d.beam_size, 1)
            else:
                outputs, scores = translator.beam(
                    inputs, d.beam_size, d.max_length, d.length_penalty, 1
                )
            return {"outputs": outputs[:, 0], "scores": scores[:, 0]}

        @tf.function(
            input_signature=[
                vector(tf.string, "inputs"),
                vector(tf.int32, "beam_size"),
                vector(tf.int32, "num_results"),
            ]
        )
        def rerank(inputs, beam_size=no_ints, num_results=no_ints):
            width = per_request(beam_size, d.beam_size, inputs, "beam_size")
            outputs, scores = reranker.ranked(
                inputs, width, per_request(num_results, width, inputs, "num_results")
            )
            return {"outputs": outputs, "scores": scores}

        @tf.function(input_signature=[vector(tf.string, "sources"), vector(tf.string, "targets")])
        def score(sources, targets):
            return translator.score(sources, targets)

        self.publish(
            {
                "serving_default": serving_default,
                **decoding_signatures(translator, d),
                "score": score,
                **({"rerank": rerank} if reranker is not None else {}),
            }
        )


class Seq2SeqTask(Task):
    name = "seq2seq"
    model_class = Seq2Seq
    objectives = {"val_wer": "min", "val_loss": "min"}
    tuning_space = RECURRENT_SPACE
    architecture = (
        "cell",
        "learn_initial_state",
        "embedding_size",
        "hidden_units",
        "num_layers",
        "encoder_num_layers",
        "encoder_units",
        "bidirectional",
        "bridge",
        "attention",
        "input_feeding",
        "reverse_source",
        "reverse_target",
        "tie_embeddings",
    )

    def counters(self, data: DataConfig) -> tuple:
        return (
            TokenCounter(data.source_split, data.source_lowercase),
            TokenCounter(data.target_split, data.target_lowercase),
        )

    def measures_lengths(self, data: DataConfig) -> bool:
        return "wordpiece" not in (data.source_split, data.target_split)

    def vocabularies(self, counters: tuple, corpus, data: DataConfig) -> tuple:
        return tuple(counter.vocabulary(data.vocabulary_size) for counter in counters)

    def build_model(self, config: Config, source_vocabulary, target_vocabulary):
        """Every `model.*` field but `pooling` is a `Seq2Seq` argument of the same name."""
        model = dataclasses.asdict(config.model)
        del model["pooling"]
        data = config.data
        return Seq2Seq(
            source_vocabulary,
            target_vocabulary,
            source_split=data.source_split,
            target_split=data.target_split,
            source_lowercase=data.source_lowercase,
            target_lowercase=data.target_lowercase,
            precision=config.train.precision,
            **model,
        )

    def examples(self, config: Config, model) -> TeacherForcing:
        return TeacherForcing(model.source_tokenizer, model.target_tokenizer)

    def lengths(self, config: Config, source_lengths, target_lengths) -> np.ndarray:
        return teacher_forcing_lengths(source_lengths, target_lengths)

    def target_tokenizer(self, model):
        return model.target_tokenizer

    def loss_and_metrics(self, config: Config) -> tuple:
        return SequenceCrossentropy(config.train.label_smoothing), [MaskedAccuracy()]

    def callbacks(self, config: Config, model, corpus, monitor: str) -> list:
        if monitor == "val_wer":
            return [ValidationErrorRates(corpus.valid, config.decode)]
        return []

    def tokenized_columns(self, pretrained) -> list:
        return [
            ("source", pretrained.source_tokenizer, 0),
            ("target", pretrained.target_tokenizer, 1),
        ]

    def inference(self, model, decode: DecodeConfig) -> Translator:
        return Translator(model, decode)

    def portable(self, model, config: Config) -> tuple:
        from s2s_keras.portable import tokenizer_spec

        return self.inference(model, config.decode).greedy_ids, {
            "source": tokenizer_spec(model.source_tokenizer),
            "target": tokenizer_spec(model.target_tokenizer),
            "max_input_length": config.decode.max_input_length,
            "max_length": config.decode.max_length,
        }

    def serving_module(self, model, config: Config, rescorer=None) -> Seq2SeqServing:
        reranker = self.reranker(model, config, rescorer)
        return Seq2SeqServing(self._translator(model, config, reranker), reranker)

    def warmup_requests(self, decode: DecodeConfig) -> dict:
        words = np.array([b"hello", b"world"])
        return {
            "serving_default": {"inputs": words},
            **decoding_requests(words, decode, nbest="nbest"),
            "score": {"sources": words, "targets": np.array([b"HH AH L OW", b"W ER L D"])},
            "rerank": {
                "inputs": words,
                "beam_size": np.full(len(words), decode.beam_size, np.int32),
                "num_results": np.full(len(words), min(2, decode.beam_size), np.int32),
            },
        }

    def evaluate(
        self, model, config: Config, pairs, beam_size: int | None = None, rescorer=None
    ) -> dict:
        """`rescorer`: a model (or ensemble) that reranks the beam's candidates (`reranker`);
        the result then gives the weight."""
        beam_size = config.decode.beam_size if beam_size is None else beam_size
        translator = self.reranker(model, config, rescorer) or self.inference(model, config.decode)
        result = evaluate_pairs(translator, pairs, config.decode.batch_size, beam_size)
        reranked = {"rescore_weight": config.decode.rescore_weight} if rescorer else {}
        return {**result, "beam_size": beam_size, **reranked}

    def reranker(self, model, config: Config, rescorer) -> Reranker | None:
        """`model`'s beam reranked by `rescorer` (a seq2seq model or ensemble, e.g. trained
        right to left) with weight `decode.rescore_weight`; None without a rescorer."""
        if rescorer is None:
            return None
        if not isinstance(getattr(rescorer, "members", [rescorer])[0], Seq2Seq):
            raise ConfigError(
                f"--rescore: expected seq2seq runs, got a {type(rescorer).__name__} (a rescorer "
                "scores the candidates' text)"
            )
        translator = self.inference(model, config.decode)
        scorer = self.inference(rescorer, config.decode)
        return Reranker(translator, scorer, config.decode.rescore_weight)

    def distill(self, model, config: Config, pairs, beam_size: int | None = None) -> tuple:
        """Each distinct source once (first-seen order) with the beam's best output; a source
        the model decodes to "" or reads cut (more than `decode.max_input_length` tokens) keeps
        its references instead."""
        beam_size = config.decode.beam_size if beam_size is None else beam_size
        references = collections.defaultdict(list)
        for source, target in pairs:
            references[source].append(target)
        sources = list(references)
        outputs = translate(
            self.inference(model, config.decode), sources, config.decode.batch_size, beam_size
        )
        lengths = []
        for start in range(0, len(sources), config.decode.batch_size):
            batch = tf.constant(sources[start : start + config.decode.batch_size], tf.string)
            lengths.extend(model.source_tokenizer.tokenize_ragged(batch).row_lengths().numpy())
        distilled, counts = [], {"sources": len(sources), "empty_outputs": 0, "cut_sources": 0}
        for source, output, length in zip(sources, outputs, lengths):
            if length > config.decode.max_input_length:
                counts["cut_sources"] += 1
            elif not output.strip():
                counts["empty_outputs"] += 1
            else:
                distilled.append((source, output))
                continue
            distilled.extend((source, target) for target in references[source])
        counts["from_teacher"] = counts["sources"] - counts["empty_outputs"] - counts["cut_sources"]
        return distilled, counts

    def predictor(self, model, config: Config, rescorer=None) -> SequencePredictor:
        reranker = self.reranker(model, config, rescorer)
        return SequencePredictor.of_decoder(self._translator(model, config, reranker), reranker)

    def _translator(self, model, config: Config, reranker: Reranker | None) -> Translator:
        """The reranker's own translator (one traced decoder, not two), else a new one."""
        return reranker.translator if reranker else self.inference(model, config.decode)

    def saved_model_predictor(self, loaded) -> SequencePredictor:
        """Over `rerank` when the export has it (it was exported with a rescorer), else
        `nbest`."""
        return SequencePredictor.of_saved_model(
            loaded,
            getattr(loaded, "rerank", None) or loaded.nbest,
            lambda sources, targets: loaded.score(sources=sources, targets=targets),
        )
