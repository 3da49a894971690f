"""`s2s predict` / `s2s plot attention --model PATH`: one object whatever PATH is (run dir,
`.keras` file or SavedModel version dir): `predictor(words, beam_size, num_results)` for n-best
lists and `predictor.score(sources, targets)` for forced decoding (and attention alignments).
A classifier gives a `LabelPredictions` (`predictor(texts)` → label + probabilities), a language
model a `Predictor` whose inputs are prompts and whose `score(texts)` takes one argument."""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

from s2s_keras.config import Config


class Predictor:
    """`predictor(words, beam_size, num_results)` → per word a list of `(text, score)`, best first
    (`beam_size=None`: the model's `decode.beam_size`); `predictor.score(sources, targets)` → the
    `score` signature's outputs as NumPy arrays (`alignment` and `source_tokens` for attention
    models). For a language model the words are prompts and `score(texts)` takes the texts."""

    def __init__(self, nbest, score, task: str = "seq2seq"):
        self._nbest = nbest
        self._score = score
        self.task = task

    def __call__(self, words, beam_size=None, num_results=1):
        outputs, scores = self._nbest(words, beam_size, num_results)
        return [
            [(text.decode("utf-8"), float(score)) for text, score in zip(row_texts, row_scores)]
            for row_texts, row_scores in zip(outputs.numpy(), np.asarray(scores))
        ]

    def score(self, *texts) -> dict:
        result = self._score(*(tf.constant(part, tf.string) for part in texts))
        return {name: value.numpy() for name, value in result.items()}


class LabelPredictions:
    """`predictor(texts)` → per text `(best label, {label: probability})`."""

    task = "classify"

    def __init__(self, classify):
        self._classify = classify

    def __call__(self, texts, beam_size=None, num_results=1):
        result = self._classify(tf.constant(texts, tf.string))
        classes = (
            [label.decode("utf-8") for label in result["classes"].numpy()[0]] if len(texts) else []
        )
        return [
            (label.decode("utf-8"), dict(zip(classes, map(float, row))))
            for label, row in zip(result["labels"].numpy(), result["probabilities"].numpy())
        ]


def load_predictor(path: str | list) -> Predictor:
    """PATH: a run dir (`model.keras` + `config.json`), a `.keras` file (decode settings from
    `config.py`'s defaults), or a SavedModel version dir (its `nbest` and `score` signatures,
    which is what TF Serving clients call); a list of several run dirs: their `Ensemble` (decode
    settings from the first)."""
    paths = [path] if isinstance(path, str) else list(path)
    if len(paths) > 1:
        not_runs = [p for p in paths if not os.path.isfile(os.path.join(p, "config.json"))]
        if not_runs:
            raise FileNotFoundError(
                f"--model {', '.join(map(repr, not_runs))}: an ensemble is made of run dirs "
                f"(with config.json and model.keras); `s2s export` them to serve it as one SavedModel"
            )
    path = paths[0]
    if os.path.isfile(os.path.join(path, "saved_model.pb")):
        import tensorflow_text  # noqa: F401  (registers the ops the serving graph uses)

        loaded = tf.saved_model.load(path)
        with open(os.path.join(path, "assets.extra", "config.json")) as handle:
            task = Config.from_json(handle.read()).task
        if task == "classify":
            predictor = LabelPredictions(lambda texts: loaded.serving_default(inputs=texts))
            predictor.loaded = loaded
            return predictor

        def nbest_saved_model(words, beam_size, num_results):
            n = len(words)
            options = {"num_results": tf.fill([n], num_results)}
            if beam_size is not None:  # else the exported default
                options["beam_size"] = tf.fill([n], beam_size)
            # The restored function (not `.signatures`) applies the exported defaults.
            result = (loaded.generate if task == "lm" else loaded.nbest)(
                inputs=tf.constant(words, tf.string), **options
            )
            return result["outputs"], result["scores"]

        score = (
            (lambda t: loaded.score(inputs=t))
            if task == "lm"
            else (lambda s, t: loaded.score(sources=s, targets=t))
        )
        predictor = Predictor(nbest_saved_model, score, task)
        predictor.loaded = loaded  # must outlive its functions (it owns the variables)
        return predictor

    import keras

    from s2s_keras.export import classifier_max_tokens
    from s2s_keras.inference import LabelPredictor, TextGenerator, Translator
    from s2s_keras.training import load_runs

    if os.path.isdir(path):
        config, model, _ = load_runs(paths)
        task = config.task
    elif path.endswith(".keras") and os.path.isfile(path):
        config, model = Config(), keras.saving.load_model(path)
        task = _task_of(model)
    else:
        raise FileNotFoundError(
            f"--model {path!r}: expected a run dir, a .keras file or a SavedModel "
            f"version dir (with saved_model.pb)"
        )
    if task == "classify":
        inference = LabelPredictor(model, classifier_max_tokens(model, config.decode))
        predictor = LabelPredictions(inference.classify)
        predictor.inference = inference  # a tf.function method holds its object only weakly
        return predictor
    translator = (
        TextGenerator(model, config.decode) if task == "lm" else Translator(model, config.decode)
    )

    def nbest_keras(words, beam_size, num_results):
        beam_size = config.decode.beam_size if beam_size is None else beam_size
        return translator.beam(
            tf.constant(words, tf.string),
            beam_size,
            config.decode.max_length,
            config.decode.length_penalty,
            num_results,
        )

    return Predictor(nbest_keras, translator.score, task)


def _task_of(model) -> str:
    from s2s_keras.models import Classifier, LanguageModel

    return (
        "classify"
        if isinstance(model, Classifier)
        else "lm"
        if isinstance(model, LanguageModel)
        else "seq2seq"
    )
