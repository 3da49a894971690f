"""A stand-in for TF Serving's REST API over a loaded SavedModel, written from the API's
specification (tensorflow.org/tfx/serving/api_rest), not from our client: the server binary
cannot be installed here.

    POST /v1/models/NAME[/versions/N]:predict
      {"signature_name": S, "instances": [...]}  → 200 {"predictions": [...]}   (row format)
      {"signature_name": S, "inputs": ... }      → 200 {"outputs": ...}         (columnar)
    GET  /v1/models/NAME[/versions/N]            → 200 {"model_version_status": [...]}
    anything wrong                               → 4xx {"error": "..."}

Row format: each instance is one example; with one named input it is the value itself, with
several an object naming each (all of the same batch). The reply has one prediction per
instance: the value when the signature has one output, else an object of them. Columnar: the
inputs as one value (one named input) or an object of named lists; the reply's `outputs` is the
value (one output) or an object. `signature_name` defaults to `serving_default`. Strings are
UTF-8 text; `{"b64": ...}` is a binary string, and outputs whose names end in `_bytes` are
returned that way. Inputs a signature declares but a request omits take the SavedModel's
defaults (the restored function's), as the server's SignatureDef defaults do.
"""

from __future__ import annotations

import base64
import http.server
import json
import re
import threading

import numpy as np
import tensorflow as tf

_PATH = re.compile(r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>\d+))?(?P<verb>:\w+)?$")


class RequestError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def _tensor(value, spec: tf.TensorSpec) -> tf.Tensor:
    def decode(item):
        if isinstance(item, dict):
            if set(item) != {"b64"}:
                raise RequestError(400, f"JSON object {json.dumps(item)} is not {{'b64': ...}}")
            return base64.b64decode(item["b64"])
        if isinstance(item, list):
            return [decode(x) for x in item]
        return item.encode("utf-8") if isinstance(item, str) else item

    try:
        return tf.constant(decode(value), spec.dtype)
    except (TypeError, ValueError) as error:
        raise RequestError(400, f"cannot read {spec.name!r} as {spec.dtype.name}: {error}")


def _json_value(name: str, value: np.ndarray):
    if value.dtype == object:
        if name.endswith("_bytes"):
            encode = np.vectorize(lambda b: {"b64": base64.b64encode(b).decode()}, otypes=[object])
        else:
            encode = np.vectorize(lambda b: b.decode("utf-8"), otypes=[object])
        return encode(value).tolist()
    return value.tolist()


class Model:
    """What the server holds for one model name: the loaded SavedModel and its version."""

    def __init__(self, loaded, version: int = 1):
        self.loaded, self.version = loaded, version

    def predict(self, body) -> dict:
        if not isinstance(body, dict):
            raise RequestError(400, "JSON Value: request body must be an object")
        if ("instances" in body) == ("inputs" in body):
            raise RequestError(400, "Missing 'inputs' or 'instances' key (exactly one of them)")
        name = body.get("signature_name", "serving_default")
        if name not in self.loaded.signatures:
            raise RequestError(400, f'Serving signature name: "{name}" not found in signature def')
        specs = self.loaded.signatures[name].structured_input_signature[1]
        row = "instances" in body
        columns = self._columns(body["instances"] if row else body["inputs"], specs, row)
        unknown = sorted(set(columns) - set(specs))
        if unknown:
            raise RequestError(400, f"Input tensor alias not found in signature: {unknown[0]}")
        tensors = {key: _tensor(value, specs[key]) for key, value in columns.items()}
        try:
            outputs = getattr(self.loaded, name)(**tensors)
        except (tf.errors.InvalidArgumentError, TypeError, ValueError) as error:
            raise RequestError(400, str(error).strip().splitlines()[0])
        values = {key: _json_value(key, value.numpy()) for key, value in outputs.items()}
        if row:
            count = len(next(iter(values.values())))
            if len(values) == 1:
                return {"predictions": next(iter(values.values()))}
            return {"predictions": [{k: v[i] for k, v in values.items()} for i in range(count)]}
        return {"outputs": next(iter(values.values())) if len(values) == 1 else values}

    @staticmethod
    def _columns(data, specs: dict, row: bool) -> dict:
        names = list(specs)
        if row:
            if not isinstance(data, list):
                raise RequestError(400, "'instances' must be a list")
            if data and all(isinstance(item, dict) and "b64" not in item for item in data):
                keys = set(data[0])
                if any(set(item) != keys for item in data):
                    raise RequestError(400, "every instance must name the same inputs")
                return {key: [item[key] for item in data] for key in keys}
            if len(names) != 1:
                raise RequestError(
                    400,
                    f"the signature has several inputs ({', '.join(names)}): each instance "
                    "must be an object naming them",
                )
            return {names[0]: data}
        if isinstance(data, dict) and "b64" not in data:
            return data
        if len(names) != 1:
            raise RequestError(400, f"'inputs' must be an object naming {', '.join(names)}")
        return {names[0]: data}


def serve(models: dict):
    """Starts the stand-in on 127.0.0.1 (a free port) for `{name: Model}`; returns
    `(port, stop)`."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def _reply(self, status: int, payload: dict) -> None:
            data = json.dumps(payload).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _model(self):
            match = _PATH.match(self.path)
            if match is None:
                raise RequestError(404, f"Malformed request: {self.command} {self.path}")
            model = models.get(match["name"])
            version = match["version"]
            if model is None or (version is not None and int(version) != model.version):
                raise RequestError(404, f"Servable not found for request: {match['name']}")
            return model, match["verb"]

        def do_POST(self):  # noqa: N802
            try:
                model, verb = self._model()
                if verb != ":predict":
                    raise RequestError(404, f"Malformed request: POST {self.path}")
                length = int(self.headers.get("Content-Length", 0))
                try:
                    body = json.loads(self.rfile.read(length) or b"null")
                except json.JSONDecodeError as error:
                    raise RequestError(400, f"JSON Parse error: {error}")
                self._reply(200, model.predict(body))
            except RequestError as error:
                self._reply(error.status, {"error": str(error)})

        def do_GET(self):  # noqa: N802
            try:
                model, verb = self._model()
                if verb is not None:
                    raise RequestError(404, f"Malformed request: GET {self.path}")
                status = {"state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
                self._reply(
                    200, {"model_version_status": [{"version": str(model.version), **status}]}
                )
            except RequestError as error:
                self._reply(error.status, {"error": str(error)})

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server.server_address[1], server.shutdown
