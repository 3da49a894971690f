"""Decoding strategies: loops over a step function `(token_ids, state) -> (logits, state)`.

They know nothing about LSTMs; `Seq2Seq.decode_step` is the step function in practice.
"""

from s2s_keras.decoding.greedy import greedy_search

__all__ = ["greedy_search"]
