"""Decoding strategies: loops over a step function `(token_ids, state) -> (logits, state)`.

They know nothing about LSTMs; in practice the step function is `model.step_function()` (a
`Seq2Seq` or `LanguageModel` step with its weights read once, outside the loop).
"""

from s2s_keras.decoding.beam_search import beam_search, length_penalty
from s2s_keras.decoding.greedy import decode_loop, greedy_search
from s2s_keras.decoding.sampling import sample

__all__ = ["beam_search", "decode_loop", "greedy_search", "length_penalty", "sample"]
