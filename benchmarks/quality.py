"""Trains a preset on its data and reports test and validation quality (docs/results.md and the
README's table are generated from its JSON).

    .venv/bin/python benchmarks/quality.py --preset attention [--set train.epochs=12] \
        [--data SPEC] [--run-dir runs/quality-attention] \
        [--output benchmarks/results/quality-attention.json]

Runs `s2s train --preset P` (on the preset's own `data.source` unless `--data`) and
`s2s evaluate --split test` / `--split valid` as separate processes, like a user would, and writes
one JSON object: preset, overrides, parameters, epochs run, train seconds (wall clock of `s2s
train`, this machine) and what `s2s evaluate` reports — WER/PER for G2P (beam 5, every
pronunciation a reference), accuracy for a classifier, perplexity for a language model. A run
dir that already holds a finished run is evaluated again, not retrained.

`--seeds 1234,2,3` trains one run per `train.seed` (in `RUN_DIR/seed-S`), evaluates each, then
their ensemble (`s2s evaluate --run-dir A B C`: probabilities averaged — seq2seq, classify or
lm); the JSON's `test` is the ensemble's, `members` each run's, `fit_seconds` their sum. A member
dir that already holds a finished run (e.g. a symlink to an earlier single-seed run) is reused.

`--distill-from A B C` trains the preset as the student of those finished runs' ensemble:
`s2s distill` writes its data into `RUN_DIR/distilled` (reused when there), the student trains
on it in `RUN_DIR/student`; the JSON adds `distillation` (what `s2s distill` counted and its
seconds) and `teachers` (the ensemble's test scores).
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from host import host, measured  # noqa: E402
from make_train import timed  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--preset", required=True)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--data", default=None, help="default: the preset's data.source")
    parser.add_argument("--run-dir", default=None)
    parser.add_argument("--output", default=None)
    parser.add_argument(
        "--seeds", default=None, help="comma-separated train.seed values: their ensemble"
    )
    parser.add_argument(
        "--distill-from", nargs="+", default=None, help="teacher run dirs (see above)"
    )
    args = parser.parse_args()
    run_dir = args.run_dir or f"runs/quality-{args.preset}"
    if args.distill_from:
        report = distilled(args, run_dir)
    elif args.seeds is None:
        report = run(args.preset, args.data, run_dir, args.overrides)
    else:
        seeds = [int(seed) for seed in args.seeds.split(",")]
        member_dirs = [os.path.join(run_dir, f"seed-{seed}") for seed in seeds]
        members = [
            dict(
                run(args.preset, args.data, member_dir, [*args.overrides, f"train.seed={seed}"]),
                seed=seed,
            )
            for seed, member_dir in zip(seeds, member_dirs)
        ]
        report = {
            "preset": args.preset,
            "data": args.data,
            "overrides": args.overrides,
            "seeds": seeds,
            "parameters": sum(m["parameters"] for m in members),
            "fit_seconds": sum(m["fit_seconds"] for m in members),
            "test": evaluate(member_dirs, "test", args.data),
            "valid": evaluate(member_dirs, "valid", args.data),
            "members": members,
            "host": host(),
            "measured": measured(),
        }
    text = json.dumps(report, indent=2)
    if args.output:
        os.makedirs(os.path.dirname(args.output), exist_ok=True)
        with open(args.output, "w") as handle:
            handle.write(text + "\n")
    print(text)


def run(preset: str, data: str | None, run_dir: str, overrides: list) -> dict:
    """Trains `run_dir` (on `data`, None: the preset's own) unless finished; its test result
    and training record."""
    sets = [arg for o in overrides for arg in ("--set", o)]
    train_seconds = None
    if not os.path.isfile(os.path.join(run_dir, "model.keras")):
        train_seconds, _ = timed(
            "train", *data_option(data), "--preset", preset, *sets, "--run-dir", run_dir
        )
    with open(os.path.join(run_dir, "summary.json")) as handle:
        summary = json.load(handle)
    return {
        "preset": preset,
        "data": data,
        "overrides": overrides,
        "parameters": summary["parameters"],
        "epochs_run": len(summary["history"]["loss"]),
        "fit_seconds": summary["train_seconds"],
        "train_command_seconds": train_seconds,
        "test": evaluate([run_dir], "test", data),
        "valid": evaluate([run_dir], "valid", data),
        "val_loss": summary["history"].get("val_loss"),
        "host": host(),
        "measured": measured(),
    }


def distilled(args, run_dir: str) -> dict:
    """The student of `args.distill_from` (see the module doc)."""
    data_dir = os.path.join(run_dir, "distilled")
    if not os.path.isfile(os.path.join(data_dir, "distill.json")):
        timed("distill", "--teacher", *args.distill_from, "--output", data_dir)
    with open(os.path.join(data_dir, "distill.json")) as handle:
        distillation = json.load(handle)
    teachers = evaluate(args.distill_from, "test", None)
    student_dir = os.path.join(run_dir, "student")
    report = run(args.preset, distillation["student_data"], student_dir, args.overrides)
    return {**report, "distillation": distillation, "teachers": teachers}


def evaluate(run_dirs: list, split: str, data: str | None) -> dict:
    """`s2s evaluate` on `data` (None: the runs' own)."""
    _, out = timed("evaluate", "--run-dir", *run_dirs, "--split", split, *data_option(data))
    return json.loads(out.strip().splitlines()[-1])


def data_option(data: str | None) -> list:
    return ["--data", data] if data else []


if __name__ == "__main__":
    main()
