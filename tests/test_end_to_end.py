"""A real (tiny) training run through the CLI: learns string reversal, evaluates, exports,
predicts."""

import json
import os
import random

import pytest
from conftest import cli_stdout, run_cli

pytestmark = pytest.mark.slow


def reversal_pairs(count, seed):
    rng = random.Random(seed)
    pairs = set()
    while len(pairs) < count:
        word = "".join(rng.choice("abcdef") for _ in range(rng.randint(1, 5)))
        pairs.add((word, " ".join(reversed(word.upper()))))
    return sorted(pairs)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("e2e")
    pairs = reversal_pairs(2600, seed=1)
    train, test = pairs[:2400], pairs[2400:]
    (tmp / "train.tsv").write_text("".join(f"{s}\t{t}\n" for s, t in train))
    (tmp / "test.tsv").write_text("".join(f"{s}\t{t}\n" for s, t in test))
    run_dir = tmp / "run"
    result = run_cli(
        "train",
        "--data",
        f"tsv:{tmp / 'train.tsv'},test={tmp / 'test.tsv'}",
        "--preset",
        "tiny",
        "--set",
        "model.hidden_units=64",
        "--set",
        "train.epochs=25",
        "--set",
        "train.batch_size=32",
        "--set",
        "train.early_stopping_patience=25",
        "--run-dir",
        str(run_dir),
    )
    return tmp, run_dir, result


def test_training_writes_a_complete_run_dir(trained):
    _, run_dir, result = trained
    for name in (
        "config.json",
        "model.keras",
        "history.csv",
        "summary.json",
        "checkpoints/best.keras",
        "logs",
    ):
        assert os.path.exists(run_dir / name), name
    summary = json.loads((run_dir / "summary.json").read_text())
    padding = summary["history"]["padding_fraction"]  # one per epoch
    assert len(padding) == len(summary["history"]["loss"]) and all(
        0 < value < 0.5 for value in padding
    )
    assert summary["train_padding_fraction"] == pytest.approx(sum(padding) / len(padding))
    assert "padding_fraction: " in result.stdout  # on the epoch's progress line


@pytest.mark.parametrize("beam_size", ["1", "4"])
def test_learns_reversal_to_95_percent_exact_match(trained, beam_size):
    _, run_dir, _ = trained
    result = json.loads(
        run_cli("evaluate", "--run-dir", str(run_dir), "--split", "test", "--beam-size", beam_size)
        .stdout.strip()
        .splitlines()[-1]
    )
    assert result["num_words"] == 200 and result["beam_size"] == int(beam_size)
    assert result["wer"] <= 0.05, result


def test_export_and_predict_through_every_model_kind(trained, capsys):
    """The export and one prediction as separate processes; the other model forms and the
    n-best list through `cli.main` in this one (a process start costs seconds)."""
    from s2s_keras import cli

    tmp, run_dir, _ = trained
    version = run_cli(
        "export", "--run-dir", str(run_dir), "--export-base", str(tmp / "sm" / "rev")
    ).stdout.strip()
    assert version.endswith(os.path.join("rev", "1"))
    out = run_cli("predict", "--model", version, "abc", "fed").stdout
    assert "abc\tC B A" in out and "fed\tD E F" in out, out
    for model in (str(run_dir), str(run_dir / "model.keras")):
        capsys.readouterr()
        assert cli.main(["predict", "--model", model, "abc", "fed"]) == 0
        out = capsys.readouterr().out
        assert "abc\tC B A" in out and "fed\tD E F" in out, (model, out)
    assert (
        cli.main(["predict", "--model", version, "--beam-size", "3", "--num-results", "3", "abc"])
        == 0
    )
    nbest = capsys.readouterr().out
    lines = [line.split("\t") for line in nbest.strip().splitlines()]
    assert len(lines) == 3 and lines[0][1] == "C B A"
    scores = [float(line[2]) for line in lines]
    assert scores == sorted(scores, reverse=True) and scores[0] > -0.5


