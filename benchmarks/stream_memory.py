"""Peak memory of `s2s train --set data.streaming=true` on a small and a 100x larger corpus.

    .venv/bin/python benchmarks/stream_memory.py --json [--pairs 20000 2000000] \
        [--set KEY=VALUE ...]

(`python -m s2s_keras.cli train ...` is `s2s train ...`.)

For each size, writes a synthetic corpus (word → its letters reversed, upper case, space
separated: `abc\\tC B A`) as gzip'd TSV shards plus small valid and test files (the same for
every size) into a temporary directory, then runs ONE `s2s train` process on it — the real
training path: the streamed vocabulary pass over every training pair (which also counts the
steps), then one full epoch of the `tiny` preset over every training pair, validation, saving.
Peak memory is that process' maximum resident set size (`os.wait4` rusage: the child alone).
Prints one JSON object with both runs and `ratio` = peak of the largest / peak of the smallest.
"""

import argparse
import gzip
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from host import host, measured  # noqa: E402

LETTERS = "abcdefghijklmnopqrstuvwxyz"
HELD_OUT = 1000  # pairs in each of valid and test, whatever the corpus size
# One epoch of the tiny model; the shuffle window equals the smaller corpus so that both runs
# hold a full one (memory grows with data.shuffle_buffer, which is the point: not with the corpus).
DEFAULT_SETS = [
    "train.epochs=1",
    "train.batch_size=256",
    "data.shuffle_buffer=20000",
    "train.backup_every_steps=0",
]


def pair(rng: random.Random) -> str:
    word = "".join(rng.choice(LETTERS) for _ in range(rng.randint(3, 10)))
    return f"{word}\t{' '.join(reversed(word.upper()))}\n"


def write_corpus(directory: str, pairs: int, shards: int, seed: int) -> dict:
    os.makedirs(directory, exist_ok=True)
    rng = random.Random(seed)
    for index in range(shards):
        count = pairs // shards + (1 if index < pairs % shards else 0)
        with gzip.open(
            os.path.join(directory, f"train-{index:03d}.tsv.gz"), "wt", compresslevel=1
        ) as handle:
            for _ in range(count // 10_000 + 1):
                handle.write("".join(pair(rng) for _ in range(min(10_000, count))))
                count -= min(10_000, count)
    held = random.Random(seed + 1)
    for split in ("valid", "test"):
        with open(os.path.join(directory, f"{split}.tsv"), "w") as handle:
            handle.write("".join(pair(held) for _ in range(HELD_OUT)))
    return {
        "train": os.path.join(directory, "train-*.tsv.gz"),
        "valid": os.path.join(directory, "valid.tsv"),
        "test": os.path.join(directory, "test.tsv"),
        "bytes_gzip": sum(
            os.path.getsize(os.path.join(directory, name)) for name in os.listdir(directory)
        ),
    }


def run(files: dict, run_dir: str, sets: list) -> dict:
    data = f"tsv:{files['train']},valid={files['valid']},test={files['test']}"
    command = [
        sys.executable,
        "-m",
        "s2s_keras.cli",
        "train",
        "--data",
        data,
        "--preset",
        "tiny",
        *[arg for value in sets for arg in ("--set", value)],
        "--run-dir",
        run_dir,
    ]
    log = os.path.join(os.path.dirname(run_dir), os.path.basename(run_dir) + ".log")
    start = time.time()
    with open(log, "w") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
    seconds = time.time() - start
    if os.waitstatus_to_exitcode(status):
        with open(log) as handle:
            sys.exit(f"{' '.join(command)} failed:\n{handle.read()[-3000:]}")
    with open(os.path.join(run_dir, "summary.json")) as handle:
        summary = json.load(handle)
    return {
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "seconds": round(seconds, 1),
        "pairs": summary["pairs"],
        "streamed": summary["streamed"],
        "steps_per_epoch": _steps(run_dir),
        "padding_fraction": summary["history"]["padding_fraction"],
        "loss": summary["history"]["loss"],
        "val_loss": summary["history"].get("val_loss"),
    }


def _steps(run_dir: str) -> int | None:
    with open(os.path.join(os.path.dirname(run_dir), os.path.basename(run_dir) + ".log")) as handle:
        for line in handle:
            if " steps per epoch" in line:
                return int(line.split(" steps per epoch")[0].rsplit(" ", 1)[1])
    return None


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, nargs="+", default=[20_000, 2_000_000])
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        help="more config overrides (after the defaults: " + " ".join(DEFAULT_SETS) + ")",
    )
    parser.add_argument(
        "--no-streaming", action="store_true", help="the in-memory path, for comparison"
    )
    parser.add_argument(
        "--workdir", default=None, help="default: a temporary directory, deleted after"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    workdir = args.workdir or tempfile.mkdtemp(prefix="stream-memory-")
    sets = [
        *DEFAULT_SETS,
        f"data.streaming={'false' if args.no_streaming else 'true'}",
        *args.overrides,
    ]
    runs = []
    try:
        for pairs in args.pairs:
            directory = os.path.join(workdir, f"corpus-{pairs}")
            start = time.time()
            files = write_corpus(directory, pairs, args.shards, seed=pairs)
            generated = time.time() - start
            result = run(files, os.path.join(workdir, f"run-{pairs}"), sets)
            runs.append(
                {
                    "corpus_pairs": pairs,
                    "corpus_gzip_mb": round(files["bytes_gzip"] / 2**20, 1),
                    "generate_seconds": round(generated, 1),
                    **result,
                }
            )
            print(json.dumps(runs[-1]), file=sys.stderr, flush=True)
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    smallest, largest = (
        min(runs, key=lambda r: r["corpus_pairs"]),
        max(runs, key=lambda r: r["corpus_pairs"]),
    )
    report = {
        "measure": "peak RSS of one `s2s train` process: streamed vocabulary pass over every "
        "training pair + one full epoch of preset tiny over every training pair",
        "overrides": sets,
        "shards": args.shards,
        "held_out_pairs": HELD_OUT,
        "runs": runs,
        "ratio": round(largest["peak_rss_mb"] / smallest["peak_rss_mb"], 3),
        "host": host(),
        "measured": measured(),
        "load_average": os.getloadavg(),
    }
    print(json.dumps(report) if args.json else json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
