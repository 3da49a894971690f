"""The PyTorch reference of `train_speed.py`, run by it in a process of its own.

    .venv/bin/python benchmarks/torch_reference.py BATCHES.npz      # prints one JSON object

A process of its own because TensorFlow's thread pools, once they have run our model, slow a
PyTorch loop in the same process on 2 cores: the first version of `train_speed.py` ran it in
TF's process at 24 735 tokens/s (bf16), this one at 44 248. Each side gets a clean process.
Imports no TensorFlow. `BATCHES.npz`: see `batch_file.py`.

The network is ours in PyTorch: nn.Embedding per side, an nn.LSTM encoder whose final (h, c)
start an nn.LSTM decoder, nn.Linear; CrossEntropyLoss ignoring id 0; Adam at our rate;
clip_grad_norm; the source reversed within its length. Packed sequences: the decoder and the
projection run on the real target positions only. Trained at fp32 and under bf16 autocast (loss
in float32); `lstm_output_dtype` says whether autocast reached the LSTMs.
"""

from __future__ import annotations

import json
import os
import sys
import time

import numpy as np
import torch

from batch_file import load_batches

PAD_ID = 0


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

    def forward(self, source_ids, target_in_ids, target_out_ids):
        pack = torch.nn.utils.rnn.pack_padded_sequence
        source_lengths = (source_ids != PAD_ID).sum(1)
        if self.reverse_source:  # within each row's length; padding stays on the right
            positions = torch.arange(source_ids.shape[1])[None, :]
            last = source_lengths[:, None] - 1
            source_ids = source_ids.gather(1, torch.where(positions <= last, last - positions, positions))
        packed = pack(self.source_embedding(source_ids), source_lengths, batch_first=True, enforce_sorted=False)
        _, state = self.encoder(packed)  # (h, c) in batch order; the decoder re-sorts them
        target_lengths = (target_out_ids != PAD_ID).sum(1)
        outputs, _ = self.decoder(pack(self.target_embedding(target_in_ids), target_lengths,
                                       batch_first=True, enforce_sorted=False), state)
        labels = pack(target_out_ids, target_lengths, batch_first=True, enforce_sorted=False).data
        return self.projection(outputs.data), labels, outputs.data.dtype


def benchmark(batches, meta: dict) -> dict:
    """One warm-up of `meta["warmup_batches"]` steps, then one timed epoch, per precision."""
    torch.set_num_threads(os.cpu_count())
    tensors = [tuple(torch.from_numpy(ids.astype(np.int64)) for ids in batch) for batch in batches]
    tokens = sum(int((s != PAD_ID).sum() + (t != PAD_ID).sum()) for s, _, t in batches)
    loss_function = torch.nn.CrossEntropyLoss(ignore_index=PAD_ID)
    result = {}
    for name, autocast in (("fp32", False), ("bf16_autocast", True)):
        torch.manual_seed(0)
        network = TorchSeq2Seq(meta)
        optimizer = torch.optim.Adam(network.parameters(), lr=meta["learning_rate"])

        def step(batch):
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                logits, labels, dtype = network(*batch)
            loss = loss_function(logits.float(), labels)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(network.parameters(), meta["clip_norm"])
            optimizer.step()
            return dtype

        for batch in tensors[:meta["warmup_batches"]]:
            step(batch)
        start = time.perf_counter()
        for batch in tensors:
            lstm_dtype = step(batch)
        seconds = time.perf_counter() - start
        result[name] = {"tokens_per_s": tokens / seconds, "seconds_per_epoch": seconds,
                        "steps_per_epoch": len(tensors), "lstm_output_dtype": str(lstm_dtype).replace("torch.", "")}
    result["step_matmul_gflop_per_s"] = {name: step_matmul_gflops(dtype, meta["batch_size"], meta["units"])
                                         for name, dtype in (("float32", torch.float32), ("bfloat16", torch.bfloat16))}
    result["parameters"] = sum(p.numel() for p in network.parameters())
    result["threads"] = torch.get_num_threads()
    result["torch_version"] = torch.__version__
    result["fastest"] = max(("fp32", "bf16_autocast"), key=lambda name: result[name]["tokens_per_s"])
    result["tokens_per_s"] = result[result["fastest"]]["tokens_per_s"]
    return result


def step_matmul_gflops(dtype, batch: int, units: int, chained: int = 40, calls: int = 10) -> float:
    """`train_speed.step_matmul_gflops` in PyTorch: [batch, units] × [units, 4·units] and back."""
    h = torch.randn(batch, units, dtype=dtype)
    up = (torch.randn(units, 4 * units) / units ** 0.5).to(dtype)
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


if __name__ == "__main__":
    print(json.dumps(benchmark(*load_batches(sys.argv[1]))))
