"""`s2s distill`: a teacher's beam outputs on its training sources become a student's data."""

import json

import pytest
from conftest import run_cli, write_reversal_pairs

from s2s_keras.config import ConfigError, DataConfig, preset


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    """A tiny run on words → their letters reversed, some words with two pronunciations, and
    decode.max_input_length below the longest words (the teacher reads those cut)."""
    from s2s_keras.training import train

    directory = tmp_path_factory.mktemp("distill")
    pairs = write_reversal_pairs(directory, max_length=7, alternates=True)
    config = preset("tiny").override(
        [
            f"data.source=tsv:{pairs}",
            "data.valid_fraction=0.1",
            "data.test_fraction=0.1",
            "decode.max_input_length=6",
            "decode.beam_size=3",
            "train.epochs=12",
            "train.learning_rate=0.02",
        ]
    )
    train(config, str(directory / "run"), verbose=0)
    return str(directory / "run")


def read_jsonl(path):
    with open(path, encoding="utf-8") as handle:
        return [tuple(json.loads(line).values()) for line in handle]


def test_the_student_data_is_the_teachers_beam_output_and_the_unchanged_splits(teacher, tmp_path):
    import tensorflow as tf

    from s2s_keras import pipelines
    from s2s_keras.distillation import distill
    from s2s_keras.inference import Translator
    from s2s_keras.run_dir import load_run

    summary = distill([teacher], str(tmp_path / "student"))
    config, model = load_run(teacher)
    corpus = pipelines.load_corpus(config.data)
    references = {}
    for source, target in corpus.train:
        references.setdefault(source, []).append(target)
    lines = read_jsonl(tmp_path / "student" / "train.jsonl")

    cut = [source for source in references if len(source) > 6]
    assert cut and summary["cut_sources"] == len(cut)
    kept = [(source, target) for source in cut for target in references[source]]
    assert set(kept) <= set(lines)
    decoded = [source for source in references if len(source) <= 6]
    translator = Translator(model, config.decode)
    outputs = translator.translate(tf.constant(decoded), 3).numpy()
    expected = {s: o.decode() for s, o in zip(decoded, outputs) if o}
    assert {(s, t) for s, t in lines if s in expected} == set(expected.items())
    # Each decoded source once, even those with two references.
    assert len([s for s, _ in lines if s in expected]) == len(expected)
    assert summary["from_teacher"] == len(expected) > len(decoded) / 2
    assert (
        summary["sources"]
        == len(references)
        == (summary["from_teacher"] + summary["cut_sources"] + summary["empty_outputs"])
    )
    assert summary["train_lines"] == len(lines)

    assert read_jsonl(tmp_path / "student" / "valid.jsonl") == list(corpus.valid)
    assert read_jsonl(tmp_path / "student" / "test.jsonl") == list(corpus.test)
    student = pipelines.load_corpus(DataConfig(source=summary["student_data"]))
    assert student.train == lines and student.test == list(corpus.test)
    assert json.loads((tmp_path / "student" / "distill.json").read_text()) == summary


def test_keep_references_adds_the_training_pairs_once(teacher, tmp_path):
    from s2s_keras import pipelines
    from s2s_keras.distillation import distill
    from s2s_keras.run_dir import load_run

    alone = distill([teacher], str(tmp_path / "alone"))
    both = distill([teacher], str(tmp_path / "both"), keep_references=True)
    config, _ = load_run(teacher)
    train = list(dict.fromkeys(pipelines.load_corpus(config.data).train))
    lines = read_jsonl(tmp_path / "both" / "train.jsonl")
    assert lines[: alone["train_lines"]] == read_jsonl(tmp_path / "alone" / "train.jsonl")
    assert set(lines) == set(lines[: alone["train_lines"]]) | set(train)
    added = lines[alone["train_lines"] :]
    assert len(added) == len(set(added)) == both["references_added"] > 0
    assert not set(added) & set(lines[: alone["train_lines"]])


def test_cli_distills_an_ensemble_and_refuses_what_it_cannot_write(teacher, tmp_path):
    output = tmp_path / "ensemble"
    result = run_cli("distill", "--teacher", teacher, teacher, "--output", str(output))
    summary = json.loads(result.stdout.splitlines()[0])
    assert summary["teachers"] == [teacher, teacher] and summary["beam_size"] == 3
    assert f"s2s train --data {summary['student_data']}" in result.stdout
    assert sorted(p.name for p in output.iterdir()) == [
        "distill.json",
        "test.jsonl",
        "train.jsonl",
        "valid.jsonl",
    ]
    again = run_cli("distill", "--teacher", teacher, "--output", str(output), check=False)
    assert again.returncode == 2
    assert "expected a new or empty directory" in again.stderr


def test_what_distill_refuses(teacher, tmp_path):
    from s2s_keras.distillation import distill
    from s2s_keras.tasks import get_task

    with pytest.raises(ConfigError, match="cannot contain a comma"):
        distill([teacher], str(tmp_path / "a,b"))
    with pytest.raises(ConfigError, match="the lm task has no distillation"):
        get_task("lm").distill(None, preset("ptb_small"), [])
