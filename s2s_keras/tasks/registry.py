"""The tasks by name: `config.task` is looked up here, and only here."""

from __future__ import annotations

from s2s_keras.config import ConfigError

_TASKS: dict = {}


def register_task(task):
    """Makes `task` (a `Task` instance) the one `config.task == task.name` runs; returns it."""
    _TASKS[task.name] = task
    return task


def get_task(name: str):
    """The registered `Task` called `name` (a `ConfigError` naming the known ones otherwise)."""
    if name not in _TASKS:
        raise ConfigError(f"task: expected one of {task_names()}, got {name!r}")
    return _TASKS[name]


def task_names() -> tuple:
    return tuple(_TASKS)


def task_of_model(model):
    """The task whose model `model` is (an `Ensemble`: its members')."""
    kind = type(getattr(model, "members", [model])[0])
    exact = [task for task in _TASKS.values() if task.model_class is kind]
    for task in exact or [task for task in _TASKS.values() if issubclass(kind, task.model_class)]:
        return task
    raise ValueError(f"{kind.__name__} is the model of no task (known: {task_names()})")
