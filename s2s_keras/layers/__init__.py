"""Network pieces that Keras does not ship, registered for `.keras` loading."""

from s2s_keras.layers.reverse_sequence import ReverseSequence

__all__ = ["ReverseSequence"]
