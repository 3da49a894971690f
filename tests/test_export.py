"""Contract tests of the TF Serving export (the server binary itself cannot run here)."""

import concurrent.futures
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from conftest import REPO, run_python

from s2s_keras.config import preset
from s2s_keras.export import KERNELS_FILE, WARMUP_FILE, export, graph_ops, warmup_requests
from s2s_keras.inference import Translator
from s2s_keras.layers import lstm_kernels

SIGNATURES = ("serving_default", "nbest", "greedy", "sample", "score")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    import keras

    from s2s_keras import Seq2Seq

    keras.utils.set_random_seed(3)
    model = Seq2Seq(
        list("abcdehlorw"),
        ["X", "Y", "Z", "W"],
        embedding_size=8,
        hidden_units=8,
        num_layers=2,
        reverse_source=True,
    )
    base = tmp_path_factory.mktemp("saved_models") / "g2p"
    return model, export(model, preset("tiny"), str(base)), base


@pytest.fixture(scope="module")
def loaded(exported):
    import tensorflow_text  # noqa: F401

    return tf.saved_model.load(exported[1])


def test_layout_versions_and_carried_files(exported):
    model, path, base = exported
    assert os.path.basename(path) == "1" and os.path.isfile(os.path.join(path, "saved_model.pb"))
    extra = os.path.join(path, "assets.extra")
    with open(os.path.join(extra, "config.json")) as handle:
        assert json.load(handle)["preset"] == "tiny"
    for name in ("model.keras", WARMUP_FILE):
        assert os.path.isfile(os.path.join(extra, name))
    for name in ("models.config", "batching_parameters.txt"):
        assert os.path.isfile(os.path.join(base, name))
    second = export(model, preset("tiny"), str(base))
    assert os.path.basename(second) == "2"
    assert sorted(n for n in os.listdir(base) if not n.endswith((".config", ".txt"))) == ["1", "2"]


def test_fresh_process_without_our_package_answers_every_signature(exported):
    model, path, _ = exported
    words = ["hello", "World", "", "a" * 500, "zz☃é", "   "]
    decode = preset("tiny").decode
    translator = Translator(model, decode)
    expected, _ = translator.beam(
        tf.constant(words), decode.beam_size, decode.max_length, decode.length_penalty, 1
    )
    out = run_python(
        f"""
import sys, json
sys.modules["s2s_keras"] = sys.modules["pipelines"] = None  # any import of our package fails
import tensorflow as tf, tensorflow_text  # noqa: F401
loaded = tf.saved_model.load({path!r})
sig = loaded.signatures
words = tf.constant({words!r})
best = sig["serving_default"](inputs=words)
assert best["outputs"].shape == (6,) and best["scores"].shape == (6,)
none_i, none_f = tf.constant([], tf.int32), tf.constant([], tf.float32)  # empty: exported default
nbest = sig["nbest"](inputs=words, beam_size=tf.fill([6], 4), num_results=tf.fill([6], 3),
                     max_length=none_i, length_penalty=none_f)
assert nbest["outputs"].shape == (6, 3) and nbest["scores"].shape == (6, 3), nbest
assert loaded.nbest(inputs=words)["outputs"].shape == (6, {decode.beam_size})  # omitted: defaults
assert loaded.greedy(inputs=words)["outputs"].shape == (6,)
assert loaded.sample(inputs=words, seed=tf.fill([6], 4))["outputs"].shape == (6,)
score = sig["score"](sources=words, targets=tf.constant(["X Y", "Z", "", "W", "X", "Y"]))
assert score["log_prob"].shape == (6,) and score["token_log_probs"].shape[0] == 6
for name in {list(SIGNATURES)!r}:
    args = dict(sources=tf.constant([], tf.string), targets=tf.constant([], tf.string)) \\
        if name == "score" else dict(inputs=tf.constant([], tf.string))
    for key, value in getattr(loaded, name)(**args).items():
        assert value.shape[0] == 0, (name, key, value.shape)
print(json.dumps([t.decode("utf-8") for t in best["outputs"].numpy()]))
""",
        cwd=os.path.dirname(path),
    )
    outputs = json.loads(out.strip().splitlines()[-1])
    assert outputs == [t.decode("utf-8") for t in expected[:, 0].numpy()]
    assert outputs[2] == "" and outputs[5] == ""  # empty / blank sources give ""


