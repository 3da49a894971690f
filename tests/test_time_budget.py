import json

import numpy as np
import pytest
import tensorflow as tf
from conftest import write_reversal_pairs

from s2s_keras.config import ConfigError, preset
from s2s_keras.optimizers import CosineDecay
from s2s_keras.run_state import RunState
from s2s_keras.time_budget import EPOCH_END_SECONDS, EPOCH_SECONDS, TimeBudget, plan


@pytest.mark.parametrize(
    "seconds, end_seconds, budget, most, planned",
    [
        ([], [], 60, 30, (30, 10)),  # nothing measured yet: the most
        ([10], [], 60, 30, (6, 10)),  # the first epoch's pace until there is a second
        # then the slowest later epoch's (the first also traces): 38 s left, 4 epochs at 8 s, and
        # the 6 s left make 7 of the next one's 10 steps (its end shrinks with them: unmeasured)
        ([14, 8], [], 60, 30, (7, 7)),
        # measured, the 2 s end is paid whole: 4 s for steps of 0.6 s, 6 of them
        ([14, 8], [4, 2], 60, 30, (7, 6)),
        ([14, 8], [4, 7], 60, 30, (6, 10)),  # the end alone would not fit: no cut epoch
        ([14, 8], [2], 60, 30, (7, 7)),  # ends not measured for every epoch (an older run)
        # at the slowest pace after the first: 28 s left, 2 epochs at 10 s, 8 steps of 1 s
        ([14, 8, 10], [], 60, 30, (6, 8)),
        ([10], [], 600, 8, (8, 10)),  # at most train.epochs, whole
        ([50, 40], [], 60, 30, (2, 10)),  # over the budget: the epochs done
    ],
)
def test_the_plan_is_whole_epochs_then_the_steps_of_one_more(
    seconds, end_seconds, budget, most, planned
):
    assert plan(seconds, end_seconds, budget, most, steps_per_epoch=10) == planned


def test_cosine_decay_length_changes_inside_a_traced_step_and_in_its_config():
    schedule = CosineDecay(2e-3, decay_steps=100, alpha=0.05)
    rate = tf.function(schedule)
    step = tf.constant(50.0)
    keras_rate = lambda steps: float(  # noqa: E731
        tf.keras.optimizers.schedules.CosineDecay(2e-3, steps, alpha=0.05)(50.0)
    )
    assert float(rate(step)) == pytest.approx(keras_rate(100))
    schedule.set_decay_steps(60)
    assert float(rate(step)) == pytest.approx(keras_rate(60))
    assert rate.experimental_get_tracing_count() == 1
    again = CosineDecay.from_config(schedule.get_config())
    assert again.get_config()["decay_steps"] == 60
    assert float(again(50.0)) == pytest.approx(keras_rate(60))


class Model:
    stop_training = False


def budget_of(tmp_path, history_seconds, minutes, warmup_steps=0, end_seconds=()):
    run_state = RunState(str(tmp_path), "loss", 3, 0)
    run_state.state["history"] = {EPOCH_SECONDS: history_seconds} if history_seconds else {}
    if end_seconds:
        run_state.state["history"][EPOCH_END_SECONDS] = list(end_seconds)
    schedule = CosineDecay(1e-3, decay_steps=100 - warmup_steps, warmup_steps=warmup_steps)
    callback = TimeBudget(minutes, 10, 10, schedule, run_state, verbose=0)
    callback.set_model(Model())
    return callback, schedule, run_state


def test_a_resumed_run_plans_from_the_epochs_done(tmp_path):
    callback, schedule, _ = budget_of(tmp_path, [20.0, 10.0], minutes=1.0, warmup_steps=5)
    callback.on_train_begin()
    # 30 s of 60 done at 10 s an epoch: 3 more, 5 in all; the decay after the 5 warm-up steps
    assert callback.planned == (5, 10)
    assert schedule.get_config()["decay_steps"] == 5 * 10 - 5


def test_the_epoch_that_reaches_the_plan_stops_training(tmp_path):
    callback, schedule, run_state = budget_of(tmp_path, [], minutes=1e-9)
    callback.on_train_begin()
    assert callback.planned == (10, 10) and schedule.get_config()["decay_steps"] == 100
    logs = {}
    callback.on_epoch_begin(0)
    callback.on_epoch_end(0, logs)
    assert logs[EPOCH_SECONDS] >= logs[EPOCH_END_SECONDS] >= 0 and callback.planned == (1, 10)
    assert callback.model.stop_training and run_state.state["stopped"]
    assert schedule.get_config()["decay_steps"] == 10


