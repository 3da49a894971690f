"""s2s_keras: RNN encoder-decoders for Keras 3 / TensorFlow — train, evaluate, export, serve.

Importing the package registers its Keras classes, so `keras.saving.load_model("model.keras")`
works with `safe_mode=True`.

On x86 CPUs it also turns TensorFlow's oneDNN ops on unless `TF_ENABLE_ONEDNN_OPTS` says
otherwise, before TensorFlow loads (`onednn_default`).
"""

from s2s_keras.onednn_default import set_onednn_default

set_onednn_default()

from s2s_keras import losses, metrics, optimizers, text  # noqa: E402, F401  (registers Keras classes)
from s2s_keras.config import Config, preset  # noqa: E402
from s2s_keras.g2p import G2p  # noqa: E402
from s2s_keras.models import Seq2Seq  # noqa: E402

__version__ = "0.1.0"
__all__ = ["Config", "G2p", "Seq2Seq", "preset", "__version__"]
