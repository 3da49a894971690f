"""`s2s predict` / `s2s plot attention --model PATH`: one object whatever PATH is (run dir,
`.keras` file or SavedModel version dir), made by the model's task (`Task.predictor`,
`Task.saved_model_predictor`): a `SequencePredictor` (seq2seq, lm: `predictor(words, beam_size,
num_results)` n-best lists, `predictor.score(...)` forced decoding and attention alignments) or
a `LabelPredictions` (classify: `predictor(texts)` → label + probabilities). Each prints its
own `lines(...)` for the CLI."""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

from s2s_keras.config import Config
from s2s_keras.export import load_saved_model, versions


class SequencePredictor:
    """`predictor(words, beam_size, num_results)` → per word a list of `(text, score)`, best first
    (`beam_size=None`: the model's `decode.beam_size`); `predictor.score(sources, targets)` → the
    `score` signature's outputs as NumPy arrays (`alignment` and `source_tokens` for attention
    models). For a language model the words are prompts and `score(texts)` takes the texts."""

    def __init__(self, nbest, score):
        self._nbest = nbest
        self._score = score

    @classmethod
    def of_decoder(cls, decoder, reranker=None) -> "SequencePredictor":
        """Over an `inference.SequenceDecoder` (a Keras model's); with an `inference.Reranker`
        over it, the n-best come in its order, with its scores."""
        decode = decoder.decode

        def nbest(words, beam_size, num_results):
            beam_size = decode.beam_size if beam_size is None else beam_size
            if reranker is not None:
                return reranker.ranked(tf.constant(words, tf.string), beam_size, num_results)
            return decoder.beam(
                tf.constant(words, tf.string),
                beam_size,
                decode.max_length,
                decode.length_penalty,
                num_results,
            )

        predictor = cls(nbest, decoder.score)
        predictor.reranker = reranker  # its scorer's tf.functions hold their objects weakly
        return predictor

    @classmethod
    def of_saved_model(cls, loaded, beam_function, score) -> "SequencePredictor":
        """Over a loaded SavedModel's beam signature (`nbest` or `generate`) and `score`."""

        def nbest(words, beam_size, num_results):
            n = len(words)
            options = {"num_results": tf.fill([n], num_results)}
            if beam_size is not None:  # else the exported default
                options["beam_size"] = tf.fill([n], beam_size)
            # The restored function (not `.signatures`) applies the exported defaults.
            result = beam_function(inputs=tf.constant(words, tf.string), **options)
            return result["outputs"], result["scores"]

        predictor = cls(nbest, score)
        predictor.loaded = loaded  # must outlive its functions (it owns the variables)
        return predictor

    def __call__(self, words, beam_size=None, num_results=1):
        outputs, scores = self._nbest(words, beam_size, num_results)
        return [
            [(text.decode("utf-8"), float(score)) for text, score in zip(row_texts, row_scores)]
            for row_texts, row_scores in zip(outputs.numpy(), np.asarray(scores))
        ]

    def score(self, *texts) -> dict:
        result = self._score(*(tf.constant(part, tf.string) for part in texts))
        return {name: value.numpy() for name, value in result.items()}

    def lines(self, words, beam_size=None, num_results=1) -> list:
        """`word<TAB>output` (with `num_results > 1`: `word<TAB>output<TAB>score` each)."""
        lines = []
        for word, results in zip(words, self(words, beam_size, num_results)):
            if num_results == 1:
                lines.append(f"{word}\t{results[0][0]}")
            else:
                lines += [f"{word}\t{text}\t{score:.4f}" for text, score in results]
        return lines


class LabelPredictions:
    """`predictor(texts)` → per text `(best label, {label: probability})`."""

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

    def lines(self, texts, beam_size=None, num_results=1) -> list:
        """`text<TAB>label<TAB>probability`."""
        return [
            f"{text}\t{label}\t{probabilities[label]:.4f}"
            for text, (label, probabilities) in zip(texts, self(texts))
        ]


def _versions(base: str) -> list:
    """The SavedModel version dirs under `base` (`<base>/<integer>/saved_model.pb`), in order."""
    return [
        os.path.join(base, str(n))
        for n in versions(base)
        if os.path.isfile(os.path.join(base, str(n), "saved_model.pb"))
    ]


def load_predictor(
    path: str | list, rescore: list | None = None, rescore_weight: float | None = None
):
    """PATH: a run dir (`model.keras` + `config.json`; `pretrained:NAME`: a shipped one), a
    `.keras` file (decode settings from `config.py`'s defaults), or a SavedModel version dir
    (its signatures, which is what TF Serving clients call); a list of several run dirs: their
    `Ensemble` (decode settings from the first). `rescore`: run dirs whose model (or ensemble)
    reranks the beam (seq2seq, not a SavedModel: export it with `--rescore` instead; a run dir
    that carries a `rescore/` run reranks with it by default: `run_dir.rescore_dirs`), with
    `rescore_weight` (None: `decode.rescore_weight`)."""
    from s2s_keras.pretrained import resolve
    from s2s_keras.run_dir import is_run_dir
    from s2s_keras.tasks import get_task, task_of_model

    paths = [resolve(p) for p in ([path] if isinstance(path, str) else list(path))]
    if len(paths) > 1:
        not_runs = [p for p in paths if not is_run_dir(p)]
        if not_runs:
            raise FileNotFoundError(
                f"--model {', '.join(map(repr, not_runs))}: an ensemble is made of run dirs "
                f"(with config.json and model.keras); `s2s export` them to serve it as one "
                f"SavedModel"
            )
    path = paths[0]
    if os.path.isfile(os.path.join(path, "saved_model.pb")):
        if rescore:
            raise ValueError(
                f"--rescore with --model {path}: a SavedModel reranks as it was exported "
                "(s2s export --rescore)"
            )
        loaded = load_saved_model(path)
        with open(os.path.join(path, "assets.extra", "config.json")) as handle:
            task = get_task(Config.from_json(handle.read()).task)
        return task.saved_model_predictor(loaded)

    import keras

    from s2s_keras.run_dir import load_rescorer, load_runs

    versions = _versions(path)
    if versions and not is_run_dir(path):
        raise FileNotFoundError(
            f"--model {path}: {path} holds SavedModel versions; give one, e.g. {versions[-1]}"
        )

    if os.path.isdir(path):
        config, model, _ = load_runs(paths)
        task = get_task(config.task)
    elif path.endswith(".keras") and os.path.isfile(path):
        config, model = Config(), keras.saving.load_model(path)
        task = task_of_model(model)
    else:
        raise FileNotFoundError(
            f"--model {path!r}: expected a run dir, a .keras file or a SavedModel "
            f"version dir (with saved_model.pb)"
        )
    rescorer = load_rescorer(paths, rescore)
    if rescore_weight is not None:
        config = config.override([f"decode.rescore_weight={rescore_weight}"])
    return task.predictor(model, config, rescorer)
