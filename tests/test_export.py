import json
import os

import pytest

from conftest import run_python
from s2s_keras.config import preset
from s2s_keras.export import export


@pytest.fixture
def exported(tiny_model, tmp_path):
    base = tmp_path / "saved_models" / "g2p"
    return tiny_model, export(tiny_model, preset("tiny"), str(base)), base


def test_layout_versions_and_carried_config(exported, tiny_model):
    _, path, base = exported
    assert os.path.basename(path) == "1"
    assert os.path.isfile(os.path.join(path, "saved_model.pb"))
    with open(os.path.join(path, "assets.extra", "config.json")) as handle:
        assert json.load(handle)["preset"] == "tiny"
    assert os.path.isfile(os.path.join(path, "assets.extra", "model.keras"))
    second = export(tiny_model, preset("tiny"), str(base))
    assert os.path.basename(second) == "2"
    assert sorted(os.listdir(base)) == ["1", "2"]  # no staging directory left behind


def test_fresh_process_with_only_tensorflow_answers_strings(exported):
    model, path, _ = exported
    from s2s_keras.inference import Translator
    import tensorflow as tf

    words = ["abc", "Fed", "", "a" * 500, "zz☃é", "   "]
    config = preset("tiny").decode
    expected = Translator(model, config.max_length, config.max_input_length)(tf.constant(words)).numpy().tolist()
    out = run_python(f"""
import sys, json
sys.modules["s2s_keras"] = sys.modules["pipelines"] = None  # any import of our package fails
import tensorflow as tf, tensorflow_text  # noqa: F401
loaded = tf.saved_model.load({path!r})
serve = loaded.signatures["serving_default"]
result = serve(inputs=tf.constant({words!r}))["outputs"]
assert result.dtype == tf.string and result.shape == ({len(words)},), result
empty = serve(inputs=tf.constant([], tf.string))["outputs"]
assert empty.shape == (0,), empty
print(json.dumps([t.decode("utf-8") for t in result.numpy()]))
""", cwd=os.path.dirname(path))
    outputs = json.loads(out.strip().splitlines()[-1])
    assert outputs == [t.decode("utf-8") for t in expected]
    assert outputs[2] == "" and outputs[5] == ""  # empty / blank sources give ""
    assert all(len(o.split()) <= config.max_length for o in outputs)
