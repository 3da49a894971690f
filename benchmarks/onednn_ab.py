"""Training speed with TensorFlow's oneDNN ops on and off (`TF_ENABLE_ONEDNN_OPTS`, read once
when TensorFlow is imported, so not switchable inside one process): `train_speed.py`'s
measurement of ours (no PyTorch, no keras-io) in alternating fresh processes.

    .venv/bin/python benchmarks/onednn_ab.py --units 256 --layers 1 --batch-size 128 \
        --pairs 40000 --rounds 3 [--precision float32] [--set KEY=VALUE ...] \
        > benchmarks/results/onednn-ab-avx2.json

Round i runs `on` (TF_ENABLE_ONEDNN_OPTS=1) then `off` (=0), or the reverse on odd rounds; each
run reports its second epoch's tokens/s (train_speed.py's timing, the same batches every run).
`on_over_off` is the ratio of each side's best run, `on_over_off_median` of the medians. What
`s2s_keras` picks where the variable is unset: `s2s_keras.onednn_default`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from host import host, measured  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SIDES = {"on": "1", "off": "0"}


def run(setting: str, args, extra: list) -> dict:
    command = [
        sys.executable,
        os.path.join(HERE, "train_speed.py"),
        *("--units", str(args.units), "--layers", str(args.layers)),
        *("--batch-size", str(args.batch_size), "--pairs", str(args.pairs)),
        *("--precision", args.precision, "--skip-torch", "--skip-kerasio", "--json"),
        *extra,
    ]
    environment = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": setting}
    done = subprocess.run(command, env=environment, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"train_speed.py failed ({setting}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--units", type=int, default=256)
    parser.add_argument("--layers", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--pairs", type=int, default=40000)
    parser.add_argument("--precision", choices=["float32", "mixed_bfloat16"], default="float32")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    extra = [item for pair in args.set for item in ("--set", pair)]
    runs = {side: [] for side in SIDES}
    for index in range(args.rounds):
        order = list(SIDES) if index % 2 == 0 else list(SIDES)[::-1]
        for side in order:
            runs[side].append(run(SIDES[side], args, extra))
    report = {
        "host": host(),
        "measured": measured(),
        "lstm_kernels": runs["on"][0]["lstm_kernels"],
        "units": args.units,
        "layers": args.layers,
        "batch_size": args.batch_size,
        "pairs": args.pairs,
        "precision": args.precision,
        "overrides": args.set,
        "rounds": args.rounds,
    }
    for side, reports in runs.items():
        assert all(r["onednn"] == (side == "on") for r in reports), f"{side}: setting not taken"
        rates = [r["ours"][args.precision]["tokens_per_s"] for r in reports]
        report[side] = {
            "tokens_per_s": rates,
            "seconds_per_epoch": [r["ours"][args.precision]["seconds_per_epoch"] for r in reports],
            "best_tokens_per_s": max(rates),
            "median_tokens_per_s": statistics.median(rates),
            "step_matmul_gflop_per_s": [r["step_matmul_gflop_per_s"] for r in reports],
        }
    report["on_over_off"] = report["on"]["best_tokens_per_s"] / report["off"]["best_tokens_per_s"]
    report["on_over_off_median"] = (
        report["on"]["median_tokens_per_s"] / report["off"]["median_tokens_per_s"]
    )
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
