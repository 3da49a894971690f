import json
import os
import random

import pytest

from s2s_keras.config import PRESETS, preset
from s2s_keras.tuning import DEFAULT_SPACE, check_space, load_space, tune

pytestmark = pytest.mark.slow

SPACE = {
    "model.hidden_units": {"choice": [8, 16]},
    "train.learning_rate": {"float": [3e-3, 3e-2], "sampling": "log"},
    "model.reverse_source": {"boolean": True},
    "model.cell": {"choice": ["lstm", "gru"]},
    "model.bidirectional": {"boolean": True},
    "model.attention": {"choice": ["none", "bahdanau"]},
}


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    rng = random.Random(0)
    words = sorted(
        {"".join(rng.choice("abcd") for _ in range(rng.randint(1, 4))) for _ in range(400)}
    )
    path = tmp_path_factory.mktemp("data") / "pairs.tsv"
    path.write_text("".join(f"{w}\t{' '.join(reversed(w.upper()))}\n" for w in words))
    return preset("tiny").override(
        [
            f"data.source=tsv:{path}",
            "data.valid_fraction=0.2",
            "train.epochs=2",
            "model.embedding_size=8",
        ]
    )


@pytest.mark.parametrize(
    "tuner, objective, trials", [("bayesian", "val_loss", 2), ("hyperband", "val_wer", None)]
)
def test_each_tuner_and_objective_searches_and_saves_the_best(
    base, tmp_path, tuner, objective, trials
):
    """(The random tuner: `test_search_resumes_and_best_model_exports`.)"""
    result = tune(base, str(tmp_path), tuner, trials or 1, objective, SPACE)
    check_search(result, tmp_path, objective, trials)


def check_search(result, run_dir, objective, trials):
    """A finished search's rows, best trial and files."""
    rows = result["trials"]
    assert len(rows) >= (trials or 2)
    assert all(0.0 <= row[objective] for row in rows)
    if objective == "val_wer":
        assert all(row[objective] <= 1.0 for row in rows)
    assert result["best_score"] == min(row[objective] for row in rows)
    for name in ("trials.csv", "trials.png", "best/config.json", "best/model.keras"):
        assert os.path.isfile(run_dir / name), name
    best = json.loads((run_dir / "best" / "config.json").read_text())
    best_row = next(r for r in rows if r["trial"] == result["best_trial"])
    for key in ("hidden_units", "cell", "bidirectional", "attention"):
        assert best["model"][key] == best_row[f"model.{key}"]
    assert os.listdir(run_dir / "logs")  # TensorBoard logs per trial


def test_search_resumes_and_best_model_exports(base, tmp_path):
    first = tune(base, str(tmp_path), "random", 2, "val_wer", SPACE)
    check_search(first, tmp_path, "val_wer", 2)
    again = tune(base, str(tmp_path), "random", 2, "val_wer", SPACE)  # nothing left to do
    assert [r["trial"] for r in again["trials"]] == [r["trial"] for r in first["trials"]]
    more = tune(base, str(tmp_path), "random", 3, "val_wer", SPACE)  # one more trial
    assert len(more["trials"]) == 3

    from s2s_keras.export import export
    from s2s_keras.run_dir import load_run

    config, model = load_run(more["best_dir"])
    assert os.path.isfile(
        os.path.join(export(model, config, str(tmp_path / "sm" / "best")), "saved_model.pb")
    )


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_value_of_the_tasks_space_fits_every_preset(name):
    """`s2s tune --preset NAME` with its task's default space: every value a trial may draw is a
    valid override of the preset alone (a preset's own options, such as `small`'s attention
    without input feeding, must not rule out the space's `model.attention=none`)."""
    base = preset(name)
    for key, spec in load_space(None, base.task).items():
        values = spec.get("choice") or spec.get("int") or spec.get("float") or [False, True]
        for value in values:
            base.override([f"{key}={str(value).lower() if isinstance(value, bool) else value}"])


def test_space_is_validated_against_the_config(base, tmp_path):
    check_space(DEFAULT_SPACE, base)
    with pytest.raises(ValueError, match="'model.units'.*unknown key"):
        check_space({"model.units": {"choice": [8]}}, base)
    with pytest.raises(ValueError, match="exactly one of"):
        check_space({"model.hidden_units": {"choice": [8], "int": [1, 2]}}, base)
    bad = tmp_path / "space.json"
    bad.write_text('{"model.hidden_units": [8,\n')
    with pytest.raises(ValueError, match="space.json:2: not valid JSON"):
        load_space(str(bad))


