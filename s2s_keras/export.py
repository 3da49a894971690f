"""SavedModel for TF Serving (`<base>/<version>/`, strings in → strings out) plus `.keras`.

Layout of one export:
    <base>/<version>/saved_model.pb, variables/      the serving graph (tokenize → encode →
                                                      greedy loop → detokenize, all in-graph)
    <base>/<version>/assets.extra/config.json        the resolved run config
    <base>/<version>/assets.extra/model.keras        the Keras model, for other Keras apps

The version is the next integer under `<base>`; the export is written to a hidden temporary
directory under `<base>` and renamed into place, so a server watching `<base>` never sees a
half-written version. Loading needs only `tensorflow` and `tensorflow_text`:

    import tensorflow as tf, tensorflow_text  # noqa: F401  (registers the normalization ops)
    g2p = tf.saved_model.load("saved_models/g2p/1")
    g2p.signatures["serving_default"](inputs=tf.constant(["hello"]))["outputs"]
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile

import tensorflow as tf

from s2s_keras.config import Config
from s2s_keras.inference import Translator

SIGNATURE_INPUT = "inputs"
SIGNATURE_OUTPUT = "outputs"


class _ServingModule(tf.Module):
    def __init__(self, translator: Translator):
        super().__init__(name="s2s_serving")
        self.translator = translator
        # Lookup tables are resources that tf.Module tracking does not find through Keras layers.
        self.lookup_tables = [translator.model.source_tokenizer.lookup.lookup_table,
                              translator.model.target_tokenizer.lookup.lookup_table]

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=SIGNATURE_INPUT)])
    def serve(self, inputs):
        return {SIGNATURE_OUTPUT: self.translator(inputs)}


def next_version(base: str) -> int:
    versions = [int(name) for name in os.listdir(base) if re.fullmatch(r"\d+", name)] if os.path.isdir(base) else []
    return max(versions, default=0) + 1


def export(model, config: Config, base: str) -> str:
    """Writes the next version under `base`; returns its path."""
    os.makedirs(base, exist_ok=True)
    translator = Translator(model, max_length=config.decode.max_length,
                            max_input_length=config.decode.max_input_length)
    module = _ServingModule(translator)
    staging = tempfile.mkdtemp(prefix=".export-", dir=base)
    try:
        tf.saved_model.save(module, staging, signatures={"serving_default": module.serve})
        extra = os.path.join(staging, "assets.extra")
        os.makedirs(extra, exist_ok=True)
        with open(os.path.join(extra, "config.json"), "w") as handle:
            handle.write(config.to_json())
        model.save(os.path.join(extra, "model.keras"))
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
