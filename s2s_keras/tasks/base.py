"""What a task is: everything that differs between seq2seq, classify, lm (and the next one).

The shared machinery — the vocabulary pass and the fit loop (`training.py`), the run directory
(`run_dir.py`), bucketing and batching (`data.py`), the decoding loops (`decoding/`), the
SavedModel writer (`export.py`), tuning (`tuning.py`) — never asks which task it runs: it asks
the `Task` looked up by `config.task` (`s2s_keras.tasks.get_task`). In the spirit of
tensorflow/models `official/core/base_task.py` (`build_model`, `build_inputs`, `build_losses`,
`build_metrics`) and OpenNMT-tf's `Model` (`serve_function`, `compute_loss`, `get_metrics`).

A new task is one file: a `Task` subclass (and its `Examples`) passed to `register_task`.
"""

from __future__ import annotations

import numpy as np

from s2s_keras.config import Config, ConfigError, DataConfig, DecodeConfig, ModelConfig
from s2s_keras.data import TrainingData, bucketed_training_data, length_histogram
from s2s_keras.text import TokenCounter
from s2s_keras.validation import check

# The search space every recurrent task starts from (keys as in `--set`; see `tuning.py`).
RECURRENT_SPACE = {
    "model.cell": {"choice": ["lstm", "gru"]},
    "model.bidirectional": {"boolean": True},
    "model.attention": {"choice": ["none", "luong_general", "bahdanau"]},
    "model.hidden_units": {"choice": [128, 256, 512]},
    "model.num_layers": {"int": [1, 3]},
    "model.embedding_size": {"choice": [64, 128, 256]},
    "model.dropout": {"float": [0.0, 0.4], "step": 0.1},
    "model.reverse_source": {"boolean": True},
    "train.learning_rate": {"float": [3e-4, 1e-2], "sampling": "log"},
    "train.batch_size": {"choice": [64, 128, 256]},
}


class Examples:
    """How a task turns batches of `(source, target)` strings into model examples.

    `encode(sources (batch,), targets (batch,))` → a tuple of ragged (or dense, per example)
    tensors; `to_model(*padded batch)` → `(inputs dict, targets)` for `model.fit`; `counted`:
    the positions in that tuple whose padding counts (`PaddingCounter`).
    """

    counted: tuple = (0,)

    def encode(self, sources, targets) -> tuple:
        raise NotImplementedError

    def to_model(self, *batch) -> tuple:
        raise NotImplementedError


