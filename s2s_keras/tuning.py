"""Keras Tuner over the package's own config, builders and training data path.

The search space is data: a JSON object mapping config keys (as in `--set`) to a
hyperparameter spec. `Seq2SeqHyperModel` turns each trial's values into a `Config` and builds,
compiles and fits it through `s2s_keras.training` — there is no second model definition and no
second fit loop: each trial is a run directory, `run_dir/trials/<trial id>/`.

    {"model.hidden_units": {"choice": [128, 256, 512]},
     "model.num_layers": {"int": [1, 3]},
     "model.dropout": {"float": [0.0, 0.4], "step": 0.1},
     "train.learning_rate": {"float": [1e-4, 1e-2], "sampling": "log"},
     "model.reverse_source": {"boolean": true},
     "model.attention": {"choice": ["none", "luong_general", "bahdanau"]}}

Every option of the model family (`model.cell`, `model.bidirectional`, `model.attention`, ...)
can be searched. A trial whose combination of values the config rejects (say `luong_dot` with
a `dense` bridge) fails with that config error and the tuner moves on to the next trial.

Objectives are the task's (`Task.objectives`): `val_loss`; `val_wer` (seq2seq) — word error
rate of greedy decoding on the validation split, computed by `ValidationErrorRates` at the end
of every epoch and logged like any metric (TensorBoard and the tuner both see it);
`val_accuracy` (classify).
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import time

import keras
import keras_tuner as kt
import tensorflow as tf

from s2s_keras import run_dir as run_files
from s2s_keras.config import Config, ConfigError
from s2s_keras.distribute import configure_devices, get_strategy
from s2s_keras.plotting import plot_trials
from s2s_keras.tasks import get_task
from s2s_keras.tasks.base import RECURRENT_SPACE
from s2s_keras.training import fit, load_data, prepare, summary

# The default search space of seq2seq (each task has its own: `Task.tuning_space`); edit a copy
# and pass it with `s2s tune --space FILE.json`.
DEFAULT_SPACE = RECURRENT_SPACE
TUNERS = ("random", "hyperband", "bayesian")


def load_space(path: str | None, task: str = "seq2seq") -> dict:
    """The JSON search space at `path`, or the task's default space."""
    if path is None:
        return dict(get_task(task).tuning_space)
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
    """`hp` → `Config` (base config + the space's values) → the `s2s train` path, for every
    task (`base.task`): each trial is built by `training.prepare` (so `train.init_from` holds)
    and trained by `training.fit` into its own run directory `run_dir/trials/<trial id>/`
    (exact resume from its backups, padding counts, the best checkpoint by the objective).

    Args:
        base: the config every trial starts from (preset + `--set`).
        space: the search space (see module docstring).
        objective: one of the task's `objectives` (`val_loss`, `val_wer`, `val_accuracy`).
        run_dir: where the trials' run directories go.
    """

    def __init__(self, base: Config, space: dict, objective: str = "val_loss", run_dir: str = "."):
        super().__init__(name=base.task)
        task = get_task(base.task)
        if objective not in task.objectives:
            raise ValueError(
                f"--objective {objective}: task {base.task} offers {tuple(task.objectives)}"
            )
        check_space(space, base)
        self.base, self.space, self.objective, self.run_dir = base, space, objective, run_dir
        self.loaded = load_data(base)  # the vocabulary pass, once for every trial
        if not self.loaded[0].valid:
            raise ValueError(
                "tuning needs a validation split (data.valid_fraction > 0 or tsv:...,valid=PATH)"
            )
        self.trial_id = None  # set by the tuner as each trial begins (`_TrialDirectories`)
        self._built = {}  # id(model) -> (its TrainingData, the strategy it was built under)

    def config(self, hp: kt.HyperParameters) -> Config:
        values = {key: _hyperparameter(hp, key, spec) for key, spec in self.space.items()}
        return self.base.override(f"{key}={_as_text(value)}" for key, value in values.items())

    def trial_dir(self) -> str:
        return os.path.join(self.run_dir, "trials", str(self.trial_id))

    def build(self, hp):
        config = self.config(hp)
        strategy = tf.distribute.get_strategy()  # the tuner's: it builds in its scope
        model, data = prepare(config, self.loaded, strategy)
        self._built[id(model)] = data, strategy
        return model

    def fit(
        self, hp, model, *args, callbacks=None, epochs=None, initial_epoch=0, verbose=2, **kwargs
    ):
        config = self.config(hp)
        trial_dir = self.trial_dir()
        data, strategy = self._built.pop(id(model))
        with run_files.claim(trial_dir):
            if not run_files.start(trial_dir, config):  # else it finished before the tuner knew
                run_files.write_config(trial_dir, config)
                start = time.time()
                run_state = fit(
                    config,
                    model,
                    data,
                    trial_dir,
                    strategy,
                    verbose,
                    callbacks=callbacks or (),
                    monitor=self.objective,
                    epochs=epochs,
                    initial_epoch=initial_epoch,
                )
                seconds, replicas = time.time() - start, strategy.num_replicas_in_sync
                trial_summary = summary(config, model, data, run_state, seconds, replicas)
                run_files.finish(trial_dir, model, trial_summary)
        history = keras.callbacks.History()
        history.history = run_files.read_summary(trial_dir)["history"]  # every epoch, resumed too
        return history


class _TrialDirectories:
    """Tells the hypermodel which trial runs (its run directory's name)."""

    def on_trial_begin(self, trial):
        super().on_trial_begin(trial)
        self.hypermodel.trial_id = trial.trial_id


_TUNER_CLASSES = {
    kind: type(base.__name__, (_TrialDirectories, base), {})
    for kind, base in (
        ("random", kt.RandomSearch),
        ("bayesian", kt.BayesianOptimization),
        ("hyperband", kt.Hyperband),
    )
}


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
    direction = get_task(hypermodel.base.task).objectives[hypermodel.objective]
    objective = kt.Objective(hypermodel.objective, direction=direction)
    common = dict(
        objective=objective,
        directory=run_dir,
        project_name="search",
        overwrite=False,
        seed=seed,
        distribution_strategy=get_strategy(strategy),
    )
    if kind != "hyperband":
        return _TUNER_CLASSES[kind](hypermodel, max_trials=max_trials, **common)
    # Hyperband budgets by epochs, not trials: max_epochs is the base config's epochs.
    return _TUNER_CLASSES[kind](
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
    strategy = base.train.strategy
    if strategy in ("multi_worker", "tpu"):
        raise ValueError(
            f"--strategy {strategy}: Keras Tuner runs each trial on one machine; use "
            f"auto, one_device or mirrored, and parallel tuner workers (see below)"
        )
    configure_devices(base.train.cpu_devices)  # before anything starts TensorFlow's runtime
    keras.utils.set_random_seed(base.train.seed)
    space = space if space is not None else load_space(None, base.task)
    hypermodel = Seq2SeqHyperModel(base, space, objective, run_dir)
    tuner = make_tuner(tuner_kind, hypermodel, run_dir, max_trials, strategy, seed=base.train.seed)
    # TensorBoard: all trials side by side in run_dir/logs (each trial's dir has its own too).
    tuner.search(callbacks=[keras.callbacks.TensorBoard(os.path.join(run_dir, run_files.LOGS_DIR))])
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
    for name in (run_files.CONFIG_FILE, run_files.MODEL_FILE):  # the trial's best epoch
        shutil.copyfile(
            os.path.join(run_dir, "trials", best_trial.trial_id, name), os.path.join(best_dir, name)
        )
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
