"""The PyTorch reference of `train_speed.py` and `decode_speed.py`, run by them in a process of
its own.

    .venv/bin/python benchmarks/torch_reference.py train BATCHES.npz    # prints one JSON object
    .venv/bin/python benchmarks/torch_reference.py decode MODEL.npz     # prints one JSON object

A process of its own because TensorFlow's thread pools, once they have run our model, slow a
PyTorch loop in the same process on 2 cores: each side gets a clean process.
Imports no TensorFlow. `BATCHES.npz` and `MODEL.npz`: see `batch_file.py`.

The network is ours in PyTorch: nn.Embedding per side, an nn.LSTM encoder whose final (h, c)
start an nn.LSTM decoder, nn.Linear; CrossEntropyLoss ignoring id 0; Adam at our rate;
clip_grad_norm; the source reversed within its length. Two ways, each at fp32 and under bf16
autocast (loss in float32; `lstm_output_dtype` says whether autocast reached the LSTMs): packed
sequences (the decoder and the projection run on the real target positions only; the numbers
equal ours) and the padded batches as they are (`padded_*`: nn.LSTM's fused kernel over the
whole bucket, which also reads the padding after each row's end). The fastest is the peer. A
variant this CPU cannot run (oneDNN has no bf16 LSTM on an AVX2-only CPU) is recorded as
`{"unsupported": its error}` and left out.

`decode`: the same network with the trained Keras model's weights (`MODEL.npz`), an eager greedy
loop (one decoder step per output token for the whole batch, stopping when every row has ended)
timed at batch 256, fp32 and under bf16 autocast, packed and padded; it returns its first
batch's output ids (packed) so that `decode_speed.py` checks they equal our SavedModel's.
"""

from __future__ import annotations

import json
import os
import sys
import time

import numpy as np
import torch
from batch_file import load_batches, load_model_arrays, words_per_second

PAD_ID = 0
# (name, bf16 autocast, packed sequences): each is measured, the fastest is the reference
VARIANTS = (
    ("fp32", False, True),
    ("bf16_autocast", True, True),
    ("padded_fp32", False, False),
    ("padded_bf16_autocast", True, False),
)


