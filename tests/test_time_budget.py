import json

import numpy as np
import pytest
import tensorflow as tf
from conftest import write_reversal_pairs

from s2s_keras.config import ConfigError, preset
from s2s_keras.optimizers import CosineDecay
from s2s_keras.run_state import RunState
from s2s_keras.time_budget import EPOCH_SECONDS, TimeBudget, planned_epochs


@pytest.mark.parametrize(
    "seconds, budget, most, planned",
    [
        ([], 60, 30, 30),  # nothing measured yet: the most
        ([10], 60, 30, 6),  # the first epoch's pace until there is a second
        ([14, 8], 60, 30, 6),  # then the later epochs' (the first also traces): 38 s left // 8
        ([14, 8, 10], 60, 30, 6),  # 28 s left // 9
        ([10], 600, 8, 8),  # at most train.epochs
        ([50, 40], 60, 30, 2),  # over the budget: the epochs done
    ],
)
def test_planned_epochs_follow_the_pace_after_the_first_epoch(seconds, budget, most, planned):
    assert planned_epochs(seconds, budget, most) == planned


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


def budget_of(tmp_path, history_seconds, minutes, warmup_steps=0):
    run_state = RunState(str(tmp_path), "loss", 3, 0)
    run_state.state["history"] = {EPOCH_SECONDS: history_seconds} if history_seconds else {}
    schedule = CosineDecay(1e-3, decay_steps=100 - warmup_steps, warmup_steps=warmup_steps)
    callback = TimeBudget(minutes, 10, 10, schedule, run_state, verbose=0)
    callback.set_model(Model())
    return callback, schedule, run_state


def test_a_resumed_run_plans_from_the_epochs_done(tmp_path):
    callback, schedule, _ = budget_of(tmp_path, [20.0, 10.0], minutes=1.0, warmup_steps=5)
    callback.on_train_begin()
    # 30 s of 60 done at 10 s an epoch: 3 more, 5 in all; the decay after the 5 warm-up steps
    assert callback.planned == 5
    assert schedule.get_config()["decay_steps"] == 5 * 10 - 5


def test_the_epoch_that_reaches_the_plan_stops_training(tmp_path):
    callback, schedule, run_state = budget_of(tmp_path, [], minutes=1e-9)
    callback.on_train_begin()
    assert callback.planned == 10 and schedule.get_config()["decay_steps"] == 100
    logs = {}
    callback.on_epoch_begin(0)
    callback.on_epoch_end(0, logs)
    assert logs[EPOCH_SECONDS] > 0 and callback.planned == 1
    assert callback.model.stop_training and run_state.state["stopped"]
    assert schedule.get_config()["decay_steps"] == 10


def write_pairs(tmp_path) -> str:
    return write_reversal_pairs(tmp_path, 200, max_length=5)


@pytest.mark.parametrize("minutes, epochs_run", [(1e-9, 1), (1000.0, 3)])
def test_training_stops_when_the_budget_is_spent(tmp_path, minutes, epochs_run):
    from s2s_keras.training import train

    config = preset("tiny").override(
        [
            f"data.source=tsv:{write_pairs(tmp_path)}",
            "train.epochs=3",
            "train.batch_size=16",
            f"train.max_minutes={minutes}",
        ]
    )
    run_dir = tmp_path / "run"
    model = train(config, str(run_dir), verbose=0)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["epochs_run"] == epochs_run
    assert len(summary["history"][EPOCH_SECONDS]) == epochs_run
    assert EPOCH_SECONDS in (run_dir / "history.csv").read_text().splitlines()[0]
    # the cosine decay spans the epochs run: its length is the updates done, the rate at its floor
    steps = int(model.optimizer.iterations.numpy())
    assert model.optimizer._learning_rate.get_config()["decay_steps"] == steps
    rate = float(model.optimizer.learning_rate)
    np.testing.assert_allclose(rate, 0.05 * config.train.learning_rate, rtol=1e-5)


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
