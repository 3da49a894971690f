"""Decoding speed of an exported model, next to a PyTorch eager loop and the keras-io recipe.

    .venv/bin/pip install -r benchmarks/requirements.txt      # torch, for the reference
    .venv/bin/python benchmarks/decode_speed.py --run-dir runs/bench-lstm --json

Measures, on the same words (CMUdict test-split words):
  - words/second through the loaded SavedModel (what TF Serving runs): `greedy` and the
    `nbest` signature with beam 5, at batch 1 and batch 256;
  - p50/p99 latency of single-word requests (`serving_default`, beam 5, and `greedy`);
  - a PyTorch eager greedy loop over the SAME weights (nn.LSTM + nn.Linear, copied from the
    Keras model; its outputs are checked against ours), batch 256, fp32 and bf16 autocast, in a
    process of its own (`torch_reference.py decode`: in TensorFlow's process PyTorch runs
    slower and erratically on 2 cores, see `train_speed.py`);
  - the keras-io `lstm_seq2seq` style: separate encoder/decoder Keras models and one
    `predict()` call per output token, batch 256;
  - useful GFLOP/s of greedy at batch 256 (forward matmuls of the real tokens), next to the
    measured matmul peak (4096², fp32 and bf16) and the speed of the recurrent step's own
    [256, units] × [units, 4·units] matmul in TensorFlow: how far each side is from the limit.
The same measures of the fused SavedModel (`export(fused=True)`: the LSTM loops on s2s_keras'
kernels; not for TF Serving) where the kernels load, with how many of its greedy and beam-5
outputs equal the default export's. `--saved-model-only` measures the SavedModels alone: any
model, attention or not (the other measures rebuild the network as an LSTM encoder-decoder
without attention, `--preset lstm`). A run that reranks its beam (`--rescore RUN...`, or the
`rescore/` run it carries, as `s2s export`) is exported reranked too: what `serving_default`
costs then (words/s at batch 1 and 256, one-word latency) and how many of its outputs differ
from the beam's own best.
Timings exclude the first call (tracing/warm-up). Sources are pre-tokenized for PyTorch and
keras-io (which favours them); the SavedModel timings include tokenization and detokenization.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402
import tensorflow_text  # noqa: E402,F401

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from batch_file import save_model_arrays, words_per_second  # noqa: E402  (benchmarks/, the script's directory)
from host import host, measured  # noqa: E402
from train_speed import matmul_peak_gflops, step_matmul_gflops, training_flops  # noqa: E402

from s2s_keras import pipelines  # noqa: E402
from s2s_keras.export import KERNELS_FILE, export, load_saved_model  # noqa: E402
from s2s_keras.layers import lstm_kernels  # noqa: E402
from s2s_keras.run_dir import load_rescorer, load_run, read_summary  # noqa: E402
from s2s_keras.text import END_ID, START_ID  # noqa: E402


def latencies_ms(call, words, count):
    call(words[:1])
    times = []
    for word in words[:count]:
        start = time.perf_counter()
        call([word])
        times.append((time.perf_counter() - start) * 1000)
    return {"p50": float(np.percentile(times, 50)), "p99": float(np.percentile(times, 99))}


def saved_model_benchmarks(path, words, latency_count):
    loaded = load_saved_model(path)

    def greedy(batch):
        return loaded.greedy(inputs=tf.constant(batch))["outputs"]

    def beam5(batch):
        n = len(batch)
        return loaded.nbest(
            inputs=tf.constant(batch), beam_size=tf.fill([n], 5), num_results=tf.fill([n], 1)
        )["outputs"]

    def best(batch):
        return loaded.signatures["serving_default"](inputs=tf.constant(batch))["outputs"]

    result = {"greedy_words_per_s": {}, "beam5_words_per_s": {}}
    for batch_size in (1, 256):
        for name, call in (("greedy", greedy), ("beam5", beam5)):
            result[f"{name}_words_per_s"][f"batch_{batch_size}"] = words_per_second(
                lambda rows, call=call: call(words[rows]), len(words), batch_size
            )
    result["latency_ms"] = {
        "serving_default_beam5": latencies_ms(best, words, latency_count),
        "greedy": latencies_ms(greedy, words, latency_count),
    }
    outputs = {name: decoded(call, words) for name, call in (("greedy", greedy), ("beam5", beam5))}
    return result, outputs


def decoded(call, words) -> list:
    """`call`'s output string for each of `words`, in batches of 256."""
    return [
        o.decode()
        for start in range(0, len(words), 256)
        for o in np.reshape(call(words[start : start + 256]).numpy(), [-1])
    ]