def meta_graph(path):
    from tensorflow.core.protobuf import saved_model_pb2

    saved_model = saved_model_pb2.SavedModel()
    with open(os.path.join(path, "saved_model.pb"), "rb") as handle:
        saved_model.ParseFromString(handle.read())
    return saved_model.meta_graphs[0]


def test_signature_defs_carry_defaults_for_omitted_parameters(exported):
    """TF Serving fills omitted inputs from SignatureDef.defaults: `{"instances": ["word"]}`."""
    signature_defs = meta_graph(exported[1]).signature_def
    assert set(SIGNATURES) <= set(signature_defs)
    expected = {
        "nbest": {"beam_size", "max_length", "length_penalty", "num_results"},
        "sample": {"temperature", "top_k", "seed", "max_length"},
        "greedy": {"max_length"},
        "serving_default": set(),
        "score": set(),
    }
    for name, parameters in expected.items():
        assert set(signature_defs[name].defaults) == parameters, name
        assert set(signature_defs[name].inputs) - parameters in ({"inputs"}, {"sources", "targets"})


def test_score_is_the_sum_of_teacher_forced_log_probs(exported, loaded):
    model, _, _ = exported
    result = loaded.signatures["score"](
        sources=tf.constant(["hello"]), targets=tf.constant(["X Y"])
    )
    source_ids = model.source_tokenizer.tokenize(tf.constant(["hello"]))
    logits = model({"source_ids": source_ids, "target_in_ids": tf.constant([[2, 4, 5]])})
    log_probs = tf.nn.log_softmax(logits).numpy()[0]
    expected = [log_probs[0, 4], log_probs[1, 5], log_probs[2, 3]]  # X, Y, </s>
    np.testing.assert_allclose(result["token_log_probs"].numpy()[0], expected, atol=1e-5)
    assert result["log_prob"].numpy()[0] == pytest.approx(sum(expected), abs=1e-5)
    assert [t.decode() for t in result["tokens"].numpy()[0]] == ["X", "Y", "</s>"]


def test_a_right_to_left_export_answers_in_reading_order(exported, loaded, tmp_path):
    """The same weights emitting right to left (`model.reverse_target`): the export's greedy and
    beam text is the left-to-right export's read backwards, its score the score of the reversed
    target, as in process."""
    from s2s_keras import Seq2Seq

    model, _, _ = exported
    backward = Seq2Seq.from_config({**model.get_config(), "reverse_target": True})
    backward.set_weights(model.get_weights())
    other = tf.saved_model.load(export(backward, preset("tiny"), str(tmp_path / "r2l")))
    words = tf.constant(["hello", "world", "", "low"])
    targets = tf.constant(["X Y Z", "W", "Y", "Z X"])

    def read_backwards(texts):
        return [" ".join(reversed(t.decode().split())).encode() for t in texts.numpy()]

    greedy = other.greedy(inputs=words)["outputs"]
    assert greedy.numpy().tolist() == read_backwards(loaded.greedy(inputs=words)["outputs"])
    decode = preset("tiny").decode
    in_process = Translator(backward, decode)
    assert greedy.numpy().tolist() == in_process.greedy(words, decode.max_length).numpy().tolist()
    assert other.serving_default(inputs=words)["outputs"].numpy().tolist() == read_backwards(
        loaded.serving_default(inputs=words)["outputs"]
    )
    reversed_targets = tf.constant(read_backwards(targets))
    np.testing.assert_allclose(
        other.score(sources=words, targets=targets)["log_prob"],
        loaded.score(sources=words, targets=reversed_targets)["log_prob"],
        atol=1e-5,
    )


def test_op_audit_only_serving_ops_no_cudnn_no_forced_xla(exported):
    non_core = audit_ops(exported[1])
    # TensorFlow Text ops linked into the stock tensorflow_model_server.
    assert non_core <= {"NormalizeUTF8", "CaseFoldUTF8"}, non_core
    assert non_core  # the audit really sees the text ops (else it checks nothing)


