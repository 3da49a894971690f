"""One `Task` per task, looked up by `config.task` (see `base.py` for what a task owns).

    seq2seq   source → target sequence (`Seq2Seq`)                           tasks/seq2seq.py
    classify  source → one label, the target column (`Classifier`)          tasks/classify.py
    lm        a language model over the source column (`LanguageModel`)     tasks/lm.py

Another task: subclass `Task` in a file of its own and `register_task(MyTask())`; `s2s train
--task NAME` (and evaluate, export, predict, tune) then runs it through the same code.
"""

from s2s_keras.tasks.registry import get_task, register_task, task_names, task_of_model

from s2s_keras.tasks.base import Examples, Task  # isort: skip  (after the registry it fills)
from s2s_keras.tasks.seq2seq import Seq2SeqTask  # isort: skip
from s2s_keras.tasks.classify import ClassifyTask  # isort: skip
from s2s_keras.tasks.lm import LanguageModelTask  # isort: skip

for _task in (Seq2SeqTask(), ClassifyTask(), LanguageModelTask()):
    register_task(_task)

__all__ = ["Examples", "Task", "get_task", "register_task", "task_names", "task_of_model"]
