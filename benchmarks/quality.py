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

`--right-to-left-seeds 1234` (with `--seeds`) also trains one run per seed with
`model.reverse_target=true` (in `RUN_DIR/r2l-seed-S`), and those rerank the ensemble's beam
(`benchmarks/rescore.py`, in its own process: the weight chosen on the validation split); the
JSON's `test` and `valid` are then the reranked ensemble's, `rescore` says how it was chosen and
what the beam alone scored, `members` lists the right-to-left runs too.

`--distill-from A B C` trains the preset as the student of those finished runs' ensemble:
`s2s distill` writes its data into `RUN_DIR/distilled` (reused when there), the student trains
on it in `RUN_DIR/student`; the JSON adds `distillation` (what `s2s distill` counted and its
seconds) and `teachers` (the ensemble's test scores).
"""

import argparse
import json
import os
import subprocess
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
        "--right-to-left-seeds",
        default=None,
        help="comma-separated train.seed values of right-to-left runs that rerank (see above)",
    )
    parser.add_argument(
        "--distill-from", nargs="+", default=None, help="teacher run dirs (see above)"
    )
    args = parser.parse_args()
    if args.right_to_left_seeds and not args.seeds:
        parser.error("--right-to-left-seeds reranks an ensemble: give --seeds too")
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
        reranking = {}
        if args.right_to_left_seeds:
            r2l_seeds = [int(seed) for seed in args.right_to_left_seeds.split(",")]
            r2l_dirs = [os.path.join(run_dir, f"r2l-seed-{seed}") for seed in r2l_seeds]
            r2l_overrides = [*args.overrides, "model.reverse_target=true"]
            members += [
                dict(
                    run(args.preset, args.data, r2l_dir, [*r2l_overrides, f"train.seed={seed}"]),
                    seed=seed,
                    right_to_left=True,
                )
                for seed, r2l_dir in zip(r2l_seeds, r2l_dirs)
            ]
            reranking = rescored(member_dirs, r2l_dirs, r2l_seeds)
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
        if reranking:
            report.update(reranking)
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


def rescored(run_dirs: list, r2l_dirs: list, r2l_seeds: list) -> dict:
    """`test`, `valid` and `rescore` of the report when right-to-left runs rerank `run_dirs`
    (`benchmarks/rescore.py` on the runs' own data)."""
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "rescore.py")
    command = [sys.executable, script, "--run-dir", *run_dirs, "--rescore", *r2l_dirs]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode:
        sys.exit(f"rescore.py failed:\n{result.stderr[-3000:]}")
    sweep = json.loads(result.stdout)
    best = str(sweep["best_weight_on_valid"])
    return {
        "test": sweep["test"][best],
        "valid": sweep["valid"][best],
        "rescore": {
            "right_to_left_seeds": r2l_seeds,
            "weight": sweep["best_weight_on_valid"],
            "valid_wer_by_weight": {w: r["wer"] for w, r in sweep["valid"].items()},
            "test_beam_alone": sweep["test"]["0.0"],
        },
    }


def evaluate(run_dirs: list, split: str, data: str | None) -> dict:
    """`s2s evaluate` on `data` (None: the runs' own)."""
    _, out = timed("evaluate", "--run-dir", *run_dirs, "--split", split, *data_option(data))
    return json.loads(out.strip().splitlines()[-1])


def data_option(data: str | None) -> list:
    return ["--data", data] if data else []


if __name__ == "__main__":
    main()