def test_a_fused_export_decodes_as_the_default_one_in_a_process_of_its_own(exported):
    """`fused`: the LSTM loops on the kernels, named in `kernels.json`; loaded through
    `load_saved_model` in a new process, every decoder gives the default export's answers."""
    model, path, base = exported
    fused = export(model, preset("tiny"), str(base) + "-fused", fused=True)
    with open(os.path.join(fused, "assets.extra", KERNELS_FILE)) as handle:
        kernels = json.load(handle)["ops"]
    assert "S2sLstmGates" in kernels
    if lstm_kernels.decoding_ops() is not None:  # greedy and beam search's whole loops: one op each
        assert {"S2sLstmGreedy", "S2sLstmBeamSearch"} <= set(kernels)
    assert kernels == sorted(op for op in graph_ops(fused) if op.startswith("S2s"))
    assert not [op for op in graph_ops(path) if op.startswith("S2s")]
    assert not os.path.exists(os.path.join(path, "assets.extra", KERNELS_FILE))
    out = run_python(
        f"""
import json
import tensorflow as tf
from s2s_keras.export import load_saved_model
words = tf.constant(["hello", "World", "", "a" * 60, "zz☃é", "low", "hold", "were"])
answers = []
for path in ({path!r}, {fused!r}):
    loaded = load_saved_model(path)
    answers.append({{
        "beam": loaded.nbest(inputs=words, num_results=tf.fill([8], 3))["outputs"],
        "greedy": loaded.greedy(inputs=words)["outputs"],
        "score": loaded.score(sources=words, targets=tf.fill([8], "X Y"))["log_prob"],
    }})
print(json.dumps([{{k: v.numpy().tolist() for k, v in a.items()}} for a in answers], default=str))
""",
        cwd=REPO,
    )
    plain, fused = json.loads(out.strip().splitlines()[-1])
    assert fused["beam"] == plain["beam"] and fused["greedy"] == plain["greedy"]
    np.testing.assert_allclose(fused["score"], plain["score"], rtol=1e-6)


def test_a_fused_export_needs_the_kernels(exported, tmp_path, monkeypatch):
    from s2s_keras.layers import lstm_kernels

    monkeypatch.setitem(lstm_kernels._loaded, lstm_kernels.LIBRARY, (None, "not built here"))
    with pytest.raises(RuntimeError, match="needs the LSTM kernels: tensorflow ops: not built"):
        export(exported[0], preset("tiny"), str(tmp_path / "fused"), fused=True)
    assert not os.path.exists(tmp_path / "fused")


def audit_ops(path) -> set:
    """Checks no Cudnn op and no forced XLA; returns the ops that core TensorFlow lacks."""
    graph = meta_graph(path).graph_def
    ops, forced_xla = {n.op for n in graph.node}, []
    for function in graph.library.function:
        ops |= {n.op for n in function.node_def}
        if function.attr["_XlaMustCompile"].b:
            forced_xla.append(function.signature.name)
    functions = {f.signature.name for f in graph.library.function}
    ops -= functions  # calls of library functions
    assert not forced_xla
    assert not [op for op in ops if op.startswith("Cudnn")]
    # Registered in a process with only core TensorFlow (no tensorflow_text)?
    out = run_python(
        f"""
from tensorflow.python.framework import op_def_registry
import json
print(json.dumps([op for op in {sorted(ops)!r} if op_def_registry.get(op) is None]))
""",
        cwd=REPO,
    )
    return set(json.loads(out.strip().splitlines()[-1]))


def test_saved_model_cli_runs_the_export(exported):
    _, path, _ = exported
    code = (
        "import sys, tensorflow_text; from tensorflow.python.tools import saved_model_cli;"
        "sys.argv = ['saved_model_cli'] + sys.argv[1:]; saved_model_cli.main()"
    )
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            "run",
            "--dir",
            path,
            "--tag_set",
            "serve",
            "--signature_def",
            "serving_default",
            "--input_exprs",
            "inputs=['hello', 'world']",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert (
        "Result for output key outputs" in result.stdout
        and "Result for output key scores" in result.stdout
    )


def test_warmup_records_replay_into_predict_responses(exported, loaded):
    _, path, _ = exported
    from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

    records = list(
        tf.data.TFRecordDataset(os.path.join(path, "assets.extra", WARMUP_FILE)).as_numpy_iterator()
    )
    assert 0 < len(records) <= 1000
    seen = set()
    for record in records:
        log = prediction_log_pb2.PredictionLog.FromString(record)
        request = log.predict_log.request
        signature = request.model_spec.signature_name
        inputs = {name: tf.make_ndarray(proto) for name, proto in request.inputs.items()}
        outputs = loaded.signatures[signature](**{k: tf.constant(v) for k, v in inputs.items()})
        response = predict_pb2.PredictResponse()
        for name, value in outputs.items():
            response.outputs[name].CopyFrom(tf.make_tensor_proto(value.numpy()))
            assert value.shape[0] == 2
        seen.add(signature)
    # Every signature warms up (`rerank` is only in an export with a rescorer: test_inference).
    assert seen == set(SIGNATURES) == set(warmup_requests(preset("tiny").decode)) - {"rerank"}