class Task:
    """The base every task extends. Defaults fit a task with one tokenized source column.

    Class attributes:
        name: the value of `config.task`.
        model_class: the Keras model it trains (`s2s predict` recognizes a `.keras` by it).
        pretrained_classes: what `train.init_from` may load (default: `(model_class,)`).
        objectives: tuning objectives and their direction, the first one the default.
        tuning_space: the default Keras Tuner search space.
        architecture: `model.*` fields that fix the computation a model's weights were
            trained for (fine-tuning checks them; dropout and init may change).
        unused_fields: `model.*` fields the task's model has no use for; `check` refuses a
            config that sets them.
    """

    name = ""
    model_class: type = None
    pretrained_classes: tuple = ()
    objectives = {"val_loss": "min"}
    tuning_space: dict = {}
    architecture: tuple = ()
    unused_fields: tuple = ()

    # --- config -----------------------------------------------------------------------------

    def check(self, config: Config) -> None:
        """Every task's rules on `config` (`train.best_metric` is one of `objectives`), then the
        task's own (`check_config`)."""
        metric = config.train.best_metric
        objectives = sorted(self.objectives)
        expected = f"one of {objectives} for task {self.name} (or empty: val_loss)"
        check(not metric or metric in objectives, "train.best_metric", metric, expected)
        defaults = ModelConfig()
        for name in self.unused_fields:
            value = getattr(config.model, name)
            check(
                value == getattr(defaults, name),
                f"model.{name}",
                value,
                f"{getattr(defaults, name)} with task={self.name} (its model has no use for it)",
            )
        self.check_config(config)

    def check_config(self, config: Config) -> None:
        """Rules that hold only for this task (`config.check`: a `ConfigError` naming the
        field)."""

    # --- data -------------------------------------------------------------------------------

    def counters(self, data: DataConfig) -> tuple:
        """`(source counter, target counter or None)` for the vocabulary pass: each has
        `update(strings) -> token counts (or None)`; `measures_lengths` says whether those
        counts are the model's lengths."""
        return TokenCounter(data.source_split, data.source_lowercase), None

    def measures_lengths(self, data: DataConfig) -> bool:
        """Whether the vocabulary pass's token counts are the lengths the model will see
        (not with a `wordpiece` side: those depend on the vocabulary being learned)."""
        return data.source_split != "wordpiece"

    def vocabularies(self, counters: tuple, corpus, data: DataConfig) -> tuple:
        """`(source vocabulary, target vocabulary or labels or None)` from the counters."""
        raise NotImplementedError

    def build_model(self, config: Config, source_vocabulary, target_vocabulary):
        """The model (`training.build_model` calls it with a concrete `train.precision`)."""
        raise NotImplementedError

    def examples(self, config: Config, model) -> Examples:
        raise NotImplementedError

    def lengths(self, config: Config, source_lengths, target_lengths) -> np.ndarray:
        """Each pair's bucketing length from its token counts (`data.count_batches`)."""
        raise NotImplementedError

    def source_tokenizer(self, model):
        """The tokenizer of the source column (the one the vocabulary pass lengths count)."""
        return model.source_tokenizer

    def target_tokenizer(self, model):
        """The tokenizer of the target column, or None when the target is not tokenized."""
        return None

    def datasets(self, config: Config, corpus, model, lengths=None) -> TrainingData:
        """`data.TrainingData` of the run: bucketed batches of `examples` by default."""
        if lengths is None:
            lengths = length_histogram(
                lambda sources, targets: self.lengths(config, sources, targets),
                self.source_tokenizer(model),
                self.target_tokenizer(model),
                corpus.train,
            )
        examples = self.examples(config, model)
        return bucketed_training_data(
            config.data, config.train.batch_size, corpus, examples, lengths
        )

    def statistics(self, config: Config, corpus, model, data) -> dict:
        """What this task's data preparation changed, for summary.json."""
        return {}

    # --- training ---------------------------------------------------------------------------

    def loss_and_metrics(self, config: Config) -> tuple:
        raise NotImplementedError

    def callbacks(self, config: Config, model, corpus, monitor: str) -> list:
        """Callbacks that run before every other one (those read the logs they write)."""
        return []

    def portable(self, model, config: Config) -> tuple:
        """`(function, vocabulary)` for the LiteRT / ONNX exports (`portable.py`): a function
        of int32 ids `(batch, S)` whose loops keep fixed shapes, and what `vocabulary.json`
        holds."""
        raise ValueError(f"task {self.name}: no LiteRT / ONNX export (seq2seq has one)")

    def after_training(self, model) -> None:
        """Puts the model in its inference form before it is saved."""

    # --- fine-tuning ------------------------------------------------------------------------

    def accepts(self, pretrained) -> bool:
        return isinstance(pretrained, self.pretrained_classes or (self.model_class,))

    def pretrained_config(self, pretrained) -> dict:
        """The pretrained model's config, as `pretrained_fields` reads it."""
        return pretrained.get_config()

    def pretrained_fields(self, config: Config) -> list:
        """`(our field, the pretrained config's key, our value)`: those of the keys the
        pretrained config has must be equal (the architecture and the tokenization)."""
        data = config.data
        fields = [
            (f"model.{name}", name, getattr(config.model, name)) for name in self.architecture
        ]
        fields += [
            (f"data.{name}", name, getattr(data, name))
            for name in ("source_split", "source_lowercase", "target_split", "target_lowercase")
        ]
        # A language model's names of its one side.
        return fields + [
            ("data.source_split", "split", data.source_split),
            ("data.source_lowercase", "lowercase", data.source_lowercase),
        ]

    def pretrained_problems(self, config: Config, pretrained, labels, path: str) -> list:
        """Mismatches beyond `pretrained_fields` (each one sentence)."""
        return []

    def pretrained_vocabularies(self, pretrained, labels) -> tuple:
        """`(source, target)` vocabularies of a pretrained model as `build_model` takes them."""
        return pretrained.source_vocabulary, pretrained.target_vocabulary

    def corresponding_layers(self, pretrained, model) -> list:
        """`(pretrained layer, our layer)` pairs whose weights carry over: the whole model."""
        return [(pretrained, model)]

    def tokenized_columns(self, pretrained) -> list:
        """`(side, the pretrained model's tokenizer, column of the pairs)` it reads."""
        return [("source", pretrained.source_tokenizer, 0)]

    # --- inference --------------------------------------------------------------------------

    def inference(self, model, decode: DecodeConfig):
        """The strings-in inference object (`inference.py`) of a trained model or `Ensemble`."""
        raise NotImplementedError

    def serving_module(self, model, config: Config, rescorer=None):
        """The `export.Serving` module whose signatures the SavedModel exports; `rescorer`: a
        model (or ensemble) that reranks the beam's candidates (seq2seq)."""
        raise NotImplementedError

    def warmup_requests(self, decode: DecodeConfig) -> dict:
        """One example request per signature (`export.warmup_requests`)."""
        raise NotImplementedError

    def evaluate(
        self, model, config: Config, pairs, beam_size: int | None = None, rescorer=None
    ) -> dict:
        """Scores of `pairs` through the inference path, as `s2s evaluate` prints them;
        `rescorer`: as `serving_module`."""
        raise NotImplementedError

    def no_reranking(self, rescorer) -> None:
        if rescorer is not None:
            raise ConfigError(
                f"--rescore: the {self.name} task has no n-best reranking (seq2seq has)"
            )

    def distill(self, model, config: Config, pairs, beam_size: int | None = None) -> tuple:
        """`(training pairs for a student, counts)`: `model`'s outputs for the sources of
        `pairs` (`s2s distill`, `distillation.py`)."""
        raise ConfigError(f"s2s distill: the {self.name} task has no distillation (seq2seq has)")

    def predictor(self, model, config: Config, rescorer=None):
        """`s2s predict`'s object over a Keras model (see `prediction.py`); `rescorer`: as
        `serving_module`."""
        raise NotImplementedError

    def saved_model_predictor(self, loaded):
        """`s2s predict`'s object over a loaded SavedModel's signatures."""
        raise NotImplementedError
