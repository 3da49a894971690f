"""The task registry, and a task added from outside the package: one small file (this one)
registers it, and `s2s train / evaluate / export / predict` run it through the same code."""

import json
import os
import random

import keras
import numpy as np
import pytest
import tensorflow as tf

from s2s_keras import cli
from s2s_keras.config import ConfigError, preset
from s2s_keras.models import Classifier, LanguageModel, Seq2Seq
from s2s_keras.tasks import get_task, register_task, task_names, task_of_model
from s2s_keras.tasks.classify import ClassifyTask, Labels


@keras.saving.register_keras_serializable(package="s2s_keras_tests")
class ParityClassifier(Classifier):
    """A classifier of its own kind, so that a `.keras` file says which task it belongs to."""


class ParityExamples(Labels):
    """A source's label is the parity of its token count; the target column is not read."""

    def encode(self, sources, targets):
        ids = self.source_tokenizer.tokenize_ragged(sources)
        return ids, tf.cast(ids.row_lengths() % 2, tf.int32)  # 0: even, 1: odd


class ParityTask(ClassifyTask):
    """Sequence → "even" / "odd": a classifier whose labels come from the source itself."""

    name = "parity"
    model_class = ParityClassifier
    pretrained_classes = (ParityClassifier,)
    objectives = {"val_accuracy": "max", "val_loss": "min"}

    def counters(self, data):
        return super().counters(data)[0], None

    def vocabularies(self, counters, corpus, data):
        return counters[0].vocabulary(data.vocabulary_size), ["even", "odd"]

    def examples(self, config, model):
        return ParityExamples(model.source_tokenizer, model.labels, 0)

    def evaluate(self, model, config, pairs, beam_size=None, rescore=None):
        labelled = [(source, ("even", "odd")[len(source) % 2]) for source, _ in pairs]
        return super().evaluate(model, config, labelled, beam_size, rescore)


register_task(ParityTask())


def test_registry_names_the_tasks_and_their_models():
    assert task_names()[:3] == ("seq2seq", "classify", "lm")
    with pytest.raises(ConfigError, match="task: expected one of .*'parity'"):
        get_task("translate")
    small = {"embedding_size": 4, "hidden_units": 4, "num_layers": 1}
    models = {
        "seq2seq": Seq2Seq(list("ab"), list("xy"), **small),
        "classify": Classifier(list("ab"), ["n", "p"], **small),
        "lm": LanguageModel(list("ab"), **small),
        "parity": ParityClassifier(list("ab"), ["even", "odd"], **small),
    }
    assert {name: task_of_model(model).name for name, model in models.items()} == {
        name: name for name in models
    }
    assert preset("tiny").override(["task=parity"]).task == "parity"


def test_a_task_registered_outside_the_package_trains_evaluates_exports_and_predicts(
    tmp_path, capsys
):
    rng = random.Random(0)
    words = sorted(
        {"".join(rng.choice("abcdef") for _ in range(rng.randint(1, 6))) for _ in range(300)}
    )
    data = tmp_path / "words.tsv"
    data.write_text("".join(f"{word}\tunused\n" for word in words))
    run_dir, base = str(tmp_path / "run"), str(tmp_path / "export")
    options = ["--preset", "tiny", "--task", "parity", "--data", f"tsv:{data}",
               "--set", "data.source_split=characters", "--set", "train.epochs=2"]  # fmt: skip
    assert cli.main(["train", *options, "--run-dir", run_dir]) == 0
    model = keras.saving.load_model(os.path.join(run_dir, "model.keras"))
    assert type(model) is ParityClassifier and model.labels == ["even", "odd"]
    capsys.readouterr()

    assert cli.main(["evaluate", "--run-dir", run_dir, "--split", "test"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["num_examples"] > 0 and 0.0 <= result["accuracy"] <= 1.0
    assert set(result["per_label"]) <= {"even", "odd"}

    assert cli.main(["export", "--run-dir", run_dir, "--export-base", base]) == 0
    version = capsys.readouterr().out.strip()
    assert cli.main(["predict", "--model", version, "ab", "abc"]) == 0
    exported = [line.split("\t") for line in capsys.readouterr().out.strip().splitlines()]
    assert cli.main(["predict", "--model", run_dir, "ab", "abc"]) == 0
    from_run = [line.split("\t") for line in capsys.readouterr().out.strip().splitlines()]
    assert [row[:2] for row in exported] == [row[:2] for row in from_run]
    assert {row[1] for row in exported} <= {"even", "odd"}
    np.testing.assert_allclose([float(row[2]) for row in exported],
                               [float(row[2]) for row in from_run], atol=1e-5)  # fmt: skip
