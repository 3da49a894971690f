"""Strings in, strings out: tokenization → encode → decoding loop → detokenization, in one graph.

`Translator` is the single inference path: `s2s predict`, `s2s evaluate` and the SavedModel's
`serving_default` signature all call it.
"""

from __future__ import annotations

import tensorflow as tf

from s2s_keras.decoding import greedy_search
from s2s_keras.text import END_ID, START_ID


class Translator(tf.Module):
    """Greedy string → string inference around a `Seq2Seq` (its own layers and tokenizers).

    Contract (also the export's): sources are normalized like the training data and cut to
    `max_input_length` tokens; characters never seen in training map to the unknown id; outputs
    have at most `max_length` tokens; an empty (or all-whitespace) source gives ""; an empty batch
    gives an empty batch.

    Example:
        >>> translator = Translator(model, max_length=40, max_input_length=64)   # doctest: +SKIP
        >>> translator(tf.constant(["hello"]))                                   # doctest: +SKIP
        <tf.Tensor: shape=(1,), dtype=string, numpy=array([b'HH AH L OW'], dtype=object)>
    """

    def __init__(self, model, max_length: int, max_input_length: int):
        super().__init__(name="translator")
        self.model = model
        self.max_length = max_length
        self.max_input_length = max_input_length

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def __call__(self, strings):
        return self.model.target_tokenizer.detokenize(self.translate_ids(strings)[1])

    def translate_ids(self, strings):
        """Returns `(source_ids (batch, S), output ids (batch, T))`."""
        source_ids = self.model.source_tokenizer.tokenize(strings, max_length=self.max_input_length)
        # One extra padding column: an empty batch or a batch of "" would give a zero-length
        # source, which the LSTM cannot take; a masked column changes nothing else.
        source_ids = tf.pad(source_ids, [[0, 0], [0, 1]])
        state = self.model.encode(source_ids)
        start_ids = tf.fill([tf.shape(source_ids)[0]], START_ID)
        output_ids = greedy_search(self.model.decode_step, state, start_ids, END_ID, self.max_length)
        empty_source = tf.reduce_all(tf.equal(source_ids, 0), axis=1)
        output_ids = tf.where(empty_source[:, None], tf.zeros_like(output_ids), output_ids)
        return source_ids, output_ids
