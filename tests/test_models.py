import numpy as np
import tensorflow as tf

from conftest import REPO, run_python
from s2s_keras import Seq2Seq

INPUTS = {"source_ids": tf.constant([[4, 5, 6, 0], [7, 0, 0, 0]], tf.int32),
          "target_in_ids": tf.constant([[2, 4, 5], [2, 6, 0]], tf.int32)}


def test_build_shapes_and_config(tiny_model):
    logits = tiny_model(INPUTS)
    assert logits.shape == (2, 3, 4 + 4) and logits.dtype == tf.float32
    config = tiny_model.get_config()
    assert config["hidden_units"] == 8 and config["target_vocabulary"] == ["X", "Y", "Z", "W"]
    assert Seq2Seq.from_config(config).count_params() == tiny_model.count_params()


def test_decode_steps_reproduce_teacher_forced_logits(tiny_model):
    logits = tiny_model(INPUTS).numpy()
    state = tiny_model.encode(INPUTS["source_ids"])
    for t in range(3):
        step_logits, state = tiny_model.decode_step(INPUTS["target_in_ids"][:, t], state)
        np.testing.assert_allclose(step_logits.numpy()[0], logits[0, t], atol=1e-5)
    np.testing.assert_allclose(
        tiny_model.decode_step(INPUTS["target_in_ids"][1:, 0], tiny_model.encode(INPUTS["source_ids"][1:]))[0]
        .numpy()[0], logits[1, 0], atol=1e-5)


def test_padding_does_not_change_the_encoding(tiny_model):
    short = tiny_model.encode(tf.constant([[4, 5]]))
    padded = tiny_model.encode(tf.constant([[4, 5, 0, 0, 0]]))
    for (h1, c1), (h2, c2) in zip(short, padded):
        np.testing.assert_allclose(h1, h2, atol=1e-6)
        np.testing.assert_allclose(c1, c2, atol=1e-6)


def test_keras_file_reloads_in_another_process_with_identical_outputs(tiny_model, tmp_path):
    from s2s_keras.config import preset
    from s2s_keras.training import compile_model

    compile_model(tiny_model, preset("tiny"), steps_per_epoch=1)  # as saved by `s2s train`
    path = tmp_path / "model.keras"
    tiny_model.save(path)
    expected = tiny_model(INPUTS).numpy()
    np.save(tmp_path / "expected.npy", expected)
    out = run_python(f"""
import numpy as np, keras, tensorflow as tf
import s2s_keras
model = keras.saving.load_model({str(path)!r}, safe_mode=True)
assert type(model).__name__ == "Seq2Seq", type(model)
logits = model({{"source_ids": tf.constant({INPUTS['source_ids'].numpy().tolist()}),
                 "target_in_ids": tf.constant({INPUTS['target_in_ids'].numpy().tolist()})}})
np.testing.assert_array_equal(logits.numpy(), np.load({str(tmp_path / 'expected.npy')!r}))
print(model.source_tokenizer.vocabulary)
""", cwd=REPO)
    assert "['a', 'b', 'c', 'd', 'e', 'f']" in out


def test_reverse_source_encodes_the_reversed_tokens(tiny_model):
    reversing = Seq2Seq.from_config({**tiny_model.get_config(), "reverse_source": True})
    reversing.set_weights(tiny_model.get_weights())
    forward = tiny_model.encode(tf.constant([[6, 5, 4, 0]]))
    backward = reversing.encode(tf.constant([[4, 5, 6, 0]]))
    for (h1, c1), (h2, c2) in zip(forward, backward):
        np.testing.assert_allclose(h1, h2, atol=1e-6)
        np.testing.assert_allclose(c1, c2, atol=1e-6)


def test_mixed_bfloat16_keeps_float32_logits_and_round_trips(tiny_model, tmp_path):
    import keras

    model = Seq2Seq.from_config({**tiny_model.get_config(), "precision": "mixed_bfloat16"})
    assert model.encoder_layers[0].compute_dtype == "bfloat16"
    assert model.encoder_layers[0].cell.kernel.dtype == "float32"  # weights stay float32
    logits = model(INPUTS)
    assert logits.dtype == tf.float32
    step_logits, _ = model.decode_step(tf.constant([2, 2]), model.encode(INPUTS["source_ids"]))
    assert step_logits.dtype == tf.float32
    model.save(tmp_path / "bf16.keras")
    restored = keras.saving.load_model(tmp_path / "bf16.keras")
    assert restored.precision == "mixed_bfloat16"
    np.testing.assert_array_equal(restored(INPUTS).numpy(), logits.numpy())
