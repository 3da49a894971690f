"""LiteRT and ONNX exports: the same greedy outputs as the SavedModel's graph, run by
ai-edge-litert and onnxruntime through the shipped `s2s_runtime.py` (no TensorFlow)."""

import json
import os

import pytest
from conftest import REPO, run_cli, run_python, write_reversal_pairs

from s2s_keras.config import preset

# Words the model saw, unseen characters, an empty and a blank one, one longer than
# decode.max_input_length, upper case (folded).
WORDS = ["abc", "fed", "a", "cafe", "", "  ", "xyz", "é", "abcdefabcdefabcdef", "BAD", "ace"]


def train_run(directory, *overrides) -> str:
    """A tiny attention model on words → their letters reversed, upper case."""
    from s2s_keras.training import train

    config = preset("tiny").override(
        [
            f"data.source=tsv:{write_reversal_pairs(directory)}",
            "train.epochs=8",
            "train.learning_rate=0.02",
            "model.bidirectional=true",
            "model.bridge=dense",
            "model.attention=luong_general",
            "model.reverse_source=false",
            "decode.max_input_length=8",
            "decode.max_length=12",
            *overrides,
        ]
    )
    train(config, str(directory / "run"), verbose=0)
    return str(directory / "run")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return train_run(tmp_path_factory.mktemp("portable"))


def greedy_outputs(run_dir) -> list:
    import tensorflow as tf

    from s2s_keras.inference import Translator
    from s2s_keras.run_dir import load_run

    config, model = load_run(run_dir)
    translator = Translator(model, config.decode)  # kept: its tf.function holds it weakly
    outputs = translator.greedy(tf.constant(WORDS), config.decode.max_length)
    return [text.decode("utf-8") for text in outputs.numpy()]


@pytest.fixture(scope="module")
def greedy(run_dir):
    outputs = greedy_outputs(run_dir)
    assert sum(map(bool, outputs)) >= len(WORDS) // 2  # a model that has learned something
    return outputs


def translate_without_tensorflow(directory: str, model_file: str) -> list:
    """`s2s_runtime.load(...)(WORDS)` in a fresh process that must not import TensorFlow."""
    code = (
        "import json, sys\n"
        f"sys.path.insert(0, {directory!r})\n"
        "import s2s_runtime\n"
        f"out = s2s_runtime.load({os.path.join(directory, model_file)!r})({WORDS!r})\n"
        "assert 'tensorflow' not in sys.modules and 's2s_keras' not in sys.modules\n"
        "print(json.dumps(out))\n"
    )
    return json.loads(run_python(code, directory).strip().splitlines()[-1])


def test_litert_float32_equals_the_savedmodel_greedy_outputs(run_dir, greedy, tmp_path):
    from s2s_keras.portable import export
    from s2s_keras.run_dir import load_run

    config, model = load_run(run_dir)
    output = export(model, config, str(tmp_path / "litert"), "litert", batch_size=4)
    files = sorted(os.listdir(output))
    assert files == [
        "config.json",
        "model.tflite",
        "model_int8.tflite",
        "s2s_runtime.py",
        "vocabulary.json",
    ]
    # 11 words in batches of 4: the last batch padded with empty rows
    assert translate_without_tensorflow(output, "model.tflite") == greedy
    int8 = translate_without_tensorflow(output, "model_int8.tflite")
    assert len(int8) == len(WORDS) and int8[4] == int8[5] == ""
    sizes = {name: os.path.getsize(os.path.join(output, name)) for name in files}
    assert sizes["model_int8.tflite"] < sizes["model.tflite"]


def test_the_g2p_recipe_exports_the_same_greedy_outputs(tmp_path):
    from s2s_keras.portable import export
    from s2s_keras.run_dir import load_run

    # `g2p`'s shape: two encoder layers, one decoder layer attending over its outputs
    run_dir = train_run(tmp_path, "model.input_feeding=false", "model.encoder_num_layers=2")
    config, model = load_run(run_dir)
    output = export(model, config, str(tmp_path / "onnx"), "onnx")
    greedy = greedy_outputs(run_dir)
    assert sum(map(bool, greedy)) >= len(WORDS) // 2
    assert translate_without_tensorflow(output, "model.onnx") == greedy


