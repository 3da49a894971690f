"""The shipped `pretrained:g2p` model: it loads from the package with no download and no
training, scores on the fixed test sample what its card says (its beam reranked by the
right-to-left run it carries), is what `G2p()`, `s2s predict` and `train.init_from` reach, and
the wheel and sdist carry it."""

import glob
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile

import pytest
from conftest import REPO, run_cli

from s2s_keras import pretrained

FILES = ["CMUDICT-LICENSE", "card.json", "config.json", "model.keras", "rescore", "summary.json"]
RESCORE_FILES = ["config.json", "model.keras", "summary.json"]  # the reranker it carries


def test_the_package_ships_g2p_with_its_card_and_licence():
    assert pretrained.names() == ["g2p"]
    directory = pretrained.resolve("pretrained:g2p")
    assert sorted(os.listdir(directory)) == FILES
    card = pretrained.card("g2p")
    assert (
        card["task"] == "seq2seq"
        and "BSD" in card["data"]
        and "training split" in card["trained_on"]
    )
    assert sorted(os.listdir(os.path.join(directory, "rescore"))) == RESCORE_FILES
    models = [
        os.path.join(directory, "model.keras"),
        os.path.join(directory, "rescore", "model.keras"),
    ]
    assert sum(map(os.path.getsize, models)) == card["model_bytes"] <= 20e6
    assert card["rescore"]["reverse_target"] and 0 < card["rescore"]["weight"] < 1
    with pytest.raises(FileNotFoundError, match="pretrained:nope: no such pretrained model .*g2p"):
        pretrained.resolve("pretrained:nope")


def test_the_shipped_model_scores_on_the_sample_what_its_card_says():
    from s2s_keras import pipelines
    from s2s_keras.evaluation import evaluate_pairs
    from s2s_keras.inference import Reranker
    from s2s_keras.run_dir import load_rescorer, load_run
    from s2s_keras.tasks import get_task

    card = pretrained.card("g2p")
    config, model = load_run("pretrained:g2p")
    rescorer = load_rescorer(["pretrained:g2p"], None)
    assert model.precision == rescorer.precision == "float32"  # the same numbers on every CPU
    pairs = pretrained.sample(pipelines.load_corpus(config.data).test)
    translator = get_task("seq2seq").reranker(model, config, rescorer)
    assert isinstance(translator, Reranker) and translator.weight == card["rescore"]["weight"]
    result = evaluate_pairs(
        translator, pairs, config.decode.batch_size, card["sample"]["beam_size"]
    )
    assert result["num_words"] == card["sample"]["num_words"] == 500
    # Float32 kernels differ between CPUs (AVX-512, AMX): a near-tie may flip one word.
    assert abs(result["wer"] - card["sample"]["wer"]) * 500 <= 1
    assert result["per"] == pytest.approx(card["sample"]["per"], abs=0.002)


def test_g2p_predict_and_init_from_reach_the_shipped_model():
    from s2s_keras import G2p
    from s2s_keras.config import preset
    from s2s_keras.fine_tuning import load_pretrained
    from s2s_keras.prediction import load_predictor

    predicted = run_cli("predict", "--model", "pretrained:g2p", "hello").stdout.strip()
    word, phones = predicted.split("\t")
    model_phones = load_predictor("pretrained:g2p")(["hello"])[0][0][0]
    assert word == "hello" and phones == model_phones and phones
    assert G2p(lookup=False)("Hello!") == [*model_phones.split(), " ", "!"]
    assert G2p()("hello") == ["HH", "AH", "L", "OW"]  # CMUdict's first pronunciation
    config = preset("g2p").override(["train.init_from=pretrained:g2p"])
    assert load_pretrained(config).count_params() == pretrained.card("g2p")["parameters"]


@pytest.mark.slow
def test_the_wheel_and_the_sdist_carry_the_shipped_model(tmp_path):
    source = tmp_path / "source"  # a copy: building in the tree would write build/ into it
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "s2s_keras_cli.py"):
        shutil.copy(os.path.join(REPO, name), source / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("s2s_keras", "pipelines"):
        shutil.copytree(os.path.join(REPO, name), source / name, ignore=ignore)
    out = tmp_path / "dist"
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
    subprocess.run([*build, "-w", str(out), str(source)], check=True, capture_output=True)
    code = f"from setuptools import build_meta; build_meta.build_sdist({str(out)!r})"
    subprocess.run([sys.executable, "-c", code], cwd=source, check=True, capture_output=True)
    (wheel,) = glob.glob(str(out / "*.whl"))
    (sdist,) = glob.glob(str(out / "*.tar.gz"))
    files = [name for name in FILES if name != "rescore"]
    files += [f"rescore/{name}" for name in RESCORE_FILES]
    shipped = {f"s2s_keras/pretrained/g2p/{name}" for name in files}
    assert shipped <= set(zipfile.ZipFile(wheel).namelist())
    assert "s2s_keras_cli.py" in zipfile.ZipFile(wheel).namelist()
    # and the LSTM kernels' sources, which an installed package compiles (`lstm_kernels.build`)
    sources = ("lstm_kernels.cc", "lstm_sequence.cc", "lstm_sequence_float.cc")
    headers = ("lstm_rows.h", "lstm_sequence.h")
    kernels = {f"s2s_keras/layers/{name}" for name in sources + headers}
    assert kernels <= set(zipfile.ZipFile(wheel).namelist())
    members = {name.split("/", 1)[1] for name in tarfile.open(sdist).getnames() if "/" in name}
    assert shipped <= members
