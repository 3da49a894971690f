"""Minimal clients for a TF Serving server running an s2s_keras export (REST and gRPC).

    python -m s2s_keras.serving_client --rest http://localhost:8501 --model g2p hello world
    python -m s2s_keras.serving_client --grpc localhost:8500 --model g2p --signature nbest \\
        --beam-size 5 --num-results 3 hello

Both send one request in TF Serving's "columnar" form: every input is a list with one value per
example (per-request parameters too, see `s2s_keras.export`). Both return `{output name: numpy
array}` with the batch on dimension 0; strings come back as Python `str`.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.request

import numpy as np

_INT_INPUTS = ("beam_size", "max_length", "num_results", "top_k", "seed")
_FLOAT_INPUTS = ("length_penalty", "temperature")


def _as_arrays(inputs: dict) -> dict:
    arrays = {}
    for name, values in inputs.items():
        dtype = np.int32 if name in _INT_INPUTS else np.float32 if name in _FLOAT_INPUTS else object
        arrays[name] = np.asarray(values, dtype=dtype)
    return arrays


def _decode_strings(value: np.ndarray) -> np.ndarray:
    if value.dtype == object:
        return np.vectorize(
            lambda x: x.decode("utf-8") if isinstance(x, bytes) else x, otypes=[object]
        )(value)
    return value


class RestClient:
    """`POST {url}/v1/models/{model}:predict` with `{"signature_name", "inputs": {...}}`."""

    def __init__(
        self, url: str = "http://localhost:8501", model: str = "g2p", timeout: float = 30.0
    ):
        self.endpoint = f"{url.rstrip('/')}/v1/models/{model}:predict"
        self.timeout = timeout

    def predict(self, signature: str = "serving_default", **inputs) -> dict:
        body = {
            "signature_name": signature,
            "inputs": {name: value.tolist() for name, value in _as_arrays(inputs).items()},
        }
        request = urllib.request.Request(
            self.endpoint,
            data=json.dumps(body).encode("utf-8"),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            outputs = json.loads(response.read().decode("utf-8"))["outputs"]
        # Columnar responses hold the bare value when the signature has a single output.
        if not isinstance(outputs, dict):
            outputs = {"outputs": outputs}
        return {
            name: np.asarray(value, dtype=object if _is_text(value) else None)
            for name, value in outputs.items()
        }


def _is_text(value) -> bool:
    while isinstance(value, list) and value:
        value = value[0]
    return isinstance(value, str)


class GrpcClient:
    """`PredictionService.Predict` over gRPC with `tensorflow-serving-api` protos."""

    def __init__(self, target: str = "localhost:8500", model: str = "g2p", timeout: float = 30.0):
        import grpc
        from tensorflow_serving.apis import prediction_service_pb2_grpc

        self.channel = grpc.insecure_channel(target)
        self.stub = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        self.model, self.timeout = model, timeout

    def predict(self, signature: str = "serving_default", **inputs) -> dict:
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2

        request = predict_pb2.PredictRequest()
        request.model_spec.name = self.model
        request.model_spec.signature_name = signature
        for name, value in _as_arrays(inputs).items():
            request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
        response = self.stub.Predict(request, timeout=self.timeout)
        return {
            name: _decode_strings(tf.make_ndarray(proto))
            for name, proto in response.outputs.items()
        }

    def close(self) -> None:
        self.channel.close()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m s2s_keras.serving_client")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--rest", help="e.g. http://localhost:8501")
    where.add_argument("--grpc", help="e.g. localhost:8500")
    parser.add_argument("--model", default="g2p")
    parser.add_argument(
        "--signature",
        default="serving_default",
        choices=("serving_default", "nbest", "greedy", "sample"),
    )
    parser.add_argument("--beam-size", type=int)
    parser.add_argument("--num-results", type=int)
    parser.add_argument("--temperature", type=float)
    parser.add_argument("words", nargs="+")
    args = parser.parse_args(argv)
    client = RestClient(args.rest, args.model) if args.rest else GrpcClient(args.grpc, args.model)
    inputs = {"inputs": args.words}
    for name in ("beam_size", "num_results", "temperature"):
        if getattr(args, name) is not None:
            inputs[name] = [getattr(args, name)] * len(args.words)
    where = args.rest or args.grpc
    try:
        outputs = client.predict(args.signature, **inputs)
    except OSError as error:  # urllib's URLError and connection errors are OSErrors
        reason = getattr(error, "reason", error)
        print(
            f"{parser.prog}: error: cannot reach {where} ({reason}); is the model server "
            "running there?",
            file=sys.stderr,
        )
        return 2
    except Exception as error:  # grpc.RpcError: UNAVAILABLE when no server listens
        if type(error).__module__.split(".")[0] != "grpc":
            raise
        details = error.details() if hasattr(error, "details") else error
        print(
            f"{parser.prog}: error: cannot reach {where} ({details}); is the model server "
            "running there?",
            file=sys.stderr,
        )
        return 2
    for index, word in enumerate(args.words):
        print(
            json.dumps(
                {"input": word, **{k: np.asarray(v[index]).tolist() for k, v in outputs.items()}},
                ensure_ascii=False,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
