import numpy as np
import tensorflow as tf

from s2s_keras.decoding import greedy_search
from s2s_keras.inference import Translator
from s2s_keras.text import END_ID, START_ID

VOCAB = 6


def scripted(table):
    """Step function whose logits at step t for row b are one-hot table[b][t] (state = step)."""
    table = tf.constant(table, tf.int32)

    def step(token_ids, state):
        logits = tf.one_hot(table[:, state], VOCAB) * 5.0
        return logits, state + 1
    return step


def test_greedy_follows_scripted_logits_and_pads_after_end():
    step = scripted([[4, 5, END_ID, 4, 4], [5, END_ID, 4, 4, 4]])
    out = greedy_search(step, tf.constant(0), tf.constant([START_ID, START_ID]), END_ID, max_length=5)
    assert out.numpy().tolist() == [[4, 5, END_ID], [5, END_ID, 0]]


def test_greedy_stops_at_max_length_and_clamps_nonpositive():
    step = scripted([[4, 4, 4, 4, 4]])
    start = tf.constant([START_ID])
    assert greedy_search(step, tf.constant(0), start, END_ID, max_length=3).numpy().tolist() == [[4, 4, 4]]
    assert greedy_search(step, tf.constant(0), start, END_ID, max_length=0).shape == (1, 1)


def test_greedy_empty_batch():
    step = lambda ids, s: (tf.zeros([tf.shape(ids)[0], VOCAB]), s)  # noqa: E731
    out = greedy_search(step, tf.constant(0), tf.zeros([0], tf.int32), END_ID, max_length=4)
    assert out.shape[0] == 0


def test_greedy_feeds_back_its_own_choice():
    def step(token_ids, state):  # next token = previous + 1, end after 5
        next_ids = tf.where(token_ids >= 5, END_ID, tf.maximum(token_ids + 1, 4))
        return tf.one_hot(next_ids, VOCAB), state
    out = greedy_search(step, (), tf.constant([START_ID]), END_ID, max_length=10)
    assert out.numpy().tolist() == [[4, 5, END_ID]]


def test_greedy_equals_argmax_of_teacher_forced_logits(tiny_model):
    translator = Translator(tiny_model, max_length=7, max_input_length=10)
    source_ids, output_ids = translator.translate_ids(tf.constant(["abc", "fed", "a", "bbbbbb"]))
    output_ids = output_ids.numpy()
    target_in = np.concatenate([np.full((len(output_ids), 1), START_ID), output_ids[:, :-1]], axis=1)
    logits = tiny_model({"source_ids": source_ids, "target_in_ids": tf.constant(target_in, tf.int32)})
    argmax = np.argmax(logits.numpy(), axis=-1)
    real = output_ids != 0
    assert real.sum() > 4
    np.testing.assert_array_equal(argmax[real], output_ids[real])
