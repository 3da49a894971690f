"""Whether reranking a beam's n-best with other runs pays (e.g. runs trained right to left,
`model.reverse_target=true`): the weight chosen on the validation split, then scored on the test
split.

    .venv/bin/python benchmarks/rescore.py --run-dir RUN [RUN ...] --rescore RUN [RUN ...] \
        [--weights 0,0.1,0.2,0.3,0.4,0.5,0.6,0.7] > benchmarks/results/rescore-NAME.json

The `--run-dir` runs (several: their ensemble, as `s2s evaluate`) decode each distinct source of
a split with beam search at their `decode.beam_size`, keeping the whole beam; forced decoding
gives every candidate its log-probability under them and under the `--rescore` runs (their
ensemble if several), once. Each weight w of `--weights` then picks, per source, the candidate
with the best `(1 - w) · theirs + w · the rescorers'` (`inference.Reranker`; `s2s evaluate
--rescore RUN --rescore-weight w` picks the same). The weight with the lowest validation WER and
w = 0 (the beam's own choice without a length penalty) are scored on the test split: the test
split never chooses. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
import tensorflow as tf

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from host import host, measured  # noqa: E402
from sweep import chosen_on_valid  # noqa: E402

from s2s_keras import pipelines  # noqa: E402
from s2s_keras.evaluation import evaluate_pairs  # noqa: E402
from s2s_keras.inference import Reranker, Translator  # noqa: E402
from s2s_keras.run_dir import load_runs  # noqa: E402


def weights(text: str) -> list:
    values = [float(value) for value in text.split(",")]
    if any(not 0 <= value <= 1 for value in values):
        raise argparse.ArgumentTypeError(f"weights must be in [0, 1]: {text!r}")
    return values


class Chosen:
    """What `evaluate_pairs` reads of a translator, answering from choices made beforehand."""

    def __init__(self, model, outputs: dict):
        self.model, self.outputs = model, outputs

    def translate(self, strings, beam_size):
        return tf.constant([self.outputs[s.decode("utf-8")] for s in strings.numpy()])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--run-dir", nargs="+", required=True)
    parser.add_argument("--rescore", nargs="+", required=True)
    parser.add_argument("--weights", type=weights, default=weights("0,0.1,0.2,0.3,0.4,0.5,0.6,0.7"))
    args = parser.parse_args()
    config, model, _ = load_runs(args.run_dir)
    _, scorer, _ = load_runs(args.rescore)
    reranker = Reranker(Translator(model, config.decode), Translator(scorer, config.decode), 0.0)
    corpus = pipelines.load_corpus(config.data)
    beam_size, batch_size = config.decode.beam_size, config.decode.batch_size

    def nbest(split: str) -> tuple:
        pairs = corpus.split(split)
        sources = sorted({source for source, _ in pairs})
        parts = []
        start = time.time()
        for first in range(0, len(sources), batch_size):
            batch = tf.constant(sources[first : first + batch_size])
            parts.append([x.numpy() for x in reranker.nbest(batch, beam_size)])
        seconds = time.time() - start
        print(f"[rescore] {split}: {len(sources)} sources, {seconds:.0f} s", file=sys.stderr)
        candidates, forward, other = (np.concatenate(p) for p in zip(*parts))
        return pairs, sources, candidates, forward, other

    def scored(weight: float, split: tuple) -> dict:
        pairs, sources, candidates, forward, other = split
        choice = np.argmax((1.0 - weight) * forward + weight * other, axis=1)
        outputs = {
            source: row[index].decode("utf-8")
            for source, row, index in zip(sources, candidates, choice)
        }
        result = evaluate_pairs(Chosen(model, outputs), pairs, batch_size, beam_size)
        changed = int(np.sum(choice != 0))
        return {
            **result,
            "beam_size": beam_size,
            "rescore_weight": weight,
            "changed_choices": changed,
        }

    splits = {name: nbest(name) for name in ("valid", "test")}
    report = {
        "run_dirs": args.run_dir,
        "rescore": args.rescore,
        "preset": config.preset,
        "beam_size": beam_size,
        **chosen_on_valid("weight", args.weights, lambda w, split: scored(w, splits[split])),
        "host": host(),
        "measured": measured(),
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