def reranked_benchmarks(path, words, latency_count, beam_outputs):
    """`serving_default` of an export that reranks its beam: words/s, one-word latency, and how
    many outputs differ from `beam_outputs` (the beam's own best, the default export's)."""
    loaded = load_saved_model(path)

    def best(batch):
        return loaded.signatures["serving_default"](inputs=tf.constant(batch))["outputs"]

    outputs = decoded(best, words)
    return {
        "serving_default_words_per_s": {
            f"batch_{batch_size}": words_per_second(
                lambda rows: best(words[rows]), len(words), batch_size
            )
            for batch_size in (1, 256)
        },
        "latency_ms": {"serving_default_beam5": latencies_ms(best, words, latency_count)},
        "outputs_changed_by_reranking": sum(a != b for a, b in zip(outputs, beam_outputs)),
    }


def model_arrays(model) -> dict:
    """The Keras model's weights by the names `torch_reference.TorchSeq2Seq.load_keras_weights`
    reads."""
    arrays = {
        "source_embedding": model.source_embedding.embeddings.numpy(),
        "target_embedding": model.target_embedding.embeddings.numpy(),
    }
    for side, layers in (("encoder", model.encoder_layers), ("decoder", model.decoder_layers)):
        for index, layer in enumerate(layers):
            for name, weight in zip(("kernel", "recurrent", "bias"), layer.cell.weights):
                arrays[f"{side}_{index}_{name}"] = weight.numpy()
    arrays["projection_kernel"], arrays["projection_bias"] = (
        w.numpy() for w in model.output_projection.weights
    )
    return arrays


def torch_benchmarks(model, words, max_length, reference_outputs, batch_size=256):
    """The PyTorch eager greedy loop over the same weights and words, in a process of its own
    (`torch_reference.py decode`); its first batch's outputs are checked against ours."""
    unsupported = [
        name
        for name, value in (
            ("attention", model.attention != "none"),
            ("bidirectional", model.bidirectional),
            ("cell", model.cell != "lstm"),
            ("learn_initial_state", model.learn_initial_state),
        )
        if value
    ]
    if unsupported or model.encoder_num_layers not in (0, model.num_layers):  # 0: num_layers
        raise ValueError(
            "decode_speed.py: the PyTorch reference is a plain LSTM encoder-decoder; this model "
            f"has {unsupported or ['encoder_num_layers']} (use --skip-torch)"
        )
    ids = model.source_tokenizer.tokenize(tf.constant(words)).numpy()
    meta = {
        "embedding_size": model.embedding_size,
        "units": model.hidden_units,
        "layers": model.num_layers,
        "reverse_source": model.reverse_source,
        "source_vocabulary_size": model.source_tokenizer.vocabulary_size,
        "target_vocabulary_size": model.target_tokenizer.vocabulary_size,
        "batch_size": batch_size,
        "max_length": max_length,
        "start_id": START_ID,
        "end_id": END_ID,
    }
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "model.npz")
        save_model_arrays(path, {**model_arrays(model), "source_ids": ids}, meta)
        command = [
            sys.executable,
            os.path.join(os.path.dirname(os.path.abspath(__file__)), "torch_reference.py"),
            "decode",
            path,
        ]
        completed = subprocess.run(command, capture_output=True, text=True)
    if completed.returncode:
        raise RuntimeError(f"{' '.join(command)} failed:\n{completed.stderr[-3000:]}")
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    out = np.array(result.pop("first_batch_fp32_ids"), np.int32)
    texts = [o.decode() for o in model.target_tokenizer.detokenize(tf.constant(out)).numpy()]
    result["fp32_outputs_equal_ours"] = float(
        np.mean([a == b for a, b in zip(texts, reference_outputs)])
    )
    return result


