"""`s2s predict` / `s2s plot attention --model PATH`: one object whatever PATH is (run dir,
`.keras` file or SavedModel version dir): `predictor(words, beam_size, num_results)` for n-best
lists and `predictor.score(sources, targets)` for forced decoding (and attention alignments)."""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

from s2s_keras.config import Config


class Predictor:
    """`predictor(words, beam_size, num_results)` → per word a list of `(text, score)`, best first
    (`beam_size=None`: the model's `decode.beam_size`); `predictor.score(sources, targets)` → the
    `score` signature's outputs as NumPy arrays (`alignment` and `source_tokens` for attention
    models)."""

    def __init__(self, nbest, score):
        self._nbest = nbest
        self._score = score

    def __call__(self, words, beam_size=None, num_results=1):
        outputs, scores = self._nbest(words, beam_size, num_results)
        return [[(text.decode("utf-8"), float(score)) for text, score in zip(row_texts, row_scores)]
                for row_texts, row_scores in zip(outputs.numpy(), np.asarray(scores))]

    def score(self, sources, targets) -> dict:
        result = self._score(tf.constant(sources, tf.string), tf.constant(targets, tf.string))
        return {name: value.numpy() for name, value in result.items()}


def load_predictor(path: str) -> Predictor:
    """PATH: a run dir (`model.keras` + `config.json`), a `.keras` file (decode settings from
    `config.py`'s defaults), or a SavedModel version dir (its `nbest` and `score` signatures,
    which is what TF Serving clients call)."""
    if os.path.isfile(os.path.join(path, "saved_model.pb")):
        import tensorflow_text  # noqa: F401  (registers the ops the serving graph uses)

        loaded = tf.saved_model.load(path)

        def nbest_saved_model(words, beam_size, num_results):
            n = len(words)
            options = {"num_results": tf.fill([n], num_results)}
            if beam_size is not None:  # else the exported default
                options["beam_size"] = tf.fill([n], beam_size)
            # The restored function (not `.signatures`) applies the exported defaults.
            result = loaded.nbest(inputs=tf.constant(words, tf.string), **options)
            return result["outputs"], result["scores"]

        predictor = Predictor(nbest_saved_model, lambda s, t: loaded.score(sources=s, targets=t))
        predictor.loaded = loaded  # must outlive its functions (it owns the variables)
        return predictor

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

    def nbest_keras(words, beam_size, num_results):
        beam_size = config.decode.beam_size if beam_size is None else beam_size
        return translator.beam(tf.constant(words, tf.string), beam_size, config.decode.max_length,
                               config.decode.length_penalty, num_results)

    return Predictor(nbest_keras, translator.score)
