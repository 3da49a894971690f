from s2s_keras.models.classifier import Classifier
from s2s_keras.models.ensemble import Ensemble
from s2s_keras.models.language_model import LanguageModel
from s2s_keras.models.seq2seq import Seq2Seq

__all__ = ["Classifier", "Ensemble", "LanguageModel", "Seq2Seq", "with_precision"]


def with_precision(model, precision: str):
    """A copy of `model` (same config and weights, no optimizer) computing in `precision`; of an
    `Ensemble`, an ensemble of its members' copies."""
    if isinstance(model, Ensemble):
        return Ensemble([with_precision(member, precision) for member in model.members])
    copy = type(model).from_config({**model.get_config(), "precision": precision})
    copy.set_weights(model.get_weights())
    return copy
