"""Keras Tuner over the package's own config, builders and training data path.

The search space is data: a JSON object mapping config keys (as in `--set`) to a
hyperparameter spec. `Seq2SeqHyperModel` turns each trial's values into a `Config` and builds,
compiles and fits through `s2s_keras.training` — there is no second model definition.

    {"model.hidden_units": {"choice": [128, 256, 512]},
     "model.num_layers": {"int": [1, 3]},
     "model.dropout": {"float": [0.0, 0.4], "step": 0.1},
     "train.learning_rate": {"float": [1e-4, 1e-2], "sampling": "log"},
     "model.reverse_source": {"boolean": true},
     "model.attention": {"choice": ["none", "luong_general", "bahdanau"]}}

Every option of the model family (`model.cell`, `model.bidirectional`, `model.attention`, ...)
can be searched. A trial whose combination of values the config rejects (say `luong_dot` with
a `dense` bridge) fails with that config error and the tuner moves on to the next trial.

Objectives: `val_loss`, or `val_wer` — word error rate of greedy decoding on the validation
split, computed by `ValidationErrorRates` at the end of every epoch and logged like any metric
(TensorBoard and the tuner both see it).
"""

from __future__ import annotations

import csv
import json
import os

import keras
import keras_tuner as kt

from s2s_keras.config import Config, ConfigError
from s2s_keras.distribute import configure_devices, get_strategy
from s2s_keras.evaluation import ValidationErrorRates
from s2s_keras.plotting import plot_trials
from s2s_keras.training import build_model, compile_model, datasets, load_data, task_callbacks

# The default search space (edit a copy and pass it with `s2s tune --space FILE.json`).
DEFAULT_SPACE = {
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
# Fields a task does not have (config validation refuses them) leave its default space.
TASK_SPACES = {
    "seq2seq": DEFAULT_SPACE,
    "classify": {
        **{
            k: v
            for k, v in DEFAULT_SPACE.items()
            if k not in ("model.attention", "model.reverse_source")
        },
        "model.pooling": {"choice": ["last", "mean", "attention"]},
    },
    "lm": {
        k: v
        for k, v in DEFAULT_SPACE.items()
        if k not in ("model.attention", "model.bidirectional", "model.reverse_source")
    },
}
OBJECTIVES = {"val_loss": "min", "val_wer": "min", "val_accuracy": "max"}
TASK_OBJECTIVES = {
    "seq2seq": ("val_loss", "val_wer"),
    "classify": ("val_loss", "val_accuracy"),
    "lm": ("val_loss",),
}
TUNERS = ("random", "hyperband", "bayesian")


def load_space(path: str | None, task: str = "seq2seq") -> dict:
    """The JSON search space at `path`, or the task's default space."""
    if path is None:
        return dict(TASK_SPACES[task])
    with open(path) as handle:
        try:
            return json.load(handle)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}:{error.lineno}: not valid JSON ({error.msg})") from None


def check_space(space: dict, base: Config) -> None:
    """Every key must be a config field and every spec well formed; fails naming the key."""
    for key, spec in space.items():
        kinds = set(spec) & {"choice", "int", "float", "boolean"}
        if len(kinds) != 1:
            raise ValueError(
                f"search space {key!r}: expected exactly one of choice/int/float/boolean, "
                f"got {sorted(spec)}"
            )
        kind = kinds.pop()
        sample = {
            "choice": lambda: spec["choice"][0],
            "int": lambda: spec["int"][0],
            "float": lambda: spec["float"][0],
            "boolean": lambda: False,
        }[kind]()
        try:
            base.override([f"{key}={_as_text(sample)}"])
        except ConfigError as error:
            raise ValueError(f"search space {key!r}: {error}") from None


