"""Greedy decoding through each export format, same words, same machine, one run: words/s at
batch 1 and 256, file size, and agreement with the SavedModel.

    .venv/bin/python benchmarks/portable_speed.py --model pretrained:g2p --words 1000 \
        [--output benchmarks/results/portable-speed.json]

Exports the model as a SavedModel (its `greedy` signature: strings in, strings out), LiteRT
float32 and int8 (batch fixed at 1 and at 256: one export each) and ONNX, then runs each format
in a process of its own — the LiteRT and ONNX ones without TensorFlow, through the exported
`s2s_runtime.py`, tokenization included — over the same test words (`pretrained.sample` of
the test split). Reports per format: words/s one word at a time (the first `--single` words)
and in batches of 256 (all words, best of `--rounds`), the model file's bytes, how many outputs
equal the SavedModel's greedy outputs, and the WER against the test references (every
pronunciation counts), so that the int8 model's loss is a number.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from host import host, measured  # noqa: E402

BATCH = 256


def worker(fmt: str, path: str, words_file: str, single: int, rounds: int) -> dict:
    """Runs in its own process: outputs and timings of one format."""
    with open(words_file, encoding="utf-8") as handle:
        words = json.load(handle)
    if fmt == "savedmodel":
        import tensorflow as tf
        import tensorflow_text  # noqa: F401

        loaded = tf.saved_model.load(path)

        def translate(batch):
            outputs = loaded.greedy(inputs=tf.constant(batch))["outputs"].numpy()
            return [text.decode("utf-8") for text in outputs]
    else:
        sys.path.insert(0, os.path.dirname(path))
        import s2s_runtime

        translate = s2s_runtime.load(path)
    translate(words[:2])  # warm up (tracing, allocation)
    start = time.perf_counter()
    for word in words[:single]:
        translate([word])
    one = single / (time.perf_counter() - start)
    outputs, best = None, 0.0
    for _ in range(rounds):
        start = time.perf_counter()
        result = []
        for index in range(0, len(words), BATCH):
            result += translate(words[index : index + BATCH])
        best = max(best, len(words) / (time.perf_counter() - start))
        outputs = result
    return {
        "words_per_s_batch_1": one,
        "words_per_s_batch_256": best,
        "outputs": outputs,
        "tensorflow_imported": "tensorflow" in sys.modules,
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="pretrained:g2p", help="a run dir or pretrained:NAME")
    parser.add_argument("--words", type=int, default=1000)
    parser.add_argument("--single", type=int, default=200, help="words timed one at a time")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--output", default=None)
    parser.add_argument(
        "--worker", nargs=3, metavar=("FORMAT", "PATH", "WORDS"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(*args.worker, args.single, args.rounds)))
        return

    from s2s_keras import pipelines, pretrained
    from s2s_keras.evaluation import error_rates
    from s2s_keras.export import export
    from s2s_keras.portable import export as export_portable
    from s2s_keras.run_dir import load_run

    config, model = load_run(args.model)
    pairs = pretrained.sample(pipelines.load_corpus(config.data).test, args.words)
    references = {}
    for source, target in pairs:
        references.setdefault(source, []).append(target.split())
    words = sorted(references)
    with tempfile.TemporaryDirectory() as base:
        paths = {"savedmodel": export(model, config, os.path.join(base, "saved"))}
        for batch in (1, BATCH):
            directory = export_portable(
                model, config, os.path.join(base, f"lite{batch}"), "litert", batch
            )
            paths[f"litert_fp32_batch{batch}"] = os.path.join(directory, "model.tflite")
            paths[f"litert_int8_batch{batch}"] = os.path.join(directory, "model_int8.tflite")
        directory = export_portable(model, config, os.path.join(base, "onnx"), "onnx")
        paths["onnx"] = os.path.join(directory, "model.onnx")
        words_file = os.path.join(base, "words.json")
        with open(words_file, "w", encoding="utf-8") as handle:
            json.dump(words, handle)
        runs = {}
        for name, path in paths.items():
            fmt = "savedmodel" if name == "savedmodel" else "portable"
            command = [sys.executable, __file__, "--worker", fmt, path, words_file]
            command += ["--single", str(args.single), "--rounds", str(args.rounds)]
            result = subprocess.run(command, capture_output=True, text=True)
            if result.returncode:
                sys.exit(f"{name} failed:\n{result.stderr[-3000:]}")
            runs[name] = json.loads(result.stdout.strip().splitlines()[-1])
            runs[name]["bytes"] = _size(path)
    reference = runs["savedmodel"]["outputs"]
    report = {
        "host": host(),
        "measured": measured(),
        "model": args.model,
        "words": len(words),
        "single_words": args.single,
        "formats": {},
    }
    for name, run in runs.items():
        outputs = run.pop("outputs")
        hypotheses = {word: output.split() for word, output in zip(words, outputs)}
        scores = error_rates(hypotheses, references)
        report["formats"][name] = {
            **run,
            "equal_to_savedmodel": sum(a == b for a, b in zip(outputs, reference)),
            "greedy_wer": scores["wer"],
            "greedy_per": scores["per"],
            "differences": [
                {"word": w, "savedmodel": b, "this": a}
                for w, a, b in zip(words, outputs, reference)
                if a != b
            ][:20],
        }
    text = json.dumps(report, indent=2)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")
    print(text)


def _size(path: str) -> int:
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(
        os.path.getsize(os.path.join(root, name))
        for root, _, names in os.walk(path)
        for name in names
        if "assets.extra" not in root  # the .keras copy and warmup requests beside the graph
    )


if __name__ == "__main__":
    main()