def test_tfsm_layer_in_a_keras_app_without_our_package(exported):
    _, path, _ = exported
    out = run_python(
        f"""
import sys
sys.modules["s2s_keras"] = sys.modules["pipelines"] = None
import keras, tensorflow as tf, tensorflow_text  # noqa: F401
layer = keras.layers.TFSMLayer({path!r}, call_endpoint="serving_default")
result = layer(tf.constant(["hello", "world"]))
print(sorted(result), result["outputs"].shape)
""",
        cwd=REPO,
    )
    assert "['outputs', 'scores'] (2,)" in out


def hostile_inputs():
    inputs = [
        b"",
        b" ",
        b"\t\n",
        b"\x00",
        b"\x7f\x1b[31m",
        "😀🎉".encode(),
        "שלום".encode(),
        "مرحبا".encode(),
        "\u202eevil".encode(),
        b"\xff\xfe\xfd",
        b"\xc3",
        b"ok\xe2\x82",
        "Ǆ ﬁ Ⅻ".encode(),
        b"a" * 10_000,
        ("é" * 300).encode(),
        b"hello world",
        "\ufeffbom".encode(),
        b"\r\n\r\n",
    ]
    rng = np.random.default_rng(0)
    while len(inputs) < 120:
        inputs.append(bytes(rng.integers(0, 256, size=int(rng.integers(0, 40)), dtype=np.uint8)))
    return inputs


def test_hostile_inputs_and_parameters_give_dense_valid_utf8(loaded):
    sig = loaded  # the restored functions (omitted parameters take the exported defaults)
    inputs = tf.constant(hostile_inputs())
    n = int(inputs.shape[0])
    assert n >= 100
    results = [
        sig.serving_default(inputs=inputs),
        sig.greedy(inputs=inputs),
        sig.nbest(inputs=inputs, beam_size=tf.fill([n], 0), max_length=tf.fill([n], -5)),
        sig.nbest(
            inputs=inputs,
            beam_size=tf.fill([n], 10_000),
            max_length=tf.fill([n], 10**9),
            length_penalty=tf.fill([n], -3.0),
            num_results=tf.fill([n], 99),
        ),
        sig.sample(inputs=inputs, top_k=tf.fill([n], -1), seed=tf.fill([n], 2**31 - 1)),
        sig.score(sources=inputs, targets=inputs),
    ]
    for result in results:
        for name, value in result.items():
            assert value.shape[0] == n, (name, value.shape)
            if value.dtype == tf.string:
                for text in value.numpy().ravel():
                    text.decode("utf-8")  # raises if not valid UTF-8
            else:
                assert np.isfinite(value.numpy()).all()
    assert results[2]["outputs"].shape[1] == 1  # beam_size 0 -> 1
    assert results[3]["outputs"].shape[1] == 32  # clamped to decode.max_beam_size
    with pytest.raises(tf.errors.InvalidArgumentError, match="temperature must be > 0"):
        sig.sample(inputs=inputs, temperature=tf.fill([n], 0.0))
    with pytest.raises(tf.errors.InvalidArgumentError, match="beam_size: give one value per input"):
        sig.nbest(inputs=inputs, beam_size=tf.constant([3, 3]))
    big = sig.serving_default(inputs=tf.constant(["hello"] * 4096))["outputs"]
    assert big.shape == (4096,) and len(set(big.numpy().tolist())) == 1


def test_concurrent_calls_match_serial_calls(loaded):
    words = [
        tf.constant([w]) for w in ["hello", "world", "lower", "hold", "ear", "word", "road", "rode"]
    ]
    serving, nbest = loaded.signatures["serving_default"], loaded.nbest
    serial = [
        (serving(inputs=w)["outputs"].numpy().tolist(), nbest(inputs=w)["scores"].numpy().tolist())
        for w in words
    ]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        futures = [
            pool.submit(
                lambda w: (
                    serving(inputs=w)["outputs"].numpy().tolist(),
                    nbest(inputs=w)["scores"].numpy().tolist(),
                ),
                w,
            )
            for w in words * 4
        ]
        parallel = [f.result() for f in futures]
    assert parallel == serial * 4
