"""The REST and gRPC clients against stand-in servers that run the real export.

The stand-ins speak TF Serving's wire formats (the `tensorflow-serving-api` gRPC service and
protos; the REST API as `tf_serving_rest.py` implements it from its specification) but are not
the server binary, which cannot be installed here.
"""

import concurrent.futures
import json

import numpy as np
import pytest
import tensorflow as tf
import tf_serving_rest

from s2s_keras.config import preset
from s2s_keras.export import export
from s2s_keras.serving_client import GrpcClient, RestClient


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    import keras
    import tensorflow_text  # noqa: F401

    from s2s_keras import Seq2Seq

    keras.utils.set_random_seed(5)
    model = Seq2Seq(
        list("abcdehlorw"), ["X", "Y", "Z"], embedding_size=8, hidden_units=8, num_layers=1
    )
    return tf.saved_model.load(
        export(model, preset("tiny"), str(tmp_path_factory.mktemp("sm") / "g2p"))
    )


def run(loaded, signature, inputs):
    """What the server does: restored function with SignatureDef defaults for omitted inputs."""
    specs = loaded.signatures[signature].structured_input_signature[1]
    tensors = {name: tf.constant(value, specs[name].dtype) for name, value in inputs.items()}
    return getattr(loaded, signature)(**tensors)


@pytest.fixture(scope="module")
def rest_url(loaded):
    port, stop = tf_serving_rest.serve({"g2p": tf_serving_rest.Model(loaded)})
    yield f"http://127.0.0.1:{port}"
    stop()


@pytest.fixture(scope="module")
def grpc_target(loaded):
    import grpc
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    class Servicer(prediction_service_pb2_grpc.PredictionServiceServicer):
        def Predict(self, request, context):  # noqa: N802
            inputs = {name: tf.make_ndarray(proto) for name, proto in request.inputs.items()}
            response = predict_pb2.PredictResponse()
            for name, value in run(loaded, request.model_spec.signature_name, inputs).items():
                response.outputs[name].CopyFrom(tf.make_tensor_proto(value.numpy()))
            return response

    server = grpc.server(concurrent.futures.ThreadPoolExecutor(4))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(Servicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop(None)


def expected(loaded, signature, **inputs):
    return {k: v.numpy() for k, v in run(loaded, signature, inputs).items()}


@pytest.mark.parametrize("kind", ["rest", "grpc"])
def test_clients_round_trip_every_signature(kind, loaded, rest_url, grpc_target):
    client = RestClient(rest_url, "g2p") if kind == "rest" else GrpcClient(grpc_target, "g2p")
    words = ["hello", "world", "", "ǅ☃"]
    best = client.predict("serving_default", inputs=words)
    assert best["outputs"].shape == (4,) and best["outputs"][2] == ""
    reference = expected(loaded, "serving_default", inputs=words)
    assert [o for o in best["outputs"]] == [o.decode("utf-8") for o in reference["outputs"]]
    np.testing.assert_allclose(best["scores"], reference["scores"], rtol=1e-5)
    nbest = client.predict("nbest", inputs=words, beam_size=[4] * 4, num_results=[3] * 4)
    assert nbest["outputs"].shape == (4, 3) and nbest["scores"].shape == (4, 3)
    assert client.predict("nbest", inputs=words)["outputs"].shape == (
        4,
        preset("tiny").decode.beam_size,
    )
    assert client.predict("sample", inputs=words, temperature=[0.5] * 4, seed=[3] * 4)[
        "outputs"
    ].shape == (4,)
    score = client.predict("score", sources=["hello"], targets=["X Y"])
    assert score["log_prob"].shape == (1,) and score["log_prob"][0] < 0


def test_command_line_client(rest_url, capsys):
    from s2s_keras.serving_client import main

    assert (
        main(
            [
                "--rest",
                rest_url,
                "--model",
                "g2p",
                "--signature",
                "nbest",
                "--beam-size",
                "3",
                "--num-results",
                "2",
                "hello",
            ]
        )
        == 0
    )
    line = json.loads(capsys.readouterr().out.strip())
    assert line["input"] == "hello" and len(line["outputs"]) == 2 and len(line["scores"]) == 2


def post(url: str, body) -> tuple:
    import urllib.error
    import urllib.request

    data = body if isinstance(body, bytes) else json.dumps(body).encode("utf-8")
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data)) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_the_rest_stand_in_speaks_both_formats_and_errors_as_the_spec(rest_url, loaded):
    url = f"{rest_url}/v1/models/g2p:predict"
    reference = expected(loaded, "serving_default", inputs=["hello", "world"])
    status, row = post(url, {"instances": ["hello", "world"]})
    assert status == 200 and [p["outputs"] for p in row["predictions"]] == [
        o.decode() for o in reference["outputs"]
    ]
    status, columnar = post(url, {"inputs": ["hello", "world"]})
    assert status == 200 and columnar["outputs"]["outputs"] == [
        p["outputs"] for p in row["predictions"]
    ]
    status, named = post(
        f"{rest_url}/v1/models/g2p/versions/1:predict",
        {"signature_name": "nbest", "instances": [{"inputs": "hello", "num_results": 2}]},
    )
    assert status == 200 and len(named["predictions"][0]["outputs"]) == 2
    status, greedy = post(url, {"signature_name": "greedy", "inputs": {"inputs": ["hello"]}})
    assert status == 200 and isinstance(greedy["outputs"], list)  # one output: the value itself
    for body, code, message in [
        (b"{not json", 400, "JSON Parse error"),
        ({"instances": ["a"], "inputs": ["a"]}, 400, "exactly one"),
        ({"signature_name": "nope", "instances": ["a"]}, 400, '"nope" not found'),
        ({"signature_name": "nbest", "instances": ["a"]}, 400, "must be an object naming"),
        ({"inputs": {"inputz": ["a"]}}, 400, "alias not found in signature: inputz"),
    ]:
        status, reply = post(url, body)
        assert (status, set(reply)) == (code, {"error"}) and message in reply["error"], reply
    status, reply = post(f"{rest_url}/v1/models/other:predict", {"instances": ["a"]})
    assert status == 404 and "Servable not found" in reply["error"]
