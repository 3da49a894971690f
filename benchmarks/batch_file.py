"""What the benchmarks hand to their reference processes, one file each, and the timing loop
both sides share. NumPy only, so that the PyTorch process never imports TensorFlow.

- Batches (`train_speed.py`): `source_{i}`, `target_in_{i}`, `target_out_{i}` id arrays of each
  batch of the timed epoch (right padded with 0) and `meta`, a JSON string (the network's sizes,
  the optimizer settings).
- A model (`decode_speed.py`): its weights by name (`source_embedding`, `encoder_0_kernel`, ...,
  `projection_bias`), the tokenized words to decode (`source_ids`) and `meta`.
"""

from __future__ import annotations

import json
import time

import numpy as np

COLUMNS = ("source", "target_in", "target_out")


def save_batches(path: str, batches, meta: dict) -> None:
    arrays = {
        f"{name}_{index}": ids
        for index, batch in enumerate(batches)
        for name, ids in zip(COLUMNS, batch)
    }
    np.savez(path, meta=json.dumps({**meta, "batches": len(batches)}), **arrays)


def load_batches(path: str) -> tuple:
    """`(batches, meta)`: batches as `(source_ids, target_in_ids, target_out_ids)` arrays."""
    arrays = np.load(path)
    meta = json.loads(str(arrays["meta"]))
    return [
        tuple(arrays[f"{name}_{index}"] for name in COLUMNS) for index in range(meta["batches"])
    ], meta


def save_model_arrays(path: str, arrays: dict, meta: dict) -> None:
    np.savez(path, meta=json.dumps(meta), **arrays)


def load_model_arrays(path: str) -> tuple:
    """`(arrays, meta)` as `save_model_arrays` wrote them."""
    data = np.load(path)
    return {name: data[name] for name in data.files if name != "meta"}, json.loads(
        str(data["meta"])
    )


def words_per_second(call, count: int, batch_size: int, minimum_seconds: float = 3.0) -> float:
    """Items/s of `call(rows)` over consecutive `batch_size` slices of `count` items, repeated for
    at least `minimum_seconds` after one untimed warm-up call (tracing, first allocations)."""
    call(slice(0, batch_size))
    done, start = 0, time.perf_counter()
    while True:
        for offset in range(0, count - batch_size + 1, batch_size):
            call(slice(offset, offset + batch_size))
            done += batch_size
        elapsed = time.perf_counter() - start
        if elapsed >= minimum_seconds:
            return done / elapsed
