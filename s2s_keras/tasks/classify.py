"""classify: source → one label, the target column (`Classifier`); accuracy; LM-initialized."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from s2s_keras.config import Config, DataConfig, DecodeConfig, check
from s2s_keras.data import string_batches
from s2s_keras.evaluation import evaluate_classifier
from s2s_keras.export import Serving, vector
from s2s_keras.inference import LabelPredictor
from s2s_keras.models import Classifier, LanguageModel
from s2s_keras.prediction import LabelPredictions
from s2s_keras.run_dir import read_config
from s2s_keras.tasks.base import RECURRENT_SPACE, Examples, Task

# What a language model shares with a classifier's encoder (a tied embedding is still the
# embedding).
LM_ARCHITECTURE = ("cell", "embedding_size", "hidden_units", "num_layers", "reverse_source")


class Labels(Examples):
    """`({"source_ids"}, label id (batch,))`, ids in the order of `labels`, sources cut to their
    LAST `max_source_tokens` tokens (0: uncut)."""

    def __init__(self, source_tokenizer, labels, max_source_tokens: int):
        if not labels:
            raise ValueError("task classify: no labels")
        self.source_tokenizer = source_tokenizer
        self.max_source_tokens = max_source_tokens
        self.table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(list(labels)), tf.range(len(labels))),
            -1,
        )

    def encode(self, sources, targets):
        ids = self.source_tokenizer.tokenize_ragged(sources)
        if self.max_source_tokens:
            ids = ids[:, -self.max_source_tokens :]
        label = self.table.lookup(targets)
        check = tf.debugging.assert_non_negative(
            label, message="make_dataset: a label not in `labels`"
        )
        with tf.control_dependencies([check]):
            return ids, tf.identity(label)

    def to_model(self, source, label):
        return {"source_ids": source}, label


class LabelSet:
    """The vocabulary pass's counter of a label column: the distinct labels it saw."""

    def __init__(self):
        self.labels = set()

    def update(self, labels) -> None:
        self.labels.update(labels)


class ClassifierServing(Serving):
    """`serving_default`: strings → `labels`, `probabilities`, `classes` (see `export.py`)."""

    def __init__(self, predictor: LabelPredictor):
        super().__init__(predictor.model)

        @tf.function(input_signature=[vector(tf.string, "inputs")])
        def serving_default(inputs):
            return predictor.classify(inputs)

        self.publish({"serving_default": serving_default})


