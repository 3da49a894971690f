"""`train.max_minutes`: as much training as fits in a time budget on the machine that trains.

The same config trains at very different speeds on different CPUs (`docs/results.md`: the same
`make train` takes 5.7 minutes on one 2-core host and 17.7 on another), so a fixed epoch count
either wastes a fast machine's minutes or overruns a slow one's. With a budget, `train.epochs` is
the most the run may train; after every epoch the pace so far says how much more fits in the
budget (`plan`): whole epochs, then the first steps of one more epoch with whatever is left (a
last epoch cut short, so the budget is not lost to rounding down to whole epochs). Training stops
there, and a cosine schedule's decay is stretched or shrunk to end with the last update
(`CosineDecay.set_decay_steps`), so the rate still ends low whatever the count. The budget counts
`model.fit`'s epochs, validation included; loading the data before them and evaluating or
exporting after are not in it.

Each epoch's seconds go into the logs (`epoch_seconds`: history.csv and the run state), and the
part of them after the epoch's last update (`epoch_end_seconds`: validation, the epoch's weights
written), which a last epoch cut short still pays in full. A resumed run plans from the epochs
already done; an epoch a resumed attempt finishes counts only the part it ran. Not under several
workers (`MultiWorkerMirroredStrategy`): each would measure its own pace and they could stop at
different epochs.
"""

from __future__ import annotations

import time
from typing import NamedTuple

import keras

EPOCH_SECONDS = "epoch_seconds"
EPOCH_END_SECONDS = "epoch_end_seconds"


class Plan(NamedTuple):
    """The run's training: `epochs` in all, the last of them `last_steps` long (a whole epoch's
    steps, or fewer when it is cut short)."""

    epochs: int
    last_steps: int

    def updates(self, steps_per_epoch: int) -> int:
        return (self.epochs - 1) * steps_per_epoch + self.last_steps


def _pace(values: list) -> float:
    """The slowest of the epochs after the first (which also traces the training step and the
    validation's functions), or the first until there is a second: the budget is a limit, and
    this machine may run that slowly again."""
    return max(values[1:]) if len(values) > 1 else values[0]


def plan(
    seconds: list, end_seconds: list, budget_seconds: float, most: int, steps_per_epoch: int
) -> Plan:
    """What fits in `budget_seconds`, `seconds` being the durations of the epochs done and
    `end_seconds` the part of each after its last update (`[]` when not measured: then a cut
    epoch's end is taken to shrink with its steps): at the pace of `_pace`, as many whole epochs
    as fit, then the steps of one more that fit with its end; at most `most` epochs, at least
    those done (and then no cut: the last one done ran whole)."""
    whole = Plan(most, steps_per_epoch)
    done = len(seconds)
    if not done:
        return whole
    pace = max(_pace(seconds), 1e-9)
    end = min(_pace(end_seconds), pace) if len(end_seconds) == done else 0.0
    left = max(0.0, budget_seconds - sum(seconds))
    more = int(left // pace)
    if done + more >= most:
        return whole
    # the steps whose share of an epoch's updates fits in what is left after the end
    updating = pace - end
    last_steps = int((left - more * pace - end) * steps_per_epoch / updating) if updating else 0
    if last_steps > 0:
        return Plan(done + more + 1, min(last_steps, steps_per_epoch))
    return Plan(done + more, steps_per_epoch)


class TimeBudget(keras.callbacks.Callback):
    """Callback: times each epoch and its end into the logs (`epoch_seconds`,
    `epoch_end_seconds`), plans the run from the pace (`plan`), fits `schedule`'s decay to its
    updates (when it has `set_decay_steps`: `s2s_keras.optimizers.CosineDecay`) and stops
    training after them. `run_state` (`run_state.RunState`) holds the epochs and steps done;
    put this callback before it."""

    def __init__(
        self,
        minutes: float,
        epochs: int,
        steps_per_epoch: int,
        schedule,
        run_state,
        verbose: int = 1,
    ):
        super().__init__()
        self.budget_seconds = minutes * 60.0
        self.epochs, self.steps_per_epoch = epochs, steps_per_epoch
        self.schedule, self.run_state = schedule, run_state
        self.verbose = verbose
        self.planned = None  # a Plan
        self._epoch, self._start, self._last_update = 0, None, None

    def done(self, key: str) -> list:
        return list(self.run_state.state["history"].get(key, []))

    def plan(self, seconds: list, end_seconds: list) -> Plan:
        """Plans from the epochs that took `seconds` (`end_seconds` after their last update);
        sets the schedule's decay."""
        planned = plan(seconds, end_seconds, self.budget_seconds, self.epochs, self.steps_per_epoch)
        if hasattr(self.schedule, "set_decay_steps"):
            # after its warm-up (Keras' CosineDecay decays over decay_steps after warmup_steps)
            total = planned.updates(self.steps_per_epoch) - self.schedule.warmup_steps
            self.schedule.set_decay_steps(max(1, total))
        if self.verbose and seconds and planned != self.planned:
            cut = planned.last_steps < self.steps_per_epoch
            last = f", the last cut to {planned.last_steps} steps" if cut else ""
            print(
                f"[s2s] time budget {self.budget_seconds / 60:g} min: {planned.epochs} "
                f"epoch(s) in all{last}, {sum(seconds) / 60:.1f} min in {len(seconds)}",
                flush=True,
            )
        self.planned = planned
        return planned

    def on_train_begin(self, logs=None):
        self.plan(self.done(EPOCH_SECONDS), self.done(EPOCH_END_SECONDS))

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._start = self._last_update = time.time()

    def on_train_batch_end(self, batch, logs=None):
        self._last_update = time.time()
        # the epoch's steps so far, this one included (the run state counts it after this)
        step = self.run_state.state["step"] + 1
        if self._epoch + 1 == self.planned.epochs and step >= self.planned.last_steps:
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        now = time.time()
        seconds = [*self.done(EPOCH_SECONDS), now - self._start]
        end_seconds = [*self.done(EPOCH_END_SECONDS), now - self._last_update]
        if logs is not None:
            logs[EPOCH_SECONDS], logs[EPOCH_END_SECONDS] = seconds[-1], end_seconds[-1]
        # the plan's last epoch ends the run; after an earlier one, the pace may change it
        if epoch + 1 >= self.planned.epochs or epoch + 1 >= self.plan(seconds, end_seconds).epochs:
            self.model.stop_training = True
            self.run_state.state["stopped"] = True
