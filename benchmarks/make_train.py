"""Times the four steps of `make train` (train, evaluate, export, predict) and reports quality.

    .venv/bin/python benchmarks/make_train.py --json [--preset small] [--run-dir runs/bench-small]

Each step runs as its own `s2s` process, exactly as the Makefile runs it, so the total is the
wall-clock time a user waits after the virtualenv exists. Prints one JSON object.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from host import host, measured  # noqa: E402

BIN = os.path.dirname(sys.executable)


def timed(*args):
    start = time.time()
    result = subprocess.run([os.path.join(BIN, "s2s"), *args], capture_output=True, text=True)
    if result.returncode:
        sys.exit(f"s2s {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return time.time() - start, result.stdout


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--preset", default="small")
    parser.add_argument("--run-dir", default="runs/bench-small")
    parser.add_argument("--export-base", default="runs/bench-exports/g2p")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    shutil.rmtree(args.run_dir, ignore_errors=True)
    sets = [arg for o in args.overrides for arg in ("--set", o)]
    seconds = {}
    seconds["train"], _ = timed(
        "train", "--data", "cmudict", "--preset", args.preset, *sets, "--run-dir", args.run_dir
    )
    seconds["evaluate"], out = timed("evaluate", "--run-dir", args.run_dir, "--split", "test")
    quality = json.loads(out.strip().splitlines()[-1])
    seconds["export"], _ = timed(
        "export", "--run-dir", args.run_dir, "--export-base", args.export_base
    )
    seconds["predict"], predictions = timed(
        "predict", "--model", args.run_dir, "hello", "world", "keras"
    )
    with open(os.path.join(args.run_dir, "summary.json")) as handle:
        summary = json.load(handle)
    report = {
        "preset": args.preset,
        "overrides": args.overrides,
        "seconds": seconds,
        "total_seconds": sum(seconds.values()),
        "test": quality,
        "parameters": summary["parameters"],
        "epochs_run": len(summary["history"]["loss"]),
        "updates": summary["updates"],  # the last epoch may be cut short (train.max_minutes)
        "steps_per_epoch": summary["steps_per_epoch"],
        "train_padding_fraction": summary["train_padding_fraction"],
        "host": host(),
        "measured": measured(),
        "predictions": predictions.strip().splitlines(),
    }
    print(json.dumps(report) if args.json else json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