def keras_io_benchmark(model, words, max_length):
    """keras-io lstm_seq2seq: an encoder model and a decoder model, `predict()` per token."""
    import keras

    source = keras.Input((None,), dtype="int32")
    encoder_model = keras.Model(
        source, [t for layer_state in model.encode(source) for t in layer_state]
    )
    token = keras.Input((1,), dtype="int32")
    states = [keras.Input((model.hidden_units,)) for _ in range(2 * model.num_layers)]
    x = model.target_embedding(token)
    new_states = []
    for index, layer in enumerate(model.decoder_layers):
        x, h, c = layer(x, initial_state=states[2 * index : 2 * index + 2])
        new_states += [h, c]
    decoder_model = keras.Model([token, *states], [model.output_projection(x), *new_states])
    ids = model.source_tokenizer.tokenize(tf.constant(words[:1024])).numpy()

    def call(rows):
        source = ids[rows]
        state = encoder_model.predict(source, verbose=0, batch_size=len(source))
        tokens = np.full((len(source), 1), START_ID, np.int32)
        finished = np.zeros(len(source), bool)
        for _ in range(max_length):
            logits, *state = decoder_model.predict(
                [tokens, *state], verbose=0, batch_size=len(source)
            )
            tokens = logits[:, -1].argmax(-1).astype(np.int32)[:, None]
            finished |= tokens[:, 0] == END_ID
            if finished.all():
                break

    return {
        "greedy_words_per_s_batch_256": words_per_second(call, len(ids), 256, minimum_seconds=5.0)
    }


