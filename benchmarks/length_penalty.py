"""Whether a length penalty pays in beam search: GNMT's α chosen on the validation split, then
scored on the test split.

    .venv/bin/python benchmarks/length_penalty.py --run-dir RUN [RUN ...] \
        [--alphas 0,0.2,0.4,0.6,0.8,1.0] > benchmarks/results/length-penalty-NAME.json

For each α of `--alphas` (`decode.length_penalty`: hypotheses ranked by log P / ((5 + len) / 6)^α;
0 ranks by the summed log-probability), beam search at the run's `decode.beam_size` over its
validation split (several run dirs: their ensemble, as `s2s evaluate`). The α with the lowest
validation WER and α = 0 are then scored on the test split: the test split never chooses.
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from host import host, measured  # noqa: E402
from sweep import chosen_on_valid  # noqa: E402

from s2s_keras import pipelines  # noqa: E402
from s2s_keras.run_dir import load_runs  # noqa: E402
from s2s_keras.tasks import get_task  # noqa: E402


def alphas(text: str) -> list:
    values = [float(value) for value in text.split(",")]
    if any(value < 0 for value in values):
        raise argparse.ArgumentTypeError(f"alphas must be >= 0: {text!r}")
    return values


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--run-dir", nargs="+", required=True)
    parser.add_argument("--alphas", type=alphas, default=alphas("0,0.2,0.4,0.6,0.8,1.0"))
    args = parser.parse_args()
    config, model, _ = load_runs(args.run_dir)
    task = get_task(config.task)
    corpus = pipelines.load_corpus(config.data)

    def scored(alpha: float, split: str) -> dict:
        decode = dataclasses.replace(config.decode, length_penalty=alpha)
        pairs = corpus.split(split)
        return task.evaluate(model, dataclasses.replace(config, decode=decode), pairs)

    report = {
        "run_dirs": args.run_dir,
        "preset": config.preset,
        "beam_size": config.decode.beam_size,
        **chosen_on_valid("alpha", args.alphas, scored),
        "host": host(),
        "measured": measured(),
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
