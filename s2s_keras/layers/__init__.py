"""Network pieces that Keras does not ship, registered for `.keras` loading."""

from s2s_keras.layers.attention import Attention
from s2s_keras.layers.attention_decoder import AttentionDecoder
from s2s_keras.layers.attention_pooling import AttentionPooling
from s2s_keras.layers.learned_initial_state import LearnedInitialState
from s2s_keras.layers.lstm import LSTM, Bidirectional
from s2s_keras.layers.recurrent import (
    cell_steppers,
    recurrent_cell,
    recurrent_layer,
    state_count,
    step_cells,
    token_inputs,
)
from s2s_keras.layers.reverse_sequence import ReverseSequence

__all__ = [
    "Attention",
    "AttentionDecoder",
    "AttentionPooling",
    "Bidirectional",
    "LSTM",
    "LearnedInitialState",
    "ReverseSequence",
    "cell_steppers",
    "recurrent_cell",
    "recurrent_layer",
    "state_count",
    "step_cells",
    "token_inputs",
]