def test_parallel_search_with_a_chief_and_two_workers(base, tmp_path):
    import socket
    import subprocess
    import sys

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sets = [
        arg
        for s in ("train.epochs=2", "model.embedding_size=8", "data.valid_fraction=0.2")
        for arg in ("--set", s)
    ]
    space = tmp_path / "space.json"
    space.write_text(json.dumps(SPACE))
    command = [
        sys.executable,
        "-m",
        "s2s_keras.cli",
        "tune",
        "--data",
        base.data.source,
        "--preset",
        "tiny",
        *sets,
        "--tuner",
        "random",
        "--max-trials",
        "2",
        "--objective",
        "val_loss",
        "--space",
        str(space),
        "--run-dir",
        str(tmp_path / "run"),
    ]
    processes = {}
    for tuner_id in ("chief", "tuner0", "tuner1"):
        env = dict(
            os.environ,
            KERASTUNER_TUNER_ID=tuner_id,
            KERASTUNER_ORACLE_IP="127.0.0.1",
            KERASTUNER_ORACLE_PORT=str(port),
            TF_CPP_MIN_LOG_LEVEL="2",
        )
        processes[tuner_id] = subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
    outputs = {name: process.communicate(timeout=600) for name, process in processes.items()}
    for name, process in processes.items():
        assert process.returncode == 0, (name, outputs[name][1][-3000:])
    rows = [json.loads(line) for line in outputs["chief"][0].splitlines() if line.startswith("{")]
    assert len(rows) == 2
    trial_dirs = [d for d in os.listdir(tmp_path / "run" / "search") if d.startswith("trial_")]
    assert len(trial_dirs) == 2
    assert "Epoch 1/" not in outputs["chief"][0]  # the chief only runs the oracle
    assert any("Epoch 1/" in outputs[w][0] for w in ("tuner0", "tuner1"))
    assert os.path.isfile(tmp_path / "run" / "best" / "model.keras")


def test_search_under_mirrored_strategy_on_two_logical_cpus(base, tmp_path):
    from conftest import REPO, run_cli

    space = tmp_path / "space.json"
    space.write_text(
        json.dumps(
            {
                "model.attention": {"choice": ["none", "bahdanau"]},
                "model.bidirectional": {"boolean": True},
            }
        )
    )
    result = run_cli(
        "tune",
        "--data",
        base.data.source,
        "--preset",
        "tiny",
        "--set",
        "train.epochs=1",
        "--set",
        "model.embedding_size=8",
        "--set",
        "data.valid_fraction=0.2",
        "--set",
        "train.cpu_devices=2",
        "--strategy",
        "mirrored",
        "--tuner",
        "random",
        "--max-trials",
        "2",
        "--objective",
        "val_wer",
        "--space",
        str(space),
        "--run-dir",
        str(tmp_path / "run"),
        cwd=REPO,
    )
    rows = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(rows) == 2 and all(0 <= row["val_wer"] <= 1 for row in rows)
    assert os.path.isfile(tmp_path / "run" / "best" / "model.keras")


@pytest.mark.parametrize("task, objective", [("classify", "val_accuracy"), ("lm", "val_loss")])
def test_the_same_hypermodel_tunes_a_classifier_and_a_language_model(tmp_path, task, objective):
    rng = random.Random(1)
    rows = []
    for _ in range(300):
        label = rng.choice(["pos", "neg"])
        words = [rng.choice("abcd") for _ in range(rng.randint(2, 5))] + [
            {"pos": "good", "neg": "bad"}[label]
        ]
        rows.append((" ".join(words), label))
    path = tmp_path / "rows.tsv"
    path.write_text("".join(f"{text}\t{label}\n" for text, label in rows))
    base = preset("tiny").override(
        [
            f"task={task}",
            f"data.source=tsv:{path}",
            "data.valid_fraction=0.2",
            "data.source_split=whitespace",
            "train.epochs=2",
            "model.embedding_size=8",
            "model.reverse_source=false",
            "train.batch_size=16",
        ]
        + (["data.bptt_length=4"] if task == "lm" else [])
    )
    check_space(load_space(None, task), base)  # the task's default space fits its config
    space = {
        "model.hidden_units": {"choice": [8, 16]},
        **(
            {"model.pooling": {"choice": ["mean", "attention"]}}
            if task == "classify"
            else {"model.tie_embeddings": {"boolean": True}, "model.hidden_units": {"choice": [8]}}
        ),
    }
    result = tune(base, str(tmp_path / "search"), "random", 2, objective, space)
    assert len(result["trials"]) == 2 and os.path.isfile(
        tmp_path / "search" / "best" / "model.keras"
    )
    best = json.loads((tmp_path / "search" / "best" / "config.json").read_text())
    assert best["task"] == task
    if task == "classify":
        assert result["best_score"] == max(row[objective] for row in result["trials"])
    with pytest.raises(ValueError, match="task lm offers"):
        tune(
            base.override(["task=lm", "data.bptt_length=0"]),
            str(tmp_path / "x"),
            "random",
            1,
            "val_wer",
            space,
        )


