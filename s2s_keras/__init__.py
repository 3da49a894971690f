"""s2s_keras: RNN encoder-decoders for Keras 3 / TensorFlow — train, evaluate, export, serve.

Importing the package registers its Keras classes, so `keras.saving.load_model("model.keras")`
works with `safe_mode=True`.
"""

from s2s_keras import losses, metrics, optimizers, text  # noqa: F401  (registers Keras classes)
from s2s_keras.config import Config, preset
from s2s_keras.g2p import G2p
from s2s_keras.models import Seq2Seq

__version__ = "0.1.0"
__all__ = ["Config", "G2p", "Seq2Seq", "preset", "__version__"]
