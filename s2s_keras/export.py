"""SavedModel for TF Serving (`<base>/<version>/`, strings in → strings out) plus `.keras`.

Layout:
    <base>/<version>/saved_model.pb, variables/      the serving graph: tokenize → encode →
                                                      decoding loop → detokenize, all in-graph
    <base>/<version>/assets.extra/config.json        the resolved run config
    <base>/<version>/assets.extra/model.keras        the Keras model, for other Keras apps
                                                      (an ensemble: `member-<i>.keras` and
                                                      `member-<i>.config.json` per model, i from 0)
    <base>/<version>/assets.extra/rescore-<i>.keras  only if exported with a rescorer: its
                                                      models (`export`)
    <base>/<version>/assets.extra/tf_serving_warmup_requests   one request per signature
    <base>/<version>/assets.extra/kernels.json       only if exported `fused`: the LSTM kernels
                                                      the graph runs (`load_saved_model`)
    <base>/models.config, <base>/batching_parameters.txt        server config examples

Signatures of a seq2seq model (all outputs dense, batch on dimension 0, valid UTF-8):
    serving_default  inputs [B] string → outputs [B] string, scores [B]   (beam, exported width)
    nbest            inputs [B] + optional beam_size, max_length, length_penalty, num_results
                     → outputs [B, k] string, scores [B, k]
    greedy           inputs [B] + optional max_length → outputs [B]
    sample           inputs [B] + optional temperature, top_k, seed, max_length → outputs [B]
    score            sources [B], targets [B] → tokens [B, T] string, token_log_probs [B, T],
                     log_prob [B]
    rerank           only if exported with a rescorer: inputs [B] + optional beam_size,
                     num_results → outputs [B, k] string, scores [B, k] (the beam's candidates
                     best first by the reranking score; `serving_default` then answers its
                     first)
A classifier (`task=classify`):
    serving_default  inputs [B] string → labels [B] string, probabilities [B, L], classes [B, L]
A language model (`task=lm`), prompts → prompt + continuation:
    serving_default  inputs [B] → outputs [B]                       (greedy)
    generate         inputs [B] + optional beam_size, max_length, length_penalty, num_results
                     → outputs [B, k], scores [B, k]
    sample           inputs [B] + optional temperature, top_k, seed, max_length → outputs [B]
    score            inputs [B] → tokens [B, T], token_log_probs [B, T], log_prob [B],
                     num_tokens [B], perplexity [B]
Optional parameters are vectors with one value per input (so that TF Serving's batching can
split and merge them); omitted, they take the exported defaults (`decode` in config.json).
Within one batch the largest given value is used for the whole batch.

The version is the next integer under `<base>`; the export is written to a hidden temporary
directory under `<base>` and renamed into place, so a server watching `<base>` never sees a
half-written version. Loading needs only `tensorflow` and `tensorflow_text` (a `fused` export:
also s2s_keras, see `export`).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile

import numpy as np
import tensorflow as tf

from s2s_keras.config import Config, DecodeConfig
from s2s_keras.models.ensemble import Ensemble

WARMUP_FILE = "tf_serving_warmup_requests"
KERNELS_FILE = "kernels.json"  # a fused export's kernels (see `export`)


def vector(dtype, name):
    """A signature input: one value per example (`[None]`)."""
    return tf.TensorSpec([None], dtype, name=name)


def per_request(values, default, inputs, name):
    """One value for the batch from an optional per-input vector (see module docstring)."""
    count = tf.size(values)
    check = tf.debugging.assert_equal(
        (count == 0) | (count == tf.size(inputs)),
        True,
        message=f"{name}: give one value per input or none (then the exported default is used)",
    )
    with tf.control_dependencies([check]):
        return tf.cond(
            count > 0, lambda: tf.reduce_max(values), lambda: tf.cast(default, values.dtype)
        )


class Serving(tf.Module):
    """The exported module: a task's signatures (`Task.serving_module` subclasses it and calls
    `publish`). The inference object is reached only through the functions' closures, not as an
    attribute: tracking it would store the compiled model's optimizer state and every weight a
    second time (the SavedModel was 4x the weights)."""

    def __init__(self, *models):
        super().__init__(name="s2s_serving")
        # The underlying tf.Variables, tracked directly: without this the SavedModel's TF1 session
        # loader (TF Serving, saved_model_cli) fails with "Could not find variable ..."
        # (keras-team/keras#20095, tensorflow/serving#2250). `variables`, not `weights`: Keras's
        # RNN layers draw (unused) dropout masks even at inference once recurrent_dropout > 0,
        # so the graph also reads their seed generators' state.
        self.model_weights = [variable.value for model in models for variable in model.variables]
        # Lookup tables are resources that tf.Module tracking does not find through Keras layers.
        self.lookup_tables = [
            getattr(model, side).lookup.lookup_table
            for model in models
            for side in ("source_tokenizer", "target_tokenizer")
            if hasattr(model, side)
        ]

    def publish(self, signatures: dict) -> None:
        self.serving_signatures = signatures
        # Also as attributes: `tf.saved_model.load(path).nbest(inputs=...)` keeps the defaults,
        # which the restored `.signatures[...]` concrete functions do not.
        for name, function in signatures.items():
            setattr(self, name, function)


def decoding_signatures(decoder, d: DecodeConfig) -> dict:
    """`{"greedy", "nbest", "sample"}` signatures over an `inference.SequenceDecoder`, with
    per-request parameters defaulting to the exported `decode`."""
    no_ints, no_floats = tf.constant([], tf.int32), tf.constant([], tf.float32)

    @tf.function(
        input_signature=[
            vector(tf.string, "inputs"),
            vector(tf.int32, "beam_size"),
            vector(tf.int32, "max_length"),
            vector(tf.float32, "length_penalty"),
            vector(tf.int32, "num_results"),
        ]
    )
    def nbest(
        inputs, beam_size=no_ints, max_length=no_ints, length_penalty=no_floats, num_results=no_ints
    ):
        width = per_request(beam_size, d.beam_size, inputs, "beam_size")
        outputs, scores = decoder.beam(
            inputs,
            width,
            per_request(max_length, d.max_length, inputs, "max_length"),
            per_request(length_penalty, d.length_penalty, inputs, "length_penalty"),
            per_request(num_results, width, inputs, "num_results"),
        )
        return {"outputs": outputs, "scores": scores}

    @tf.function(input_signature=[vector(tf.string, "inputs"), vector(tf.int32, "max_length")])
    def greedy(inputs, max_length=no_ints):
        length = per_request(max_length, d.max_length, inputs, "max_length")
        return {"outputs": decoder.greedy(inputs, length)}

    @tf.function(
        input_signature=[
            vector(tf.string, "inputs"),
            vector(tf.float32, "temperature"),
            vector(tf.int32, "top_k"),
            vector(tf.int32, "seed"),
            vector(tf.int32, "max_length"),
        ]
    )
    def sample(inputs, temperature=no_floats, top_k=no_ints, seed=no_ints, max_length=no_ints):
        return {
            "outputs": decoder.sample(
                inputs,
                per_request(temperature, 1.0, inputs, "temperature"),
                per_request(top_k, 0, inputs, "top_k"),
                per_request(seed, 0, inputs, "seed"),
                per_request(max_length, d.max_length, inputs, "max_length"),
            )
        }

    return {"greedy": greedy, "nbest": nbest, "sample": sample}


def decoding_requests(words, decode: DecodeConfig, nbest: str) -> dict:
    """Warmup requests of `decoding_signatures` (the beam one named `nbest`), every input given
    one value per example (the exported defaults)."""

    def each(value, dtype):
        return np.full(len(words), value, dtype)

    max_length = each(decode.max_length, np.int32)
    return {
        nbest: {
            "inputs": words,
            "beam_size": each(decode.beam_size, np.int32),
            "max_length": max_length,
            "length_penalty": each(decode.length_penalty, np.float32),
            "num_results": each(min(2, decode.beam_size), np.int32),
        },
        "greedy": {"inputs": words, "max_length": max_length},
        "sample": {
            "inputs": words,
            "temperature": each(0.7, np.float32),
            "top_k": each(5, np.int32),
            "seed": each(1, np.int32),
            "max_length": max_length,
        },
    }


def serving_module(model, config: Config, rescorer=None) -> Serving:
    """The exported module of `config.task` (with a `rescorer`: see `Task.serving_module`)."""
    from s2s_keras.tasks import get_task

    return get_task(config.task).serving_module(model, config, rescorer)


def warmup_requests(decode: DecodeConfig, task: str = "seq2seq") -> dict:
    """One example request per signature, replayed by the server at load (warmup) and by the
    contract tests. Every input is given, one value per example (the exported defaults), so they
    work with server-side batching and with clients that do not apply SignatureDef defaults."""
    from s2s_keras.tasks import get_task

    return get_task(task).warmup_requests(decode)


def versions(base: str) -> list:
    """The version numbers under `base` (`<base>/<integer>/`), in order."""
    if not os.path.isdir(base):
        return []
    return sorted(int(name) for name in os.listdir(base) if re.fullmatch(r"\d+", name))


def next_version(base: str) -> int:
    return max(versions(base), default=0) + 1


def export(
    model,
    config: Config,
    base: str,
    member_configs: list | None = None,
    fused: bool = False,
    rescorer=None,
) -> str:
    """Writes the next version under `base`; returns its path. `model` may be an `Ensemble`
    (then `member_configs` are its members' run configs, `config` the first's). `rescorer`
    (seq2seq: a model or ensemble, e.g. trained right to left): `serving_default` answers the
    beam's best after reranking with it (weight `config.decode.rescore_weight`), a `rerank`
    signature its n-best; its models are kept as `assets.extra/rescore-<i>.keras`.

    `fused`: the LSTM loops run s2s_keras' C++ kernels (`lstm.fused_inference`), faster; such a
    version loads only in a Python process with s2s_keras installed, on a CPU that runs those
    kernels (`load_saved_model`), not in TF Serving. `assets.extra/kernels.json` names them."""
    from s2s_keras.layers import lstm, lstm_kernels

    if fused and lstm_kernels.load() is None:
        raise RuntimeError(f"a fused export needs the LSTM kernels: {lstm_kernels.status()}")
    os.makedirs(base, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".export-", dir=base)
    try:
        with lstm.fused_inference() if fused else contextlib.nullcontext():
            module = serving_module(model, config, rescorer)
            tf.saved_model.save(module, staging, signatures=module.serving_signatures)
        extra = os.path.join(staging, "assets.extra")
        os.makedirs(extra, exist_ok=True)
        kernels = sorted(op for op in graph_ops(staging) if op.startswith("S2s"))
        if kernels:
            with open(os.path.join(extra, KERNELS_FILE), "w") as handle:
                json.dump({"ops": kernels}, handle)
        with open(os.path.join(extra, "config.json"), "w") as handle:
            handle.write(config.to_json())
        if isinstance(model, Ensemble):
            for i, (member, member_config) in enumerate(
                zip(model.members, member_configs, strict=True)
            ):
                member.save(os.path.join(extra, f"member-{i}.keras"))
                with open(os.path.join(extra, f"member-{i}.config.json"), "w") as handle:
                    handle.write(member_config.to_json())
        else:
            model.save(os.path.join(extra, "model.keras"))
        if rescorer is not None:
            for i, scorer in enumerate(getattr(rescorer, "members", [rescorer])):
                scorer.save(os.path.join(extra, f"rescore-{i}.keras"))
        requests = warmup_requests(config.decode, config.task)
        write_warmup_requests(
            os.path.join(extra, WARMUP_FILE),
            os.path.basename(os.path.abspath(base)),
            {name: r for name, r in requests.items() if name in module.serving_signatures},
        )
        _write_server_examples(base)
        _readable_by_all(staging)  # mkdtemp made it 0700: a server running as another user
        while True:
            target = os.path.join(base, str(next_version(base)))
            try:
                os.rename(staging, target)  # atomic; fails if another export took this number
                return target
            except OSError:
                if not os.path.isdir(target):
                    raise
    finally:
        if os.path.isdir(staging):
            shutil.rmtree(staging)


def graph_ops(path: str) -> set:
    """The op types of a SavedModel's graph and of its functions (calls of its own functions
    left out)."""
    from tensorflow.core.protobuf import saved_model_pb2

    saved_model = saved_model_pb2.SavedModel()
    with open(os.path.join(path, "saved_model.pb"), "rb") as handle:
        saved_model.ParseFromString(handle.read())
    graph = saved_model.meta_graphs[0].graph_def
    ops = {node.op for node in graph.node}
    for function in graph.library.function:
        ops |= {node.op for node in function.node_def}
    return ops - {function.signature.name for function in graph.library.function}


def load_saved_model(path: str):
    """`tf.saved_model.load` of an export, TensorFlow Text's ops and, for a fused export, the
    LSTM kernels registered first (an error naming those this process cannot load)."""
    import tensorflow_text  # noqa: F401  (registers the ops the serving graph uses)

    kernels = os.path.join(path, "assets.extra", KERNELS_FILE)
    if os.path.isfile(kernels):
        from s2s_keras.layers import lstm_kernels

        with open(kernels) as handle:
            lstm_kernels.register(json.load(handle)["ops"])
    return tf.saved_model.load(path)


def _readable_by_all(root: str) -> None:
    """Directories 0755, files 0644 (before the atomic rename that publishes the version)."""
    os.chmod(root, 0o755)
    for directory, folders, files in os.walk(root):
        for name in folders:
            os.chmod(os.path.join(directory, name), 0o755)
        for name in files:
            os.chmod(os.path.join(directory, name), 0o644)


def write_warmup_requests(path: str, model_name: str, requests: dict) -> None:
    """TFRecord of `PredictionLog`s (TF Serving replays them before serving a version)."""
    from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

    with tf.io.TFRecordWriter(path) as writer:
        for signature, inputs in requests.items():
            request = predict_pb2.PredictRequest()
            request.model_spec.name = model_name
            request.model_spec.signature_name = signature
            for name, value in inputs.items():
                request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request)
            )
            writer.write(log.SerializeToString())


def _write_server_examples(base: str) -> None:
    name = os.path.basename(os.path.abspath(base))
    with open(os.path.join(base, "models.config"), "w") as handle:
        handle.write(f"""# tensorflow_model_server --model_config_file=/models/{name}/models.config
model_config_list {{
  config {{
    name: "{name}"
    base_path: "/models/{name}"
    model_platform: "tensorflow"
    model_version_policy {{ latest {{ num_versions: 1 }} }}
  }}
}}
""")
    with open(os.path.join(base, "batching_parameters.txt"), "w") as handle:
        handle.write("""# --enable_batching \\
#   --batching_parameters_file=/models/NAME/batching_parameters.txt
# Every signature input is batched on dimension 0 (parameters are per-input vectors), so all
# signatures can be batched. Decoding time grows with the longest input of a batch.
max_batch_size { value: 256 }
batch_timeout_micros { value: 2000 }
max_enqueued_batches { value: 100 }
num_batch_threads { value: 2 }
""")
