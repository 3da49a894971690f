"""The one source of truth for every default: typed, nested, frozen dataclasses.

A run is fully described by a `Config`; `config.json` in every run directory and in every export
holds `config.to_dict()`, and `Config.from_dict` rebuilds it (the round trip is identity). Each
field is validated once, here: its own rule in its section's `_RULES`, rules between fields in
the section's `__post_init__`, and rules of one task in that task (`Task.check`). The
named configs (`preset(name)`) are in `presets.py`.

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

from s2s_keras.validation import (
    ConfigError,
    apply_rules,
    between,
    check,
    fraction,
    integer,
    number,
    one_of,
    parse_field,
)

SPLIT_MODES = ("characters", "whitespace", "wordpiece")
STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker", "tpu")
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")  # what a model computes in
LR_SCHEDULES = ("constant", "cosine", "halving")
OPTIMIZERS = ("adam", "sgd")
CELLS = ("lstm", "gru", "rnn")
ATTENTIONS = ("none", "luong_dot", "luong_general", "bahdanau")
BRIDGES = ("copy", "dense", "zero")
POOLINGS = ("last", "mean", "attention")
ON_BAD_LINE = ("error", "skip")
STREAMABLE = ("tsv", "parallel", "jsonl")  # data.source kinds that data.streaming can read


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
    # > 0: batches of ~this many padded tokens per length bucket, not train.batch_size
    batch_tokens: int = 0
    shuffle_buffer: int = 200_000
    # re-read the training files every pass instead of holding them (see above)
    streaming: bool = False
    seed: int = 1234
    # classify: sources longer than this many tokens keep their LAST ones (a review's verdict
    # tends to come last; Keras's pad_sequences default); 0: no cut. Cuts are counted in
    # summary.json.
    max_source_tokens: int = 0
    # lm: 0 trains on sentences (each one padded, starting from a zero state); > 0 on contiguous
    # text cut into this many steps, the state carried from batch to batch (truncated BPTT,
    # Zaremba et al. 2014).
    bptt_length: int = 0

    _RULES: typing.ClassVar[dict] = {
        "source_split": one_of(SPLIT_MODES),
        "target_split": one_of(SPLIT_MODES),
        "vocabulary_size": integer(8),
        "on_bad_line": one_of(ON_BAD_LINE),
        "valid_fraction": fraction(0.5, "fraction"),
        "test_fraction": fraction(0.5, "fraction"),
        "max_line_length": integer(1),
        "max_pairs": integer(0),
        "bucket_width": integer(1),
        "batch_tokens": integer(0, " (0: off)"),
        "shuffle_buffer": integer(1),
        "max_source_tokens": integer(0, " (0: off)"),
        "bptt_length": integer(0, " (0: sentences)"),
    }

    def __post_init__(self):
        apply_rules("data", self, self._RULES)
        check(
            self.max_bucket_length > self.bucket_width,
            "data.max_bucket_length",
            self.max_bucket_length,
            "an integer > data.bucket_width",
        )
        kind = self.source.partition(":")[0]
        check(
            not self.streaming or kind in STREAMABLE,
            "data.streaming",
            self.streaming,
            f"false for data.source {self.source!r} (only {', '.join(STREAMABLE)} files stream)",
        )


def encoder_size(hidden_units: int, bidirectional: bool, bridge: str, encoder_units: int) -> int:
    """Units of each encoder layer, per direction: `encoder_units`, or 0 for `hidden_units` (its
    half per direction of a bidirectional encoder whose state the decoder copies)."""
    if encoder_units:
        return encoder_units
    return hidden_units // 2 if bidirectional and bridge == "copy" else hidden_units


@dataclass(frozen=True)
class ModelConfig:
    """Shape of the encoder-decoder (see `s2s_keras.models.Seq2Seq` for the equations).

    `bridge` maps the encoder's final state to the decoder's start state: `copy` (a
    bidirectional encoder then runs `hidden_units / 2` units per direction, so the concatenated
    state fits), `dense` (each direction runs `hidden_units`; a linear layer maps the concatenated
    state), `zero` (the decoder starts from zeros; sensible with attention only).
    `encoder_units` sizes the encoder apart from the decoder (per direction; 0: as above): with
    attention over a bidirectional encoder most of a step's arithmetic is the encoder's, and a
    narrower one costs less per epoch.
    `init_scale > 0` initializes every weight uniformly in `[-init_scale, init_scale]`
    (Sutskever et al.: 0.08); 0 keeps the Keras defaults.
    """

    cell: str = "lstm"  # lstm | gru | rnn (the tanh RNN)
    learn_initial_state: bool = False  # a learned h0 (and c0) for the encoder instead of zeros
    embedding_size: int = 128
    hidden_units: int = 256
    num_layers: int = 2  # decoder depth, and the encoder's unless encoder_num_layers is set
    encoder_num_layers: int = 0  # 0: num_layers
    encoder_units: int = 0  # per direction; 0: hidden_units (its half with bridge=copy)
    dropout: float = 0.1  # between stacked layers (and on the attentional vector)
    recurrent_dropout: float = 0.0
    bidirectional: bool = False
    bridge: str = "copy"
    attention: str = "none"  # none | luong_dot | luong_general | bahdanau
    # With attention: feed the previous attentional vector into each decoder step (Luong et al.),
    # or (false) attend over the decoder's outputs: a cheaper loop, the same decoding interface.
    input_feeding: bool = True
    reverse_source: bool = True  # Sutskever et al.'s trick; pays off without attention
    # seq2seq: emit targets right to left (text stays in reading order): a model to rerank a
    # left-to-right model's n-best with (`s2s evaluate --rescore`)
    reverse_target: bool = False
    # decoder embedding = output projection (needs embedding_size == hidden_units)
    tie_embeddings: bool = False
    init_scale: float = 0.0
    # classify: how the encoder's outputs become one vector — the last state (forward and
    # backward concatenated), the masked mean over time, or attention pooling (a learned query).
    pooling: str = "mean"

    _RULES: typing.ClassVar[dict] = {
        "embedding_size": integer(1),
        "hidden_units": integer(1),
        "num_layers": integer(1),
        "encoder_num_layers": integer(0, " (0: model.num_layers)"),
        "encoder_units": integer(0, " (0: from model.hidden_units)"),
        "dropout": fraction(1.0, "rate"),
        "recurrent_dropout": fraction(1.0, "rate"),
        "cell": one_of(CELLS),
        "attention": one_of(ATTENTIONS),
        "bridge": one_of(BRIDGES),
        "pooling": one_of(POOLINGS),
        "init_scale": number(0),
    }

    def __post_init__(self):
        apply_rules("model", self, self._RULES)
        if self.encoder_num_layers not in (0, self.num_layers):
            check(
                self.bridge != "copy",
                "model.bridge",
                self.bridge,
                f"dense or zero when model.encoder_num_layers ({self.encoder_num_layers}) != "
                f"model.num_layers ({self.num_layers})",
            )
        directions = 2 if self.bidirectional else 1
        if self.encoder_units and self.bridge == "copy":
            check(
                self.encoder_units * directions == self.hidden_units,
                "model.encoder_units",
                self.encoder_units,
                f"{self.hidden_units // directions} (model.hidden_units over the directions) or 0 "
                "with model.bridge=copy, or model.bridge=dense",
            )
        if self.bidirectional and self.bridge == "copy":
            check(
                self.hidden_units % 2 == 0,
                "model.hidden_units",
                self.hidden_units,
                "an even number (model.bidirectional with model.bridge=copy splits it between "
                "the two directions)",
            )
        if self.bridge == "zero":
            check(
                self.attention != "none",
                "model.bridge",
                self.bridge,
                "copy or dense when model.attention=none (a zero start state would ignore the "
                "source)",
            )
        memory_size = self.encoder_size * directions
        if self.attention == "luong_dot":
            check(
                memory_size == self.hidden_units,
                "model.attention",
                self.attention,
                f"luong_general or bahdanau when the encoder outputs {memory_size} features "
                f"and the decoder {self.hidden_units} (dot needs equal sizes; use "
                "model.bridge=copy with model.bidirectional)",
            )
        if self.tie_embeddings:
            check(
                self.embedding_size == self.hidden_units,
                "model.tie_embeddings",
                self.tie_embeddings,
                f"model.embedding_size ({self.embedding_size}) == "
                f"model.hidden_units ({self.hidden_units}) to tie the decoder embedding to the "
                "output projection",
            )

    @property
    def encoder_size(self) -> int:
        """Units of each encoder layer, per direction."""
        return encoder_size(self.hidden_units, self.bidirectional, self.bridge, self.encoder_units)


@dataclass(frozen=True)
class TrainConfig:
    """How `model.fit` runs. `batch_size` is the GLOBAL batch size (split across replicas)."""

    epochs: int = 10
    batch_size: int = 256
    learning_rate: float = 3e-3
    optimizer: str = "adam"  # adam | sgd (plain SGD, as Sutskever et al.)
    # cosine: decays to 5% of learning_rate over all epochs; halving: constant, then halved
    # every `halving_every_epochs` from epoch `halving_start_epoch` on (Sutskever et al.: 5, 0.5).
    lr_schedule: str = "cosine"
    # cosine: first rise linearly to learning_rate over this many epochs, then decay over the rest
    warmup_epochs: float = 0.0
    halving_start_epoch: float = 5.0
    halving_every_epochs: float = 0.5
    label_smoothing: float = 0.0
    clip_norm: float = 5.0
    early_stopping_patience: int = 3
    best_metric: str = ""  # the epoch kept and early stopping's measure (seq2seq: val_wer too)
    # > 0: keep the mean of the last N epochs' weights if it scores at least as well on it.
    average_last: int = 0
    # > 0: train only as much of `epochs` as fits in this many minutes of model.fit on this
    # machine (its pace measured after each epoch; the last epoch may be cut short); cosine's
    # decay spans it (time_budget.py).
    max_minutes: float = 0.0
    backup_every_steps: int = 250  # a killed run loses at most this many steps (0: epoch ends only)
    strategy: str = "auto"
    cpu_devices: int = 0  # > 1: split the CPU into that many logical devices (mirrored on CPU)
    # auto: mixed_bfloat16 where matmuls have native bf16 (a CPU with AVX-512-BF16, ~1.9x fp32,
    # or AMX, ~4-5x; a GPU of compute capability >= 8.0), else float32: elsewhere bf16 is
    # emulated and slower than fp32. The model built records the one chosen. Weights, softmax
    # and loss stay float32. mixed_float16 (GPUs) adds dynamic loss scaling.
    precision: str = "auto"
    seed: int = 1234
    # Fine-tuning: a finished run dir or a `.keras` model of the same task whose vocabularies
    # (labels) and weights start this run; model.* (the architecture) and the data's
    # tokenization must match it. task=classify may also start from a language model (its
    # vocabulary, embedding and layers; Dai & Le 2015). "" trains from scratch.
    init_from: str = ""

    _RULES: typing.ClassVar[dict] = {
        "epochs": integer(1),
        "batch_size": integer(1),
        "learning_rate": number(0, strict=True),
        "clip_norm": number(0, strict=True),
        "early_stopping_patience": integer(0),
        "average_last": integer(0, " (0: off)"),
        "max_minutes": number(0),
        "backup_every_steps": integer(0),
        "strategy": one_of(STRATEGIES),
        "cpu_devices": integer(0),
        "precision": one_of(("auto", *PRECISIONS)),
        "lr_schedule": one_of(LR_SCHEDULES),
        "optimizer": one_of(OPTIMIZERS),
        "halving_start_epoch": number(0),
        "halving_every_epochs": number(0, strict=True),
        "warmup_epochs": number(0),
        "label_smoothing": fraction(1.0, "rate"),
    }

    def __post_init__(self):
        apply_rules("train", self, self._RULES)
        if self.warmup_epochs:
            check(
                self.lr_schedule == "cosine",
                "train.warmup_epochs",
                self.warmup_epochs,
                f"0 with train.lr_schedule={self.lr_schedule} (warm-up is cosine's)",
            )
            check(
                self.warmup_epochs < self.epochs,
                "train.warmup_epochs",
                self.warmup_epochs,
                f"fewer than train.epochs ({self.epochs})",
            )
        if self.max_minutes:
            # `auto` never picks MultiWorkerMirroredStrategy (distribute.get_strategy)
            check(
                self.strategy != "multi_worker",
                "train.max_minutes",
                self.max_minutes,
                "0 with train.strategy=multi_worker (each worker would measure its own pace "
                "and they could stop at different epochs; set train.epochs)",
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
    # `s2s evaluate --rescore`: the reranking model's share of a candidate's score
    rescore_weight: float = 0.5
    batch_size: int = 256  # words per decoding batch in `s2s evaluate` (and val_wer)

    _RULES: typing.ClassVar[dict] = {
        "max_length": integer(1),
        "max_input_length": integer(1),
        "length_penalty": number(0),
        "rescore_weight": between(0.0, 1.0),
        "batch_size": integer(1),
    }

    def __post_init__(self):
        apply_rules("decode", self, self._RULES)
        check(
            self.max_length_limit >= self.max_length,
            "decode.max_length_limit",
            self.max_length_limit,
            "an integer >= decode.max_length",
        )
        check(
            1 <= self.beam_size <= self.max_beam_size,
            "decode.beam_size",
            self.beam_size,
            "an integer in [1, decode.max_beam_size]",
        )


@dataclass(frozen=True)
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    preset: str = "lstm"
    # The `Task` that runs it (`s2s_keras.tasks`): seq2seq (source → target sequence), classify
    # (source → one label, the target column), lm (a language model over the source text).
    task: str = "seq2seq"

    def __post_init__(self):
        from s2s_keras.tasks import get_task  # the registry fills as the tasks import

        get_task(self.task).check(self)

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
            changes.setdefault(section_name, {})[field_name] = parse_field(
                raw.strip(), fields[field_name], key
            )
        sections = {
            name: dataclasses.replace(getattr(self, name), **values)
            for name, values in changes.items()
        }
        return dataclasses.replace(self, **sections, **top)


_SECTIONS = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig, "decode": DecodeConfig}


# The named configs; `s2s_keras.presets` holds them (imported here: `config.preset(...)`).
from s2s_keras.presets import DEFAULT_PRESET, PRESETS, preset  # noqa: E402,F401