def _as_text(value) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _hyperparameter(hp: kt.HyperParameters, key: str, spec: dict):
    if "choice" in spec:
        return hp.Choice(key, spec["choice"])
    if "int" in spec:
        low, high = spec["int"]
        return hp.Int(key, low, high, step=spec.get("step", 1))
    if "float" in spec:
        low, high = spec["float"]
        return hp.Float(
            key, low, high, step=spec.get("step"), sampling=spec.get("sampling", "linear")
        )
    return hp.Boolean(key)


class Seq2SeqHyperModel(kt.HyperModel):
    """`hp` → `Config` (base config + the space's values) → the `s2s train` builders, for every
    task (`base.task`: seq2seq, classify, lm).

    Args:
        base: the config every trial starts from (preset + `--set`).
        space: the search space (see module docstring).
        objective: `"val_loss"`, `"val_wer"` (seq2seq) or `"val_accuracy"` (classify).
    """

    def __init__(self, base: Config, space: dict, objective: str = "val_loss"):
        super().__init__(name=base.task)
        if objective not in TASK_OBJECTIVES[base.task]:
            raise ValueError(
                f"--objective {objective}: task {base.task} offers {TASK_OBJECTIVES[base.task]}"
            )
        check_space(space, base)
        self.base, self.space, self.objective = base, space, objective
        self.corpus, self.source_vocabulary, self.target_vocabulary, self.lengths = load_data(base)
        if not self.corpus.valid:
            raise ValueError(
                "tuning needs a validation split (data.valid_fraction > 0 or tsv:...,valid=PATH)"
            )
        # (batch size, data config) -> datasets, shared by trials. The datasets hold the first
        # trial's tokenizers; every trial's tokenizers are built from the same vocabularies.
        self._data = {}

    def config(self, hp: kt.HyperParameters) -> Config:
        values = {key: _hyperparameter(hp, key, spec) for key, spec in self.space.items()}
        return self.base.override(f"{key}={_as_text(value)}" for key, value in values.items())

    def build(self, hp):
        config = self.config(hp)
        model = build_model(config, self.source_vocabulary, self.target_vocabulary)
        _, _, stats = self._datasets(config, model)
        compile_model(model, config, steps_per_epoch=stats["batches"])
        return model

    def fit(self, hp, model, *args, callbacks=None, **kwargs):
        config = self.config(hp)
        train, valid, _ = self._datasets(config, model)
        callbacks = task_callbacks(config, model) + list(callbacks or [])
        if self.objective == "val_wer":
            # First, so that callbacks after it (checkpointing, the tuner's) see val_wer.
            callbacks.insert(0, ValidationErrorRates(self.corpus.valid, config.decode))
        kwargs.setdefault("epochs", config.train.epochs)
        kwargs.setdefault("verbose", 2)
        return model.fit(train, validation_data=valid, callbacks=callbacks, shuffle=False, **kwargs)

    def _datasets(self, config, model):
        key = (config.train.batch_size, config.data)
        if key not in self._data:
            self._data[key] = datasets(config, self.corpus, model, self.lengths)
        return self._data[key]


def make_tuner(
    kind: str,
    hypermodel: Seq2SeqHyperModel,
    run_dir: str,
    max_trials: int,
    strategy: str = "one_device",
    seed: int = 0,
) -> kt.Tuner:
    if kind not in TUNERS:
        raise ValueError(f"--tuner: expected one of {TUNERS}, got {kind!r}")
    objective = kt.Objective(hypermodel.objective, direction=OBJECTIVES[hypermodel.objective])
    common = dict(
        objective=objective,
        directory=run_dir,
        project_name="search",
        overwrite=False,
        seed=seed,
        distribution_strategy=get_strategy(strategy),
    )
    if kind == "random":
        return kt.RandomSearch(hypermodel, max_trials=max_trials, **common)
    if kind == "bayesian":
        return kt.BayesianOptimization(hypermodel, max_trials=max_trials, **common)
    # Hyperband budgets by epochs, not trials: max_epochs is the base config's epochs.
    return kt.Hyperband(
        hypermodel,
        max_epochs=max(2, hypermodel.base.train.epochs),
        factor=3,
        hyperband_iterations=1,
        **common,
    )


