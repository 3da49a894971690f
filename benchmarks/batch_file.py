"""The timed epoch's batches of `train_speed.py`, handed to the reference processes in one file:
`source_{i}`, `target_in_{i}`, `target_out_{i}` id arrays of each batch (right padded with 0)
and `meta`, a JSON string (the network's sizes, the optimizer settings). NumPy only, so that
the PyTorch process never imports TensorFlow."""

from __future__ import annotations

import json

import numpy as np

COLUMNS = ("source", "target_in", "target_out")


def save_batches(path: str, batches, meta: dict) -> None:
    arrays = {f"{name}_{index}": ids for index, batch in enumerate(batches) for name, ids in zip(COLUMNS, batch)}
    np.savez(path, meta=json.dumps({**meta, "batches": len(batches)}), **arrays)


def load_batches(path: str) -> tuple:
    """`(batches, meta)`: batches as `(source_ids, target_in_ids, target_out_ids)` arrays."""
    arrays = np.load(path)
    meta = json.loads(str(arrays["meta"]))
    return [tuple(arrays[f"{name}_{index}"] for name in COLUMNS) for index in range(meta["batches"])], meta
