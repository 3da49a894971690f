"""Exports that run without TensorFlow: LiteRT (`.tflite`, for phones and embedded Linux) and
ONNX (ONNX Runtime from Python, C++, C#, JavaScript, ...). Each holds the encoder and the greedy
decoding loop of the task's inference object (`Task.portable`: `Translator.greedy_ids` for
seq2seq) — int32 ids in, int32 ids out — traced from the same layers as the SavedModel.

`s2s export --format litert|onnx --run-dir RUN --output DIR` writes:

    DIR/model.tflite        LiteRT, float32: source_ids int32 [B, S] → ids int32 [B, T], B fixed
                            at export (`--batch-size`, default 1), S any length
    DIR/model_int8.tflite   the same with int8 dynamic-range quantized weights (activations stay
                            float32)
    DIR/model.onnx          ONNX (opset 17, tf2onnx): source_ids [B, S] → ids [B, T], any B and S
    DIR/vocabulary.json     each side's tokens by id (0 padding, 1 unknown, 2 start, 3 end), split
                            mode and lowercasing; max_input_length, max_length
    DIR/s2s_runtime.py      the reference tokenizer and runner (numpy + ai-edge-litert or
                            onnxruntime): `s2s_runtime.load("DIR/model.tflite")(["hello"])`
    DIR/config.json         the run's config

What these formats do not do (the SavedModel does): beam search, sampling, n-best lists,
scoring, attention alignments; strings in the graph (tokenize with `s2s_runtime.py`);
`wordpiece` splits (the reference tokenizer knows characters and whitespace tokens); ensembles;
the classifier and language-model tasks. Decoding always runs `decode.max_length` steps at most
and keeps every row to the end (fixed shapes); LiteRT runs without its default XNNPack delegate
(it cannot resize tensors inside the loop). The graphs are traced in float32 whatever
`train.precision` was, with the plain (unpacked) LSTM loop, which converters lower to their
own While loops (`layers.lstm.without_packing`).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile

import tensorflow as tf

from s2s_keras.config import Config
from s2s_keras.layers.lstm import without_packing
from s2s_keras.models import Ensemble, with_precision
from s2s_keras.tasks import get_task
from s2s_keras.text import RESERVED

FORMATS = ("litert", "onnx")
ONNX_OPSET = 17
RUNTIME = os.path.join(os.path.dirname(os.path.abspath(__file__)), "s2s_runtime.py")


def tokenizer_spec(tokenizer) -> dict:
    """What `vocabulary.json` says of one side."""
    return {
        "tokens": [*RESERVED, *tokenizer.vocabulary],
        "split": tokenizer.split_mode,
        "lowercase": tokenizer.lowercase,
        "reverse": tokenizer.reverse,
    }


def export(model, config: Config, output: str, fmt: str, batch_size: int = 1) -> str:
    """Writes `fmt` (`litert` or `onnx`) into the directory `output` (new or empty); returns it.

    Raises:
        ValueError: a format, model or tokenization these exports do not cover (named).
    """
    if fmt not in FORMATS:
        raise ValueError(f"--format: expected one of {FORMATS}, got {fmt!r}")
    if isinstance(model, Ensemble):
        raise ValueError(f"--format {fmt}: an ensemble has no {fmt} export; export one run dir")
    for side in ("source", "target"):
        split = getattr(config.data, f"{side}_split")
        if split == "wordpiece":
            raise ValueError(
                f"--format {fmt}: data.{side}_split=wordpiece has no reference tokenizer "
                "(characters and whitespace do); use the SavedModel export"
            )
    if batch_size < 1:
        raise ValueError(f"--batch-size: expected an integer >= 1, got {batch_size}")
    if os.path.exists(output) and (not os.path.isdir(output) or os.listdir(output)):
        raise ValueError(f"--output {output}: exists and is not an empty directory")
    parent = os.path.dirname(os.path.abspath(output))
    os.makedirs(parent, exist_ok=True)
    # Written beside `output` and renamed into place: a failed export leaves nothing behind.
    staging = tempfile.mkdtemp(prefix=".export-", dir=parent)
    try:
        _write(model, config, staging, fmt, batch_size)
        if os.path.isdir(output):
            os.rmdir(output)  # empty (checked above)
        os.rename(staging, output)
    finally:
        if os.path.isdir(staging):
            shutil.rmtree(staging)
    return output


def _write(model, config: Config, output: str, fmt: str, batch_size: int) -> None:
    function, vocabulary = get_task(config.task).portable(with_precision(model, "float32"), config)
    # LiteRT lowers the encoder's lists only with static element shapes: a fixed batch.
    batch = batch_size if fmt == "litert" else None
    spec = tf.TensorSpec([batch, None], tf.int32, name="source_ids")
    traced = tf.function(lambda source_ids: {"ids": function(source_ids)}, input_signature=[spec])
    with without_packing():
        if fmt == "litert":
            concrete = traced.get_concrete_function()
            for name, quantized in (("model.tflite", False), ("model_int8.tflite", True)):
                with open(os.path.join(output, name), "wb") as handle:
                    handle.write(_litert(concrete, quantized))
        else:
            import tf2onnx

            path = os.path.join(output, "model.onnx")
            tf2onnx.convert.from_function(
                traced, input_signature=[spec], opset=ONNX_OPSET, output_path=path
            )
    with open(os.path.join(output, "vocabulary.json"), "w", encoding="utf-8") as handle:
        json.dump({**vocabulary, "batch_size": batch}, handle, ensure_ascii=False, indent=1)
    with open(os.path.join(output, "config.json"), "w", encoding="utf-8") as handle:
        handle.write(config.to_json())
    shutil.copyfile(RUNTIME, os.path.join(output, "s2s_runtime.py"))
    os.chmod(output, 0o755)  # mkdtemp made it 0700: readable by the app that ships it


def _litert(concrete, quantized: bool) -> bytes:
    """The `.tflite` bytes of `concrete`, its variables frozen into constants (LiteRT's own
    resource variables are not initialized by a plain interpreter), TFLite builtin ops only."""
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    frozen = convert_variables_to_constants_v2(concrete, lower_control_flow=False)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([frozen])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantized:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]  # int8 weights, float activations
    return converter.convert()