class Killed(BaseException):
    """A kill in the middle of a trial (not an `Exception`: Keras Tuner lets it through)."""


def trial_dir(search_dir) -> str:
    (name,) = os.listdir(os.path.join(search_dir, "trials"))
    return os.path.join(search_dir, "trials", name)


def trial_history(search_dir) -> dict:
    with open(os.path.join(trial_dir(search_dir), "summary.json")) as handle:
        return json.load(handle)


def test_a_killed_trial_resumes_from_its_backup_to_the_uninterrupted_result(
    base, tmp_path, monkeypatch
):
    from s2s_keras.run_state import RunState

    base = base.override(["train.backup_every_steps=2"])
    space = {"model.hidden_units": {"choice": [8, 16]}}
    tune(base, str(tmp_path / "whole"), "random", 1, "val_loss", space)
    whole = trial_history(tmp_path / "whole")
    padding = whole["history"]["padding_fraction"]  # each epoch's, counted inside the trial
    assert len(padding) == 2 and all(0.0 < value < 0.5 for value in padding)
    assert whole["train_padding_fraction"] == pytest.approx(sum(padding) / 2)

    step = RunState.on_train_batch_end

    def killed_in_the_second_epoch(self, batch, logs=None):
        step(self, batch, logs)
        if self.state["epoch"] == 1 and self.state["step"] == 3:  # its last backup: step 2
            raise Killed()

    monkeypatch.setattr(RunState, "on_train_batch_end", killed_in_the_second_epoch)
    with pytest.raises(Killed):
        tune(base, str(tmp_path / "killed"), "random", 1, "val_loss", space)
    assert os.path.isfile(os.path.join(trial_dir(tmp_path / "killed"), "backup", "state.npz"))
    monkeypatch.setattr(RunState, "on_train_batch_end", step)
    result = tune(base, str(tmp_path / "killed"), "random", 1, "val_loss", space)
    resumed = trial_history(tmp_path / "killed")
    assert len(result["trials"]) == 1 and resumed["epochs_run"] == 2
    # (The training loss Keras logs for the resumed epoch averages only its steps after the kill.)
    for key in ("val_loss", "padding_fraction"):
        assert resumed["history"][key] == pytest.approx(whole["history"][key], rel=1e-5), key
    import keras
    import numpy as np

    weights = [
        keras.saving.load_model(
            os.path.join(trial_dir(tmp_path / run), "model.keras")
        ).get_weights()
        for run in ("whole", "killed")
    ]
    for ours, theirs in zip(*weights, strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)


def test_trials_start_from_train_init_from(base, tmp_path):
    import keras
    import numpy as np

    from s2s_keras.training import train

    pretrained = train(base, str(tmp_path / "pretrained"), verbose=0)
    # A rate so small that a trial's weights stay the pretrained ones (a fresh model's would not).
    started = base.override(
        [f"train.init_from={tmp_path / 'pretrained'}", "train.learning_rate=1e-12"]
    )
    space = {"model.dropout": {"choice": [0.0, 0.1]}}  # dropout may differ from the pretrained run
    tune(started, str(tmp_path / "search"), "random", 1, "val_loss", space)
    trial = keras.saving.load_model(os.path.join(trial_dir(tmp_path / "search"), "model.keras"))
    assert trial.source_tokenizer.vocabulary == pretrained.source_tokenizer.vocabulary
    for ours, theirs in zip(trial.get_weights(), pretrained.get_weights(), strict=True):
        np.testing.assert_allclose(ours, theirs, atol=1e-6)