def test_rerun_resumes_or_refuses_a_different_config(trained):
    _, run_dir, _ = trained
    os.makedirs(run_dir / "backup", exist_ok=True)  # as an interrupted run leaves it
    result = run_cli(
        "train", "--data", "cmudict", "--preset", "tiny", "--run-dir", str(run_dir), check=False
    )
    assert result.returncode == 2 and "interrupted run with another config" in result.stderr
    os.rmdir(run_dir / "backup")


def test_bad_tsv_line_is_reported_through_the_cli(tmp_path):
    (tmp_path / "bad.tsv").write_text("a\tA\nb\n")
    result = run_cli(
        "train",
        "--data",
        f"tsv:{tmp_path / 'bad.tsv'}",
        "--preset",
        "tiny",
        "--run-dir",
        str(tmp_path / "run"),
        check=False,
    )
    assert result.returncode == 2 and "bad.tsv:2: expected 2 tab-separated columns" in result.stderr


def test_wordpiece_sentence_model_trains_evaluates_and_exports(tmp_path, capsys):
    """Sentence-level data end to end: WordPiece on both sides, BLEU/chrF, export, op audit."""
    import random

    from test_export import audit_ops

    rng = random.Random(2)
    lexicon = {
        "the": "die",
        "a": "eine",
        "big": "grosse",
        "small": "kleine",
        "cat": "katze",
        "dog": "hund",
        "bird": "vogel",
        "sees": "sieht",
        "likes": "mag",
        "chases": "jagt",
        "quickly": "schnell",
        "today": "heute",
    }
    nouns, adjectives, verbs = ["cat", "dog", "bird"], ["big", "small"], ["sees", "likes", "chases"]

    def phrase():
        return [
            rng.choice(["the", "a"]),
            *([rng.choice(adjectives)] if rng.random() < 0.5 else []),
            rng.choice(nouns),
        ]

    pairs = set()
    while len(pairs) < 400:
        words = [
            *phrase(),
            rng.choice(verbs),
            *phrase(),
            *(["today"] if rng.random() < 0.3 else []),
        ]
        pairs.add((" ".join(words).capitalize() + ".", " ".join(lexicon[w] for w in words) + "."))
    pairs = sorted(pairs)
    (tmp_path / "train.tsv").write_text("".join(f"{s}\t{t}\n" for s, t in pairs[:360]))
    (tmp_path / "test.tsv").write_text("".join(f"{s}\t{t}\n" for s, t in pairs[360:]))
    run_dir = tmp_path / "run"
    run_cli(
        "train",
        "--data",
        f"tsv:{tmp_path / 'train.tsv'},test={tmp_path / 'test.tsv'}",
        "--preset",
        "tiny",
        "--set",
        "data.source_split=wordpiece",
        "--set",
        "data.target_split=wordpiece",
        "--set",
        "data.vocabulary_size=60",
        "--set",
        "model.attention=luong_general",
        "--set",
        "train.epochs=8",
        "--set",
        "train.learning_rate=0.01",
        "--run-dir",
        str(run_dir),
    )
    # evaluate, export and predict in this process (each start of TensorFlow costs seconds)
    evaluated = cli_stdout(capsys, "evaluate", "--run-dir", str(run_dir), "--split", "test")
    result = json.loads(evaluated.splitlines()[-1])
    assert result["num_words"] == 40 and 0 <= result["bleu"] <= 100 and 0 <= result["chrf"] <= 100
    assert result["exact_match"] == pytest.approx(1 - result["wer"])
    assert result["chrf"] > 30, result  # it learned something of the word mapping

    version = cli_stdout(
        capsys, "export", "--run-dir", str(run_dir), "--export-base", str(tmp_path / "sm")
    ).strip()
    assert audit_ops(version) <= {
        "NormalizeUTF8",
        "CaseFoldUTF8",
        "FastWordpieceTokenizeWithOffsets",
    }
    output = cli_stdout(capsys, "predict", "--model", version, "The big cat sees a dog.")
    assert output.startswith("The big cat sees a dog.\t") and output.split("\t")[1].strip()
