"""Runs an s2s_keras model exported for LiteRT or ONNX Runtime — no TensorFlow needed.

`s2s export --format litert|onnx` writes this file beside the model, with `vocabulary.json`:

    import s2s_runtime                                  # the file beside the model
    translate = s2s_runtime.load("g2p-litert/model.tflite")  # or model_int8.tflite, model.onnx
    translate(["hello", "world"])                       # ['HH EH L OW', 'W ER L D']

The model holds the encoder and the greedy decoding loop: int32 source ids `(batch, S)` in,
output ids `(batch, T)` out. This file is the reference tokenizer around it: `encode(words)`
normalizes each word as training did (Unicode NFKC, case folding when the model lowercases,
outer whitespace stripped), splits it into characters or whitespace tokens, maps a token never
seen in training to the unknown id 1, keeps the first `max_input_length` tokens and pads with 0
(one padding column more, as the SavedModel's graph adds); `decode(ids)` keeps the tokens
before the end id 3. Python's `str.casefold` and TensorFlow Text's ICU case folding may differ
on rare characters. Needs numpy, and `ai-edge-litert` (LiteRT) or `onnxruntime` (ONNX).
"""

from __future__ import annotations

import json
import os
import unicodedata

import numpy as np

PAD_ID, UNK_ID, START_ID, END_ID = 0, 1, 2, 3


class Vocabulary:
    """`vocabulary.json`: each side's tokens by id, split mode and lowercasing; the limits."""

    def __init__(self, path: str):
        with open(path, encoding="utf-8") as handle:
            spec = json.load(handle)
        self.source, self.target = spec["source"], spec["target"]
        self.max_input_length = spec["max_input_length"]
        self.source_ids = {token: i for i, token in enumerate(self.source["tokens"]) if i > END_ID}

    def encode(self, words) -> np.ndarray:
        """Words → int32 ids `(batch, longest + 1)`, 0-padded."""
        rows = []
        for word in words:
            text = unicodedata.normalize("NFKC", word)
            text = (text.casefold() if self.source["lowercase"] else text).strip()
            tokens = list(text) if self.source["split"] == "characters" else text.split()
            rows.append([self.source_ids.get(t, UNK_ID) for t in tokens][: self.max_input_length])
        ids = np.zeros((len(rows), max([len(row) for row in rows], default=0) + 1), np.int32)
        for index, row in enumerate(rows):
            ids[index, : len(row)] = row
        return ids

    def decode(self, ids) -> list:
        """Output ids `(batch, T)` → strings: the tokens before the first end id, in reading
        order (a right-to-left model's reversed)."""
        separator = "" if self.target["split"] == "characters" else " "
        texts = []
        for row in np.asarray(ids):
            tokens = []
            for token_id in row.tolist():
                if token_id == END_ID:
                    break
                if token_id not in (PAD_ID, START_ID):
                    tokens.append(self.target["tokens"][token_id])
            if self.target.get("reverse"):
                tokens.reverse()
            texts.append(separator.join(tokens))
        return texts


def load(model_path: str, vocabulary_path: str | None = None):
    """`translate(words) -> list of strings` over a `.tflite` or `.onnx` export
    (`vocabulary_path`: default `vocabulary.json` beside the model)."""
    vocabulary = Vocabulary(
        vocabulary_path or os.path.join(os.path.dirname(model_path), "vocabulary.json")
    )
    run = _onnx(model_path) if model_path.endswith(".onnx") else _litert(model_path)

    def translate(words) -> list:
        words = list(words)
        return vocabulary.decode(run(vocabulary.encode(words))) if words else []

    return translate


def _onnx(model_path: str):
    import onnxruntime

    session = onnxruntime.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda ids: session.run(None, {name: ids})[0]


def _litert(model_path: str):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    # Without the default XNNPack delegate: it cannot resize tensors inside the decoding loop.
    interpreter = Interpreter(
        model_path=model_path,
        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    )
    (source,), (output,) = interpreter.get_input_details(), interpreter.get_output_details()
    fixed = int(source["shape_signature"][0])  # the batch size fixed at export (-1: any)

    def run(ids):
        batch = fixed if fixed > 0 else len(ids)
        results = []
        for start in range(0, len(ids), batch):
            chunk = np.zeros((batch, ids.shape[1]), np.int32)  # a short last chunk: empty rows
            rows = ids[start : start + batch]
            chunk[: len(rows)] = rows
            interpreter.resize_tensor_input(source["index"], chunk.shape)
            interpreter.allocate_tensors()
            interpreter.set_tensor(source["index"], chunk)
            interpreter.invoke()
            results.append(interpreter.get_tensor(output["index"])[: len(rows)])
        width = max(result.shape[1] for result in results)
        return np.concatenate([np.pad(r, ((0, 0), (0, width - r.shape[1]))) for r in results])

    return run
