"""Decoding speed of an exported model, next to a PyTorch eager loop and the keras-io recipe.

    .venv/bin/pip install -r benchmarks/requirements.txt      # torch, for the reference
    .venv/bin/python benchmarks/decode_speed.py --run-dir runs/bench-small --json

Measures, in one process on the same words (CMUdict test-split words):
  - words/second through the loaded SavedModel (what TF Serving runs): `greedy` and the
    `nbest` signature with beam 5, at batch 1 and batch 256;
  - p50/p99 latency of single-word requests (`serving_default`, beam 5, and `greedy`);
  - a PyTorch eager greedy loop over the SAME weights (nn.LSTM + nn.Linear, copied from the
    Keras model; its outputs are checked against ours), batch 256, fp32 and bf16 autocast;
  - the keras-io `lstm_seq2seq` style: separate encoder/decoder Keras models and one
    `predict()` call per output token, batch 256.
Timings exclude the first call (tracing/warm-up). Sources are pre-tokenized for PyTorch and
keras-io (which favours them); the SavedModel timings include tokenization and detokenization.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402
import tensorflow_text  # noqa: E402,F401

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import pipelines  # noqa: E402
from s2s_keras.export import export  # noqa: E402
from s2s_keras.text import END_ID, START_ID  # noqa: E402
from s2s_keras.training import load_run  # noqa: E402


def words_per_second(call, words, batch_size, minimum_seconds=3.0):
    call(words[:batch_size])  # warm-up (tracing)
    done, start = 0, time.perf_counter()
    while True:
        for offset in range(0, len(words) - batch_size + 1, batch_size):
            call(words[offset:offset + batch_size])
            done += batch_size
        elapsed = time.perf_counter() - start
        if elapsed >= minimum_seconds:
            return done / elapsed


def latencies_ms(call, words, count):
    call(words[:1])
    times = []
    for word in words[:count]:
        start = time.perf_counter()
        call([word])
        times.append((time.perf_counter() - start) * 1000)
    return {"p50": float(np.percentile(times, 50)), "p99": float(np.percentile(times, 99))}


def saved_model_benchmarks(path, words, latency_count):
    loaded = tf.saved_model.load(path)

    def greedy(batch):
        return loaded.greedy(inputs=tf.constant(batch))["outputs"]

    def beam5(batch):
        n = len(batch)
        return loaded.nbest(inputs=tf.constant(batch), beam_size=tf.fill([n], 5),
                            num_results=tf.fill([n], 1))["outputs"]

    def best(batch):
        return loaded.signatures["serving_default"](inputs=tf.constant(batch))["outputs"]

    result = {"greedy_words_per_s": {}, "beam5_words_per_s": {}}
    for batch_size in (1, 256):
        result["greedy_words_per_s"][f"batch_{batch_size}"] = words_per_second(greedy, words, batch_size)
        result["beam5_words_per_s"][f"batch_{batch_size}"] = words_per_second(beam5, words, batch_size)
    result["latency_ms"] = {"serving_default_beam5": latencies_ms(best, words, latency_count),
                            "greedy": latencies_ms(greedy, words, latency_count)}
    greedy_ids = [o.decode() for o in greedy(words[:256]).numpy()]
    return result, greedy_ids


class TorchSeq2Seq:
    """The same network in PyTorch, weights copied from the Keras model (gate order i, f, c/g, o
    is the same in both frameworks)."""

    def __init__(self, model):
        import torch

        self.torch = torch
        units, layers = model.hidden_units, model.num_layers
        embedding = model.embedding_size

        def lstm(keras_layers):
            module = torch.nn.LSTM(embedding, units, num_layers=layers, batch_first=True)
            for index, layer in enumerate(keras_layers):
                kernel, recurrent, bias = (w.numpy() for w in layer.cell.weights)
                getattr(module, f"weight_ih_l{index}").data = torch.tensor(kernel.T.copy())
                getattr(module, f"weight_hh_l{index}").data = torch.tensor(recurrent.T.copy())
                getattr(module, f"bias_ih_l{index}").data = torch.tensor(bias)
                getattr(module, f"bias_hh_l{index}").data = torch.zeros_like(torch.tensor(bias))
            return module.eval()

        self.source_embedding = torch.tensor(model.source_embedding.embeddings.numpy())
        self.target_embedding = torch.tensor(model.target_embedding.embeddings.numpy())
        self.encoder = lstm(model.encoder_layers)
        self.decoder = lstm(model.decoder_layers)
        kernel, bias = (w.numpy() for w in model.output_projection.weights)
        self.projection = torch.nn.Linear(kernel.shape[0], kernel.shape[1]).eval()
        self.projection.weight.data = torch.tensor(kernel.T.copy())
        self.projection.bias.data = torch.tensor(bias)
        self.reverse_source = model.reverse_source

    def greedy(self, source_ids, lengths, max_length):
        torch = self.torch
        with torch.inference_mode():
            if self.reverse_source:
                source_ids = source_ids.clone()
                for row, length in enumerate(lengths.tolist()):
                    source_ids[row, :length] = source_ids[row, :length].flip(0)
            packed = torch.nn.utils.rnn.pack_padded_sequence(
                self.source_embedding[source_ids], lengths, batch_first=True, enforce_sorted=False)
            _, state = self.encoder(packed)
            tokens = torch.full((source_ids.shape[0],), START_ID, dtype=torch.long)
            finished = torch.zeros(source_ids.shape[0], dtype=torch.bool)
            outputs = []
            for _ in range(max_length):
                x, state = self.decoder(self.target_embedding[tokens][:, None, :], state)
                tokens = self.projection(x[:, 0]).argmax(-1)
                tokens = torch.where(finished, torch.zeros_like(tokens), tokens)
                outputs.append(tokens)
                finished |= tokens == END_ID
                if bool(finished.all()):
                    break
            return torch.stack(outputs, 1)


def torch_benchmarks(model, words, max_length, reference_outputs):
    import torch

    torch.set_num_threads(2)
    network = TorchSeq2Seq(model)
    ids = model.source_tokenizer.tokenize(tf.constant(words)).numpy()
    lengths = (ids != 0).sum(1)
    source = torch.tensor(ids, dtype=torch.long)
    length_tensor = torch.tensor(np.maximum(lengths, 1))

    def make_call(autocast):
        def call(batch):
            start = words.index(batch[0])
            rows = slice(start, start + len(batch))
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                return network.greedy(source[rows], length_tensor[rows], max_length)
        return call

    result = {}
    for name, autocast in (("fp32", False), ("bf16_autocast", True)):
        result[f"greedy_words_per_s_batch_256_{name}"] = words_per_second(make_call(autocast), words, 256)
    out = make_call(False)(words[:256]).numpy()
    texts = [o.decode() for o in model.target_tokenizer.detokenize(tf.constant(out, tf.int32)).numpy()]
    result["fp32_outputs_equal_ours"] = float(np.mean([a == b for a, b in zip(texts, reference_outputs)]))
    return result


def keras_io_benchmark(model, words, max_length):
    """keras-io lstm_seq2seq: an encoder model and a decoder model, `predict()` per token."""
    import keras

    source = keras.Input((None,), dtype="int32")
    encoder_model = keras.Model(source, [t for layer_state in model.encode(source) for t in layer_state])
    token = keras.Input((1,), dtype="int32")
    states = [keras.Input((model.hidden_units,)) for _ in range(2 * model.num_layers)]
    x = model.target_embedding(token)
    new_states = []
    for index, layer in enumerate(model.decoder_layers):
        x, h, c = layer(x, initial_state=states[2 * index:2 * index + 2])
        new_states += [h, c]
    decoder_model = keras.Model([token, *states], [model.output_projection(x), *new_states])
    ids = model.source_tokenizer.tokenize(tf.constant(words)).numpy()

    def call(batch):
        start = words.index(batch[0])
        state = encoder_model.predict(ids[start:start + len(batch)], verbose=0, batch_size=len(batch))
        tokens = np.full((len(batch), 1), START_ID, np.int32)
        finished = np.zeros(len(batch), bool)
        for _ in range(max_length):
            logits, *state = decoder_model.predict([tokens, *state], verbose=0, batch_size=len(batch))
            tokens = logits[:, -1].argmax(-1).astype(np.int32)[:, None]
            finished |= tokens[:, 0] == END_ID
            if finished.all():
                break

    return {"greedy_words_per_s_batch_256": words_per_second(call, words[:1024], 256, minimum_seconds=5.0)}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--run-dir", default="runs/bench-small")
    parser.add_argument("--words", type=int, default=2048)
    parser.add_argument("--latency-requests", type=int, default=300)
    parser.add_argument("--skip-torch", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    config, model = load_run(args.run_dir)
    corpus = pipelines.load_corpus(config.data)
    words = sorted({source for source, _ in corpus.test})[:args.words]
    with tempfile.TemporaryDirectory() as base:
        saved_model, greedy_outputs = saved_model_benchmarks(export(model, config, base), words,
                                                             args.latency_requests)
    report = {"run_dir": args.run_dir, "preset": config.preset, "precision": config.train.precision,
              "hidden_units": config.model.hidden_units, "num_layers": config.model.num_layers,
              "words": len(words), "saved_model": saved_model}
    report["beam5_over_greedy_batch_256"] = (saved_model["beam5_words_per_s"]["batch_256"]
                                            / saved_model["greedy_words_per_s"]["batch_256"])
    report["keras_io"] = keras_io_benchmark(model, words, config.decode.max_length)
    report["greedy_batch_256_over_keras_io"] = (saved_model["greedy_words_per_s"]["batch_256"]
                                               / report["keras_io"]["greedy_words_per_s_batch_256"])
    if not args.skip_torch:
        report["pytorch_eager"] = torch_benchmarks(model, words, config.decode.max_length, greedy_outputs)
        fastest = max(v for k, v in report["pytorch_eager"].items() if k.startswith("greedy_words_per_s"))
        report["greedy_batch_256_over_pytorch_fastest"] = saved_model["greedy_words_per_s"]["batch_256"] / fastest
    print(json.dumps(report) if args.json else json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
