"""`s2s predict --model PATH`: one callable `list[str] -> list[str]` whatever PATH is."""

from __future__ import annotations

import os

import tensorflow as tf

from s2s_keras.config import Config


def load_predictor(path: str):
    """PATH: a run dir (`model.keras` + `config.json`), a `.keras` file (decode defaults from
    `config.py`), or a SavedModel version dir (its `serving_default` signature)."""
    if os.path.isfile(os.path.join(path, "saved_model.pb")):
        import tensorflow_text  # noqa: F401  (registers the ops the serving graph uses)

        signature = tf.saved_model.load(path).signatures["serving_default"]
        return lambda words: _decode(signature(inputs=tf.constant(words, tf.string))["outputs"])

    import keras

    from s2s_keras.inference import Translator
    from s2s_keras.training import load_run

    if os.path.isdir(path):
        config, model = load_run(path)
    elif path.endswith(".keras") and os.path.isfile(path):
        config, model = Config(), keras.saving.load_model(path)
    else:
        raise FileNotFoundError(f"--model {path!r}: expected a run dir, a .keras file or a SavedModel "
                                f"version dir (with saved_model.pb)")
    translator = Translator(model, config.decode.max_length, config.decode.max_input_length)
    return lambda words: _decode(translator(tf.constant(words, tf.string)))


def _decode(strings: tf.Tensor) -> list:
    return [text.decode("utf-8") for text in strings.numpy()]
