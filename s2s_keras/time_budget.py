"""`train.max_minutes`: as many epochs as fit in a time budget on the machine that trains.

The same config trains at very different speeds on different CPUs (`docs/results.md`: the same
`make train` takes 5.7 minutes on one 2-core host and 17.7 on another), so a fixed epoch count
either wastes a fast machine's minutes or overruns a slow one's. With a budget, `train.epochs` is
the most the run may train; after every epoch the pace so far says how many epochs fit in the
budget (`planned_epochs`), training stops after them, and a cosine schedule's decay is stretched
or shrunk to end with them (`CosineDecay.set_decay_steps`), so the rate still ends low whatever
the count. The budget counts `model.fit`'s epochs, validation included; loading the data
before them and evaluating or exporting after are not in it.

Each epoch's seconds go into the logs (`epoch_seconds`: history.csv and the run state), so a
resumed run plans from the epochs already done. An epoch a resumed attempt finishes counts only
the part it ran. Not under several workers (`MultiWorkerMirroredStrategy`): each would measure
its own pace and they could stop at different epochs.
"""

from __future__ import annotations

import time

import keras

EPOCH_SECONDS = "epoch_seconds"


def planned_epochs(seconds: list, budget_seconds: float, most: int) -> int:
    """How many epochs in all fit in `budget_seconds`, `seconds` being the durations of those
    done: at the pace of the epochs after the first (which also traces the training step for
    every batch shape), or the first's until there is a second; at most `most`, at least those
    done."""
    done = len(seconds)
    if not done:
        return most
    pace = sum(seconds[1:]) / (done - 1) if done > 1 else seconds[0]
    more = int(max(0.0, budget_seconds - sum(seconds)) // max(pace, 1e-9))
    return max(done, min(most, done + more))


class TimeBudget(keras.callbacks.Callback):
    """Callback: times each epoch into the logs (`epoch_seconds`), plans the run's epochs from
    the pace (`planned_epochs`), fits `schedule`'s decay to them (when it has
    `set_decay_steps`: `s2s_keras.optimizers.CosineDecay`) and stops training after them.
    `run_state` (`run_state.RunState`) holds the epochs done; put this callback before it."""

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
        self.planned = None
        self._start = None

    def done_seconds(self) -> list:
        return list(self.run_state.state["history"].get(EPOCH_SECONDS, []))

    def plan(self, seconds: list) -> int:
        """Plans from the epochs that took `seconds`; sets the schedule's decay."""
        planned = planned_epochs(seconds, self.budget_seconds, self.epochs)
        if hasattr(self.schedule, "set_decay_steps"):
            # after its warm-up (Keras' CosineDecay decays over decay_steps after warmup_steps)
            total = planned * self.steps_per_epoch - self.schedule.warmup_steps
            self.schedule.set_decay_steps(max(1, total))
        if self.verbose and seconds and planned != self.planned:
            minutes = self.budget_seconds / 60
            print(
                f"[s2s] time budget {minutes:g} min: {planned} epoch(s) in all, "
                f"{sum(seconds) / 60:.1f} min in {len(seconds)}",
                flush=True,
            )
        self.planned = planned
        return planned

    def on_train_begin(self, logs=None):
        self.plan(self.done_seconds())

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.time()

    def on_epoch_end(self, epoch, logs=None):
        seconds = [*self.done_seconds(), time.time() - self._start]
        if logs is not None:
            logs[EPOCH_SECONDS] = seconds[-1]
        if epoch + 1 >= self.plan(seconds):
            self.model.stop_training = True
            self.run_state.state["stopped"] = True
