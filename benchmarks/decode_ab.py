"""Decoding speed of this tree against another checkout of the package (or of its fused export
against its default one), interleaved on one host.

    .venv/bin/python benchmarks/decode_ab.py --baseline ../baseline --run-dir runs/bench-lstm \
        --rounds 2 [--saved-model-only] --json > benchmarks/results/decode-ab.json

    .venv/bin/python benchmarks/decode_ab.py --fused --run-dir runs/bench-lstm --rounds 4 \
        [--saved-model-only] --json

    .venv/bin/python benchmarks/decode_ab.py --baseline ../baseline --export fused --rounds 2 --json

    .venv/bin/python benchmarks/decode_ab.py --pool benchmarks/results/decode-ab-*.json

Runs `benchmarks/decode_speed.py --skip-torch` (the SavedModel's greedy and beam 5 words/s at
batch 1 and 256, single-word latency) from each tree in turn, A B A B ..., each in a process of
its own with the same model and words, so that a change of the decoding code can be compared
with what it replaced on the same machine in the same minutes. `--fused` compares this tree's
fused export (`s2s export --fused`, "this") with its default one ("baseline"), which every
run of `decode_speed.py` measures one after the other in its process. `--export fused` compares
the two trees' fused exports instead of their default ones (each tree's kernels built in it:
`lstm_kernels.build` there). Reports every run and,
per measure, the median of each side and their ratio (this over the baseline: above 1 is
faster, for latency below 1 is faster). `--pool` reads such reports (of one host) and gives the
medians and ratios over all their runs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from host import host  # noqa: E402


def commit(tree: str) -> str:
    """The checked-out commit of `tree` (with `+changes` when its files differ from it)."""
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=tree, capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        cwd=tree,
        capture_output=True,
        text=True,
    ).stdout.strip()
    return head + ("+changes" if dirty else "")


def measures(report: dict, export: str = "saved_model") -> dict:
    saved = report[export]
    return {
        "greedy_batch_1": saved["greedy_words_per_s"]["batch_1"],
        "greedy_batch_256": saved["greedy_words_per_s"]["batch_256"],
        "beam5_batch_1": saved["beam5_words_per_s"]["batch_1"],
        "beam5_batch_256": saved["beam5_words_per_s"]["batch_256"],
        "latency_greedy_p50_ms": saved["latency_ms"]["greedy"]["p50"],
        "latency_beam5_p50_ms": saved["latency_ms"]["serving_default_beam5"]["p50"],
    }


def compare(runs: dict) -> dict:
    """Per measure, each side's median over `runs` and this tree's over the baseline's."""
    medians = {
        name: {key: statistics.median(r[key] for r in rows) for key in rows[0]}
        for name, rows in runs.items()
    }
    ratios = {key: medians["this"][key] / medians["baseline"][key] for key in medians["this"]}
    return {"median": medians, "this_over_baseline": ratios}


def pool(paths: list) -> dict:
    reports = [json.load(open(path)) for path in paths]
    hosts = {json.dumps(report["host"], sort_keys=True) for report in reports}
    if len(hosts) != 1:
        raise ValueError(f"--pool: the reports come from different hosts: {sorted(hosts)}")
    runs = {
        name: [row for report in reports for row in report["runs"][name]]
        for name in ("baseline", "this")
    }
    return {
        "host": reports[0]["host"],
        "reports": paths,
        "commits": [report.get("commits") for report in reports],
        "rounds": len(runs["this"]),
        **compare(runs),
    }


def run(tree: str, run_dir: str, saved_model_only: bool = False) -> dict:
    """`decode_speed.py`'s report from `tree`."""
    script = os.path.join(tree, "benchmarks", "decode_speed.py")
    command = [
        sys.executable,
        script,
        "--run-dir",
        os.path.abspath(run_dir),
        "--skip-torch",
        *(["--saved-model-only"] if saved_model_only else []),
        "--json",
    ]
    completed = subprocess.run(command, capture_output=True, text=True, cwd=tree)
    if completed.returncode:
        raise RuntimeError(f"{' '.join(command)} failed:\n{completed.stderr[-3000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--baseline", help="another checkout of the repository")
    parser.add_argument("--pool", nargs="+", help="reports of this script to combine")
    parser.add_argument("--run-dir", default="runs/bench-lstm")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--saved-model-only",
        action="store_true",
        help="decode_speed.py's measures of the SavedModel alone (any model, attention too)",
    )
    parser.add_argument(
        "--fused",
        action="store_true",
        help="this tree's fused export against its default one, instead of --baseline",
    )
    parser.add_argument(
        "--export",
        choices=("default", "fused"),
        default="default",
        help="with --baseline: which export of each tree to compare",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.pool:
        print(json.dumps(pool(args.pool), indent=None if args.json else 2))
        return
    if args.fused and args.baseline:
        parser.error("--fused compares this tree's two exports: give it or --baseline, not both")
    if args.fused:
        this = os.path.dirname(HERE)
        runs = {"baseline": [], "this": []}
        for _ in range(args.rounds):
            report = run(this, args.run_dir, args.saved_model_only)
            if "fused_saved_model" not in report:
                raise RuntimeError("--fused: decode_speed.py measured no fused export here")
            runs["baseline"].append(measures(report))
            runs["this"].append(measures(report, "fused_saved_model"))
        commits = {"baseline": commit(this) + " (default export)", "this": "fused export"}
    else:
        if not args.baseline:
            parser.error("--baseline is required (or --fused, or --pool)")
        trees = {"baseline": os.path.abspath(args.baseline), "this": os.path.dirname(HERE)}
        export = "fused_saved_model" if args.export == "fused" else "saved_model"
        runs = {name: [] for name in trees}
        for _ in range(args.rounds):
            for name, tree in trees.items():
                report = run(tree, args.run_dir, args.saved_model_only)
                if export not in report:
                    raise RuntimeError(f"--export fused: {tree} measured no fused export")
                runs[name].append(measures(report, export))
        commits = {name: f"{commit(tree)} ({args.export} export)" for name, tree in trees.items()}
    report = {
        "host": host(),
        "run_dir": args.run_dir,
        "commits": commits,
        "runs": runs,
        **compare(runs),
    }
    print(json.dumps(report) if args.json else json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
