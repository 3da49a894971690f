"""Trains a preset on its data and reports test quality (the README's results tables).

    .venv/bin/python benchmarks/quality.py --preset attention [--set train.epochs=12] \
        [--data SPEC] [--run-dir runs/quality-attention] [--output benchmarks/results/quality-attention.json]

Runs `s2s train --preset P` (on the preset's own `data.source` unless `--data`) and
`s2s evaluate --split test` as separate processes, like a user would, and writes one JSON object:
preset, overrides, parameters, epochs run, train seconds (wall clock of `s2s train`, this machine)
and what `s2s evaluate` reports — test WER/PER for G2P (beam 5, every pronunciation a reference),
accuracy for a classifier, perplexity for a language model. A run dir that already holds a
finished run is evaluated again, not retrained.
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_train import timed  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--preset", required=True)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--data", default=None, help="default: the preset's data.source")
    parser.add_argument("--run-dir", default=None)
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    run_dir = args.run_dir or f"runs/quality-{args.preset}"
    sets = [arg for o in args.overrides for arg in ("--set", o)]
    train_seconds = None
    if not os.path.isfile(os.path.join(run_dir, "model.keras")):
        data = ["--data", args.data] if args.data else []
        train_seconds, _ = timed("train", *data, "--preset", args.preset, *sets, "--run-dir", run_dir)
    _, out = timed("evaluate", "--run-dir", run_dir, "--split", "test", *(["--data", args.data] if args.data else []))
    with open(os.path.join(run_dir, "summary.json")) as handle:
        summary = json.load(handle)
    report = {"preset": args.preset, "data": args.data, "overrides": args.overrides,
              "parameters": summary["parameters"],
              "epochs_run": len(summary["history"]["loss"]), "fit_seconds": summary["train_seconds"],
              "train_command_seconds": train_seconds, "test": json.loads(out.strip().splitlines()[-1]),
              "val_loss": summary["history"].get("val_loss"), "cpu_count": os.cpu_count()}
    text = json.dumps(report, indent=2)
    if args.output:
        os.makedirs(os.path.dirname(args.output), exist_ok=True)
        with open(args.output, "w") as handle:
            handle.write(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