class TorchSeq2Seq(torch.nn.Module):
    def __init__(self, meta: dict):
        super().__init__()
        embedding, units, layers = meta["embedding_size"], meta["units"], meta["layers"]
        self.reverse_source = meta["reverse_source"]
        self.source_embedding = torch.nn.Embedding(meta["source_vocabulary_size"], embedding)
        self.target_embedding = torch.nn.Embedding(meta["target_vocabulary_size"], embedding)
        self.encoder = torch.nn.LSTM(embedding, units, num_layers=layers, batch_first=True)
        self.decoder = torch.nn.LSTM(embedding, units, num_layers=layers, batch_first=True)
        self.projection = torch.nn.Linear(units, meta["target_vocabulary_size"])

    def encode(self, source_ids, packed: bool = True):
        """The encoder's final (h, c), in batch order (rows of length 0 read as length 1).
        `packed=False`: the padded batch as it is (the encoder also reads the padding after a
        row's end, which length-bucketed batches keep short): what most PyTorch code does, and
        oneDNN's fused LSTM kernel runs it in one call."""
        source_lengths = (source_ids != PAD_ID).sum(1).clamp(min=1)
        if self.reverse_source:  # within each row's length; padding stays on the right
            positions = torch.arange(source_ids.shape[1])[None, :]
            last = source_lengths[:, None] - 1
            source_ids = source_ids.gather(
                1, torch.where(positions <= last, last - positions, positions)
            )
        if not packed:
            return self.encoder(self.source_embedding(source_ids))[1]
        packed = torch.nn.utils.rnn.pack_padded_sequence(
            self.source_embedding(source_ids),
            source_lengths,
            batch_first=True,
            enforce_sorted=False,
        )
        return self.encoder(packed)[1]

    def forward(self, source_ids, target_in_ids, target_out_ids, packed: bool = True):
        pack = torch.nn.utils.rnn.pack_padded_sequence
        state = self.encode(source_ids, packed)  # the decoder re-sorts them
        if not packed:  # every position projected; the loss ignores the padding
            outputs, _ = self.decoder(self.target_embedding(target_in_ids), state)
            logits = self.projection(outputs)
            return logits.flatten(0, 1), target_out_ids.flatten(), outputs.dtype
        target_lengths = (target_out_ids != PAD_ID).sum(1)
        outputs, _ = self.decoder(
            pack(
                self.target_embedding(target_in_ids),
                target_lengths,
                batch_first=True,
                enforce_sorted=False,
            ),
            state,
        )
        labels = pack(target_out_ids, target_lengths, batch_first=True, enforce_sorted=False).data
        return self.projection(outputs.data), labels, outputs.data.dtype

    def greedy(self, source_ids, max_length: int, start_id: int, end_id: int, packed=True):
        """Argmax decoding, one step for the whole batch per output token; ids after a row's end
        are 0."""
        state = self.encode(source_ids, packed)
        tokens = torch.full((source_ids.shape[0],), start_id, dtype=torch.long)
        finished = torch.zeros(source_ids.shape[0], dtype=torch.bool)
        outputs = []
        for _ in range(max_length):
            x, state = self.decoder(self.target_embedding(tokens)[:, None, :], state)
            tokens = self.projection(x[:, 0]).argmax(-1)
            tokens = torch.where(finished, torch.zeros_like(tokens), tokens)
            outputs.append(tokens)
            finished |= tokens == end_id
            if bool(finished.all()):
                break
        return torch.stack(outputs, 1)

    def load_keras_weights(self, arrays: dict) -> None:
        """A trained Keras model's weights (`batch_file.save_model_arrays`). Keras' LSTM kernels
        are [inputs, 4·units] with gates i, f, c, o — PyTorch's order i, f, g, o, transposed —
        and one bias (PyTorch's second bias is set to 0)."""
        with torch.no_grad():
            self.source_embedding.weight.copy_(torch.from_numpy(arrays["source_embedding"]))
            self.target_embedding.weight.copy_(torch.from_numpy(arrays["target_embedding"]))
            for side, module in (("encoder", self.encoder), ("decoder", self.decoder)):
                for index in range(module.num_layers):
                    kernel, recurrent, bias = (
                        arrays[f"{side}_{index}_{name}"] for name in ("kernel", "recurrent", "bias")
                    )
                    getattr(module, f"weight_ih_l{index}").copy_(torch.from_numpy(kernel.T.copy()))
                    getattr(module, f"weight_hh_l{index}").copy_(
                        torch.from_numpy(recurrent.T.copy())
                    )
                    getattr(module, f"bias_ih_l{index}").copy_(torch.from_numpy(bias))
                    getattr(module, f"bias_hh_l{index}").zero_()
            self.projection.weight.copy_(torch.from_numpy(arrays["projection_kernel"].T.copy()))
            self.projection.bias.copy_(torch.from_numpy(arrays["projection_bias"]))