def tune(
    base: Config,
    run_dir: str,
    tuner_kind: str = "random",
    max_trials: int = 10,
    objective: str = "val_loss",
    space: dict | None = None,
) -> dict:
    """Runs (or resumes) a search in `run_dir/search`, then writes `run_dir/trials.csv`,
    `run_dir/trials.png` and the best trial as a run directory `run_dir/best` (`config.json`
    + `model.keras`) that `s2s evaluate` and `s2s export` take.

    Parallel search: start one process with `KERASTUNER_TUNER_ID=chief` and workers with
    `KERASTUNER_TUNER_ID=tuner0`, `tuner1`, ... all with the same `KERASTUNER_ORACLE_IP` /
    `KERASTUNER_ORACLE_PORT` and `run_dir` (shared storage); the chief writes the results."""
    if objective not in OBJECTIVES:
        raise ValueError(f"--objective: expected one of {sorted(OBJECTIVES)}, got {objective!r}")
    strategy = base.train.strategy
    if strategy in ("multi_worker", "tpu"):
        raise ValueError(
            f"--strategy {strategy}: Keras Tuner runs each trial on one machine; use "
            f"auto, one_device or mirrored, and parallel tuner workers (see below)"
        )
    configure_devices(base.train.cpu_devices)  # before anything starts TensorFlow's runtime
    keras.utils.set_random_seed(base.train.seed)
    hypermodel = Seq2SeqHyperModel(
        base, space if space is not None else load_space(None, base.task), objective
    )
    tuner = make_tuner(tuner_kind, hypermodel, run_dir, max_trials, strategy, seed=base.train.seed)
    tuner.search(callbacks=[keras.callbacks.TensorBoard(os.path.join(run_dir, "logs"))])
    if _is_worker():
        return {"worker": os.environ["KERASTUNER_TUNER_ID"]}  # the chief writes the results

    trials = sorted(
        (t for t in tuner.oracle.trials.values() if t.score is not None),
        key=lambda t: (len(t.trial_id), t.trial_id),
    )  # numeric order of "9" < "10"
    if not trials:
        raise ValueError(f"no trial finished in {run_dir}; see the trial logs above")
    rows = _write_trials(trials, hypermodel, run_dir)
    best_trial = tuner.oracle.get_best_trials(1)[0]
    best_dir = os.path.join(run_dir, "best")
    os.makedirs(best_dir, exist_ok=True)
    best_config = hypermodel.config(best_trial.hyperparameters)
    with open(os.path.join(best_dir, "config.json"), "w") as handle:
        handle.write(best_config.to_json())
    best_model = tuner.load_model(best_trial)
    if hasattr(best_model, "carry_state"):
        best_model.carry_state(None)
    best_model.save(os.path.join(best_dir, "model.keras"))
    return {
        "best_trial": best_trial.trial_id,
        "best_score": best_trial.score,
        "trials": rows,
        "best_dir": best_dir,
    }


def _is_worker() -> bool:
    """Keras Tuner's parallel mode (KERASTUNER_TUNER_ID / _ORACLE_IP / _ORACLE_PORT): the chief
    runs the oracle, the workers run trials."""
    return (
        "KERASTUNER_ORACLE_IP" in os.environ
        and os.environ.get("KERASTUNER_TUNER_ID", "chief") != "chief"
    )


def _write_trials(trials, hypermodel, run_dir) -> list:
    keys = list(hypermodel.space)
    rows = [
        {
            "trial": t.trial_id,
            hypermodel.objective: t.score,
            **{k: t.hyperparameters.values.get(k) for k in keys},
        }
        for t in trials
    ]
    with open(os.path.join(run_dir, "trials.csv"), "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["trial", hypermodel.objective, *keys])
        writer.writeheader()
        writer.writerows(rows)

    plot_trials(
        [row[hypermodel.objective] for row in rows],
        hypermodel.objective,
        os.path.join(run_dir, "trials.png"),
    )
    return rows