def test_onnx_through_the_cli_equals_the_savedmodel_greedy_outputs(run_dir, greedy, tmp_path):
    output = str(tmp_path / "onnx")
    result = run_cli("export", "--format", "onnx", "--run-dir", run_dir, "--output", output)
    assert result.stdout.strip().endswith(output)
    assert translate_without_tensorflow(output, "model.onnx") == greedy
    with open(os.path.join(output, "vocabulary.json"), encoding="utf-8") as handle:
        vocabulary = json.load(handle)
    assert vocabulary["source"]["tokens"][:4] == ["", "[UNK]", "<s>", "</s>"]
    assert (vocabulary["max_input_length"], vocabulary["max_length"]) == (8, 12)
    assert vocabulary["batch_size"] is None


def test_the_reference_tokenizer_matches_the_model_tokenizer(run_dir):
    import numpy as np
    import tensorflow as tf

    from s2s_keras import s2s_runtime
    from s2s_keras.portable import tokenizer_spec
    from s2s_keras.run_dir import load_run
    from s2s_keras.text import Tokenizer

    config, model = load_run(run_dir)
    path = os.path.join(run_dir, "vocabulary-test.json")
    spec = {
        "source": tokenizer_spec(model.source_tokenizer),
        "target": tokenizer_spec(model.target_tokenizer),
        "max_input_length": 8,
    }
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(spec, handle)
    vocabulary = s2s_runtime.Vocabulary(path)
    ours = model.source_tokenizer.tokenize(tf.constant(WORDS), max_length=8).numpy()
    np.testing.assert_array_equal(vocabulary.encode(WORDS)[:, :-1], ours)
    ids = model.target_tokenizer.tokenize(tf.constant(["A B C", "F", ""])).numpy()
    ids = np.pad(ids, [[0, 0], [0, 1]], constant_values=3)  # an end id, then padding
    assert vocabulary.decode(np.pad(ids, [[0, 0], [0, 2]])) == ["A B C", "F", ""]
    # A right-to-left model's ids read back in reading order.
    backward = Tokenizer.from_config({**model.target_tokenizer.get_config(), "reverse": True})
    with open(path, "w", encoding="utf-8") as handle:
        json.dump({**spec, "target": tokenizer_spec(backward)}, handle)
    forward = ids[0, :3]
    ids = backward.tokenize(tf.constant(["A B C", "F", ""])).numpy()
    assert ids[0].tolist() == forward[::-1].tolist() != forward.tolist()
    ids = np.pad(ids, [[0, 0], [0, 1]], constant_values=3)
    assert s2s_runtime.Vocabulary(path).decode(ids) == ["A B C", "F", ""]


def test_what_the_portable_exports_refuse(run_dir, tmp_path):
    from s2s_keras.portable import export
    from s2s_keras.run_dir import load_run

    config, model = load_run(run_dir)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    with pytest.raises(ValueError, match="full: exists and is not an empty directory"):
        export(model, config, str(tmp_path / "full"), "onnx")
    wordpiece = config.override(["data.source_split=wordpiece"])
    with pytest.raises(ValueError, match="data.source_split=wordpiece has no reference"):
        export(model, wordpiece, str(tmp_path / "wp"), "litert")
    with pytest.raises(ValueError, match="--format: expected one of"):
        export(model, config, str(tmp_path / "x"), "coreml")
    result = run_cli("export", "--format", "litert", "--run-dir", run_dir, check=False)
    assert result.returncode == 2 and "--format litert needs --output" in result.stderr
    result = run_cli(
        "export", "--format", "onnx", "--fused", "--run-dir", run_dir, "--output", "x", check=False
    )
    assert result.returncode == 2 and "--fused is a savedmodel option" in result.stderr


def test_the_runtime_file_imports_only_numpy_and_the_runtimes():
    import ast

    with open(os.path.join(REPO, "s2s_keras", "s2s_runtime.py"), encoding="utf-8") as handle:
        tree = ast.parse(handle.read())
    imported = {
        (node.module if isinstance(node, ast.ImportFrom) else alias.name).split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for alias in node.names
    }
    standard = {"__future__", "json", "os", "unicodedata"}
    assert imported - standard == {"numpy", "onnxruntime", "ai_edge_litert"}