def benchmark(batches, meta: dict) -> dict:
    """One warm-up of `meta["warmup_batches"]` steps, then one timed epoch, per precision, with
    packed sequences (`fp32`, `bf16_autocast`) and on the padded batches (`padded_...`); the
    fastest of the four is the reference."""
    torch.set_num_threads(os.cpu_count())
    tensors = [tuple(torch.from_numpy(ids.astype(np.int64)) for ids in batch) for batch in batches]
    tokens = sum(int((s != PAD_ID).sum() + (t != PAD_ID).sum()) for s, _, t in batches)
    loss_function = torch.nn.CrossEntropyLoss(ignore_index=PAD_ID)
    result = {}
    for name, autocast, packed in VARIANTS:
        torch.manual_seed(0)
        network = TorchSeq2Seq(meta)
        optimizer = torch.optim.Adam(network.parameters(), lr=meta["learning_rate"])

        def step(batch):
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                logits, labels, dtype = network(*batch, packed=packed)
            loss = loss_function(logits.float(), labels)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(network.parameters(), meta["clip_norm"])
            optimizer.step()
            return dtype

        try:
            for batch in tensors[: meta["warmup_batches"]]:
                step(batch)
            start = time.perf_counter()
            for batch in tensors:
                lstm_dtype = step(batch)
            seconds = time.perf_counter() - start
        except RuntimeError as error:  # oneDNN has no bf16 LSTM primitive on an AVX2-only CPU
            result[name] = {"unsupported": str(error).splitlines()[0]}
            continue
        result[name] = {
            "tokens_per_s": tokens / seconds,
            "seconds_per_epoch": seconds,
            "steps_per_epoch": len(tensors),
            "lstm_output_dtype": str(lstm_dtype).replace("torch.", ""),
        }
    result["step_matmul_gflop_per_s"] = {
        name: step_matmul_gflops(dtype, meta["batch_size"], meta["units"])
        for name, dtype in (("float32", torch.float32), ("bfloat16", torch.bfloat16))
    }
    result["parameters"] = sum(p.numel() for p in network.parameters())
    result["threads"] = torch.get_num_threads()
    result["torch_version"] = torch.__version__
    result["fastest"] = max(
        (name for name, _, _ in VARIANTS if "tokens_per_s" in result[name]),
        key=lambda name: result[name]["tokens_per_s"],
    )
    result["tokens_per_s"] = result[result["fastest"]]["tokens_per_s"]
    return result


def step_matmul_gflops(dtype, batch: int, units: int, chained: int = 40, calls: int = 10) -> float:
    """`train_speed.step_matmul_gflops` in PyTorch: [batch, units] × [units, 4·units] and back."""
    h = torch.randn(batch, units, dtype=dtype)
    up = (torch.randn(units, 4 * units) / units**0.5).to(dtype)
    down = (torch.randn(4 * units, units) / (4 * units) ** 0.5).to(dtype)

    def chain(x):
        for _ in range(chained // 2):
            x = (x @ up) @ down
        return x

    chain(h)
    start = time.perf_counter()
    for _ in range(calls):
        chain(h)
    return 2 * batch * units * 4 * units * chained * calls / (time.perf_counter() - start) / 1e9


def decode_benchmark(arrays: dict, meta: dict) -> dict:
    """Greedy words/s at `meta["batch_size"]` over `arrays["source_ids"]`, fp32 and bf16
    autocast."""
    torch.set_num_threads(os.cpu_count())
    network = TorchSeq2Seq(meta).eval()
    network.load_keras_weights(arrays)
    source = torch.from_numpy(arrays["source_ids"].astype(np.int64))
    batch_size, max_length = meta["batch_size"], meta["max_length"]

    def make_call(autocast, packed=True):
        start, end = meta["start_id"], meta["end_id"]

        def call(rows):
            with (
                torch.inference_mode(),
                torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast),
            ):
                return network.greedy(source[rows], max_length, start, end, packed)

        return call

    result = {"threads": torch.get_num_threads(), "torch_version": torch.__version__}
    for name, autocast, packed in VARIANTS:
        try:
            result[f"greedy_words_per_s_batch_{batch_size}_{name}"] = words_per_second(
                make_call(autocast, packed), len(source), batch_size
            )
        except RuntimeError as error:  # as in `benchmark`
            result[f"unsupported_{name}"] = str(error).splitlines()[0]
    # packed: the same numbers as ours (the padded encoder also reads the padding)
    result["first_batch_fp32_ids"] = make_call(False)(slice(0, batch_size)).tolist()
    return result


if __name__ == "__main__":
    mode, path = sys.argv[1:3]
    if mode == "train":
        print(json.dumps(benchmark(*load_batches(path))))
    elif mode == "decode":
        print(json.dumps(decode_benchmark(*load_model_arrays(path))))
    else:
        sys.exit(f"torch_reference.py: unknown mode {mode!r} (train | decode)")