def test_a_cut_last_epoch_stops_training_at_its_planned_step(tmp_path):
    # 30 s done, 6 s left at 10 s an epoch whose last 2 s follow its updates: 5 steps of 0.8 s
    callback, schedule, run_state = budget_of(
        tmp_path, [20.0, 10.0], minutes=0.6, end_seconds=[2.0, 2.0]
    )
    callback.on_train_begin()
    assert callback.planned == (3, 5) and schedule.get_config()["decay_steps"] == 25
    run_state.state["epoch"] = 2
    callback.on_epoch_begin(2)
    for step in range(5):
        assert not callback.model.stop_training
        callback.on_train_batch_end(step)
        run_state.state["step"] += 1  # as RunState, after this callback
    assert callback.model.stop_training
    logs = {}
    callback.on_epoch_end(2, logs)
    assert run_state.state["stopped"] and callback.planned == (3, 5)
    assert schedule.get_config()["decay_steps"] == 25  # the updates done: 2 × 10 + 5
    assert logs[EPOCH_SECONDS] >= logs[EPOCH_END_SECONDS] >= 0


def trained(tmp_path, minutes: float) -> tuple:
    """`(config, model, run dir, summary.json)` of `tiny` trained with a budget, at most 3
    epochs."""
    from s2s_keras.training import train

    pairs = write_reversal_pairs(tmp_path, 200, max_length=5)
    config = preset("tiny").override(
        [
            f"data.source=tsv:{pairs}",
            "train.epochs=3",
            "train.batch_size=16",
            f"train.max_minutes={minutes}",
        ]
    )
    run_dir = tmp_path / "run"
    model = train(config, str(run_dir), verbose=0)
    return config, model, run_dir, json.loads((run_dir / "summary.json").read_text())


@pytest.mark.parametrize("minutes, epochs_run", [(1e-9, 1), (1000.0, 3)])
def test_training_stops_when_the_budget_is_spent(tmp_path, minutes, epochs_run):
    config, model, run_dir, summary = trained(tmp_path, minutes)
    assert summary["epochs_run"] == epochs_run
    assert len(summary["history"][EPOCH_SECONDS]) == epochs_run
    assert EPOCH_SECONDS in (run_dir / "history.csv").read_text().splitlines()[0]
    # the cosine decay spans the epochs run: its length is the updates done, the rate at its floor
    steps = int(model.optimizer.iterations.numpy())
    assert model.optimizer._learning_rate.get_config()["decay_steps"] == steps
    rate = float(model.optimizer.learning_rate)
    np.testing.assert_allclose(rate, 0.05 * config.train.learning_rate, rtol=1e-5)


def test_a_run_whose_plan_cuts_its_last_epoch_trains_and_validates_that_part(tmp_path, monkeypatch):
    from s2s_keras import time_budget
    from s2s_keras.training import train

    monkeypatch.setattr(time_budget, "plan", lambda *args: time_budget.Plan(2, 3))
    config, model, run_dir, summary = trained(tmp_path, 1000.0)
    steps = summary["steps_per_epoch"]
    assert steps > 3 and summary["updates"] == steps + 3
    assert summary["epochs_run"] == 2 and len(summary["history"]["val_loss"]) == 2
    assert len(summary["history"][EPOCH_END_SECONDS]) == 2
    schedule = model.optimizer._learning_rate
    assert schedule.get_config()["decay_steps"] == steps + 3
    # at its floor after the last update (the model kept may be an earlier epoch's)
    rate = float(schedule(steps + 3))
    np.testing.assert_allclose(rate, 0.05 * config.train.learning_rate, rtol=1e-5)
    # finished: training the same run dir again returns it as it is
    train(config, str(run_dir), verbose=0)
    assert json.loads((run_dir / "summary.json").read_text()) == summary


@pytest.mark.parametrize(
    "assignments, message",
    [
        (["train.max_minutes=-1"], "train.max_minutes: expected a number >= 0"),
        (
            ["train.max_minutes=5", "train.strategy=multi_worker"],
            "train.max_minutes: expected 0 with train.strategy=multi_worker",
        ),
    ],
)
def test_max_minutes_is_validated(assignments, message):
    with pytest.raises(ConfigError, match=message):
        preset("tiny").override(assignments)
    assert preset("small").override(["train.max_minutes=0", "train.strategy=multi_worker"])