def useful_flop_per_word(model, words, greedy_outputs) -> float:
    """Forward matmul FLOPs per word of greedy decoding, real tokens only: every source token
    through the encoder, every output token (with the end token) through the decoder and the
    output projection (`train_speed.training_flops` / 3). Rows that have ended but still ride
    along in their batch's loop are not useful work."""
    source_tokens = int(
        tf.reduce_sum(model.source_tokenizer.tokenize_ragged(tf.constant(words)).row_lengths())
    )
    output_tokens = int(
        tf.reduce_sum(
            model.target_tokenizer.tokenize_ragged(tf.constant(greedy_outputs)).row_lengths()
        )
    ) + len(greedy_outputs)  # + each end token
    flops = (
        training_flops(
            source_tokens,
            output_tokens,
            model.embedding_size,
            model.hidden_units,
            model.num_layers,
            model.target_tokenizer.vocabulary_size,
        )
        / 3
    )
    return flops / len(words)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--run-dir", default="runs/bench-lstm")
    parser.add_argument("--words", type=int, default=2048)
    parser.add_argument("--latency-requests", type=int, default=300)
    parser.add_argument("--skip-torch", action="store_true")
    parser.add_argument(
        "--saved-model-only",
        action="store_true",
        help="the SavedModel's measures alone, for any model (the keras-io and PyTorch "
        "references and the FLOP count need an LSTM encoder-decoder without attention)",
    )
    parser.add_argument(
        "--rescore", nargs="+", default=None, help="runs that rerank the beam (see above)"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    config, model = load_run(args.run_dir)
    corpus = pipelines.load_corpus(config.data)
    words = sorted({source for source, _ in corpus.test})[: args.words]
    with tempfile.TemporaryDirectory() as base:
        saved_model, outputs = saved_model_benchmarks(
            export(model, config, os.path.join(base, "default")), words, args.latency_requests
        )
        fused = None
        if lstm_kernels.load() is not None:  # the opt-in export on the LSTM kernels
            path = export(model, config, os.path.join(base, "fused"), fused=True)
            fused, fused_outputs = saved_model_benchmarks(path, words, args.latency_requests)
            with open(os.path.join(path, "assets.extra", KERNELS_FILE)) as handle:
                fused["kernels"] = json.load(handle)["ops"]
            for name in ("greedy", "beam5"):
                fused[f"{name}_outputs_as_the_default"] = sum(
                    a == b for a, b in zip(fused_outputs[name], outputs[name])
                )
        rescorer = load_rescorer([args.run_dir], args.rescore)
        reranked = None
        if rescorer is not None:
            path = export(model, config, os.path.join(base, "reranked"), rescorer=rescorer)
            reranked = reranked_benchmarks(path, words, args.latency_requests, outputs["beam5"])
            reranked["rescore_weight"] = config.decode.rescore_weight
            scorers = getattr(rescorer, "members", [rescorer])  # an ensemble's, or one model
            reranked["rescorer_parameters"] = sum(m.count_params() for m in scorers)
    report = {
        "host": host(),
        "measured": measured(),
        "run_dir": args.run_dir,
        "preset": config.preset,
        "precision": model.precision,
        "hidden_units": config.model.hidden_units,
        "num_layers": config.model.num_layers,
        # output lengths, hence speed, depend on how far the model trained
        "epochs_run": read_summary(args.run_dir).get("epochs_run"),
        "words": len(words),
        "saved_model": saved_model,
        "fused_saved_model": fused,
        "reranked_saved_model": reranked,
    }
    report["beam5_over_greedy_batch_256"] = (
        saved_model["beam5_words_per_s"]["batch_256"]
        / saved_model["greedy_words_per_s"]["batch_256"]
    )
    if args.saved_model_only:
        report["model"] = {
            key: getattr(config.model, key) for key in ("attention", "bidirectional", "cell")
        }
        print(json.dumps(report) if args.json else json.dumps(report, indent=2))
        return
    report["keras_io"] = keras_io_benchmark(model, words, config.decode.max_length)
    report["greedy_batch_256_over_keras_io"] = (
        saved_model["greedy_words_per_s"]["batch_256"]
        / report["keras_io"]["greedy_words_per_s_batch_256"]
    )
    # How far from the machine's limit: useful GFLOP/s of greedy at batch 256 against the matmul
    # peak and the speed of the recurrent step's own matmul shape (as train_speed.py).
    flop_per_word = useful_flop_per_word(model, words, outputs["greedy"])
    report["useful_flop_per_word"] = flop_per_word
    report["useful_gflop_per_s_greedy_batch_256"] = (
        saved_model["greedy_words_per_s"]["batch_256"] * flop_per_word / 1e9
    )
    report["matmul_peak_gflop_per_s"] = {
        dtype: matmul_peak_gflops(dtype, 4096) for dtype in ("float32", "bfloat16")
    }
    report["step_matmul_gflop_per_s"] = {
        dtype: step_matmul_gflops(dtype, 256, model.hidden_units)
        for dtype in ("float32", "bfloat16")
    }
    if not args.skip_torch:
        report["pytorch_eager"] = torch_benchmarks(
            model, words, config.decode.max_length, outputs["greedy"][:256]
        )
        fastest = max(
            v for k, v in report["pytorch_eager"].items() if k.startswith("greedy_words_per_s")
        )
        report["pytorch_eager"]["useful_gflop_per_s_fastest"] = fastest * flop_per_word / 1e9
        for key, measures in (("", saved_model), ("fused_", fused or {})):
            if measures:
                report[f"{key}greedy_batch_256_over_pytorch_fastest"] = (
                    measures["greedy_words_per_s"]["batch_256"] / fastest
                )
    print(json.dumps(report) if args.json else json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
