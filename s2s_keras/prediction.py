"""`s2s predict --model PATH`: one callable `(words, beam_size, num_results) -> [[(text, score)]]`
whatever PATH is (run dir, `.keras` file or SavedModel version dir)."""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

from s2s_keras.config import Config


def load_predictor(path: str):
    """Returns `predict(words, beam_size, num_results)` → per word a list of `(text, score)`;
    `beam_size=None` uses the model's `decode.beam_size`.

    PATH: a run dir (`model.keras` + `config.json`), a `.keras` file (decode settings from
    `config.py`'s defaults), or a SavedModel version dir (its `nbest` signature, which is what
    TF Serving clients call)."""
    if os.path.isfile(os.path.join(path, "saved_model.pb")):
        import tensorflow_text  # noqa: F401  (registers the ops the serving graph uses)

        loaded = tf.saved_model.load(path)  # must outlive its functions (it owns the variables)

        def predict_saved_model(words, beam_size, num_results):
            n = len(words)
            options = {"num_results": tf.fill([n], num_results)}
            if beam_size is not None:  # else the exported default
                options["beam_size"] = tf.fill([n], beam_size)
            # The restored function (not `.signatures`) applies the exported defaults.
            result = loaded.nbest(inputs=tf.constant(words, tf.string), **options)
            return _pairs(result["outputs"], result["scores"])
        return predict_saved_model

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
    translator = Translator(model, config.decode)

    def predict_keras(words, beam_size, num_results):
        beam_size = config.decode.beam_size if beam_size is None else beam_size
        outputs, scores = translator.beam(tf.constant(words, tf.string), beam_size, config.decode.max_length,
                                          config.decode.length_penalty, num_results)
        return _pairs(outputs, scores)
    return predict_keras


def _pairs(outputs: tf.Tensor, scores: tf.Tensor) -> list:
    return [[(text.decode("utf-8"), float(score)) for text, score in zip(row_texts, row_scores)]
            for row_texts, row_scores in zip(outputs.numpy(), np.asarray(scores))]
