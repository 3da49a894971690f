from s2s_keras.models.classifier import Classifier
from s2s_keras.models.ensemble import Ensemble
from s2s_keras.models.language_model import LanguageModel
from s2s_keras.models.seq2seq import Seq2Seq

__all__ = ["Classifier", "Ensemble", "LanguageModel", "Seq2Seq"]