class ClassifyTask(Task):
    name = "classify"
    model_class = Classifier
    pretrained_classes = (Classifier, LanguageModel)  # a language model: Dai & Le 2015
    objectives = {"val_accuracy": "max", "val_loss": "min"}
    tuning_space = {
        **{
            k: v
            for k, v in RECURRENT_SPACE.items()
            if k not in ("model.attention", "model.reverse_source")
        },
        "model.pooling": {"choice": ["last", "mean", "attention"]},
    }
    architecture = (
        "cell",
        "learn_initial_state",
        "embedding_size",
        "hidden_units",
        "num_layers",
        "bidirectional",
        "reverse_source",
        "pooling",
    )
    unused_fields = ("encoder_num_layers", "encoder_units", "reverse_target")

    def check_config(self, config: Config) -> None:
        check(
            config.model.attention == "none",
            "model.attention",
            config.model.attention,
            "none with task=classify (attention belongs to the seq2seq decoder; classify has "
            "model.pooling=attention)",
        )
        check(
            config.train.label_smoothing == 0.0,
            "train.label_smoothing",
            config.train.label_smoothing,
            "0 with task=classify",
        )

    def counters(self, data: DataConfig) -> tuple:
        return super().counters(data)[0], LabelSet()

    def vocabularies(self, counters: tuple, corpus, data: DataConfig) -> tuple:
        """The source vocabulary and the sorted labels of the training split; every valid/test
        label must be one of them."""
        source, label_set = counters
        labels = sorted(label_set.labels)
        if len(labels) < 2:
            raise ValueError(
                f"task classify: the training split has {len(labels)} distinct label(s) "
                f"({labels}); a classifier needs at least 2"
            )
        for split in ("valid", "test"):
            unknown = sorted({label for _, label in corpus.split(split)} - set(labels))
            if unknown:
                raise ValueError(
                    f"task classify: label(s) {unknown[:5]} of the {split} split never "
                    f"occur in the training split (known: {labels[:10]})"
                )
        return source.vocabulary(data.vocabulary_size), labels

    def build_model(self, config: Config, source_vocabulary, target_vocabulary):
        data, model = config.data, config.model
        return self.model_class(
            source_vocabulary,
            target_vocabulary,
            source_split=data.source_split,
            source_lowercase=data.source_lowercase,
            max_source_tokens=data.max_source_tokens,
            precision=config.train.precision,
            **{
                name: getattr(model, name)
                for name in self.architecture + ("dropout", "recurrent_dropout", "init_scale")
            },
        )

    def examples(self, config: Config, model) -> Labels:
        return Labels(model.source_tokenizer, model.labels, config.data.max_source_tokens)

    def lengths(self, config: Config, source_lengths, target_lengths) -> np.ndarray:
        """The source's (cut) length: a label is not a sequence."""
        sources, cut = np.asarray(source_lengths), config.data.max_source_tokens
        return np.minimum(sources, cut) if cut else sources

    def statistics(self, config: Config, corpus, model, data) -> dict:
        """How many training sources the `data.max_source_tokens` cut shortened."""
        if not config.data.max_source_tokens:
            return {}
        cut = 0
        for texts, _ in string_batches(corpus.train):
            lengths = model.source_tokenizer.tokenize_ragged(texts).row_lengths()
            cut += int(tf.reduce_sum(tf.cast(lengths > config.data.max_source_tokens, tf.int32)))
        return {"train_sources_cut": cut, "max_source_tokens": config.data.max_source_tokens}

    def loss_and_metrics(self, config: Config) -> tuple:
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True), [
            keras.metrics.SparseCategoricalAccuracy(name="accuracy")
        ]

    # --- fine-tuning: from a classifier, or from a language model's embedding and layers ----

    def pretrained_config(self, pretrained) -> dict:
        """A language model's config as a classifier's fields read it: only what it shares with
        the encoder (`LM_ARCHITECTURE`), read forwards (`reverse_source` false)."""
        theirs = pretrained.get_config()
        if not isinstance(pretrained, LanguageModel):
            return theirs
        shared = {name: theirs[name] for name in LM_ARCHITECTURE if name in theirs}
        return {
            **shared,
            "reverse_source": False,
            "split": theirs["split"],
            "lowercase": theirs["lowercase"],
        }

    def pretrained_problems(self, config: Config, pretrained, labels, path: str) -> list:
        if isinstance(pretrained, Classifier):
            unknown = sorted(set(labels or ()) - set(pretrained.labels))
            return (
                [
                    f"labels {unknown[:5]} of the training split are not among the pretrained "
                    f"model's {pretrained.labels[:10]}"
                ]
                if unknown
                else []
            )
        problems = []
        model = config.model
        if model.bidirectional and model.num_layers > 1:
            problems.append(
                f"model.bidirectional with model.num_layers {model.num_layers}: a bidirectional "
                f"layer above the first reads both directions ({2 * model.hidden_units} features), "
                f"a language model's layer reads {model.hidden_units} (set "
                f"model.bidirectional=false or model.num_layers=1)"
            )
        return problems + held_out_text(config, path)

    def pretrained_vocabularies(self, pretrained, labels) -> tuple:
        if isinstance(pretrained, LanguageModel):
            return pretrained.vocabulary, labels  # this run's labels
        return pretrained.source_vocabulary, pretrained.labels

    def corresponding_layers(self, pretrained, model) -> list:
        """From a `LanguageModel` (Dai & Le 2015): its embedding into the source embedding and
        each of its layers into the encoder layer of the same depth — the forward direction when
        bidirectional (the backward one reads text the other way: fresh). The pooling, the label
        projection and learned initial states stay fresh."""
        if not isinstance(pretrained, LanguageModel):
            return [(pretrained, model)]
        return [(pretrained.target_embedding, model.source_embedding)] + [
            (theirs, ours.forward_layer if isinstance(ours, keras.layers.Bidirectional) else ours)
            for theirs, ours in zip(pretrained.decoder_layers, model.encoder_layers, strict=True)
        ]

    def tokenized_columns(self, pretrained) -> list:
        if isinstance(pretrained, LanguageModel):
            return [("text", pretrained.target_tokenizer, 0)]
        return super().tokenized_columns(pretrained)

    # --- inference --------------------------------------------------------------------------

    def inference(self, model, decode: DecodeConfig) -> LabelPredictor:
        """Inputs keep their last `max_source_tokens` tokens (the training cut), else the last
        `decode.max_input_length`."""
        return LabelPredictor(model, model.max_source_tokens or decode.max_input_length)

    def serving_module(self, model, config: Config, rescorer=None) -> ClassifierServing:
        self.no_reranking(rescorer)
        return ClassifierServing(self.inference(model, config.decode))

    def warmup_requests(self, decode: DecodeConfig) -> dict:
        return {"serving_default": {"inputs": np.array([b"a fine film", b"dull"])}}

    def evaluate(
        self, model, config: Config, pairs, beam_size: int | None = None, rescorer=None
    ) -> dict:
        self.no_reranking(rescorer)
        return evaluate_classifier(
            self.inference(model, config.decode), pairs, config.decode.batch_size
        )

    def predictor(self, model, config: Config, rescorer=None) -> LabelPredictions:
        self.no_reranking(rescorer)
        inference = self.inference(model, config.decode)
        predictor = LabelPredictions(inference.classify)
        predictor.inference = inference  # a tf.function method holds its object only weakly
        return predictor

    def saved_model_predictor(self, loaded) -> LabelPredictions:
        predictor = LabelPredictions(lambda texts: loaded.serving_default(inputs=texts))
        predictor.loaded = loaded  # must outlive its functions (it owns the variables)
        return predictor


def held_out_text(config: Config, path: str) -> list:
    """Why a language model's run (`path`, its config.json) trained on text of this run's
    valid/test split, if it did: on the same `data.source`, `assign_split` gives every split the
    same hash, test and then valid taken from its low end, so its training text avoids our
    held-out text only with the same `data.seed` and at least our held-out fractions. A `.keras`
    file does not say how it was trained: taken on trust."""
    run_config = read_config(path)
    if run_config is None:
        return []
    theirs, ours = run_config.data, config.data
    held_out = ours.test_fraction + ours.valid_fraction
    if theirs.source != ours.source or (
        theirs.seed == ours.seed and theirs.test_fraction + theirs.valid_fraction >= held_out
    ):
        return []
    return [
        f"data.seed, data.valid_fraction, data.test_fraction: {ours.seed}, {ours.valid_fraction}, "
        f"{ours.test_fraction} here, {theirs.seed}, {theirs.valid_fraction}, "
        f"{theirs.test_fraction} in the language model's run on the same data.source: its "
        f"training text holds text of this run's valid/test split (train the language model "
        f"with this run's seed and fractions)"
    ]
