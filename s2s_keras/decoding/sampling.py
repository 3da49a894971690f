"""Random sampling with temperature and top-k, reproducible from a seed."""

from __future__ import annotations

import tensorflow as tf

from s2s_keras.decoding.greedy import StepFunction, decode_loop


def sample(
    step_fn: StepFunction,
    state,
    start_ids: tf.Tensor,
    end_id: int,
    max_length,
    temperature=1.0,
    top_k=0,
    seed=0,
) -> tf.Tensor:
    """Draws each next token from `softmax(logits / temperature)` restricted to the `top_k`
    most probable tokens (`top_k <= 0`: all). Stateless random ops keyed on `(seed, step)`: the
    same seed gives the same samples, in any process. `temperature` must be > 0 (an
    InvalidArgument error otherwise). Returns `(batch, steps)` ids as `decode_loop`.
    """
    temperature = tf.convert_to_tensor(temperature, tf.float32)
    top_k = tf.convert_to_tensor(top_k, tf.int32)
    seed = tf.cast(tf.convert_to_tensor(seed), tf.int64)
    check = tf.debugging.assert_positive(temperature, message="temperature must be > 0")

    def choose(logits, step):
        with tf.control_dependencies([check]):
            logits = tf.cast(logits, tf.float32) / temperature
        vocabulary_size = tf.shape(logits)[-1]
        k = tf.where((top_k <= 0) | (top_k > vocabulary_size), vocabulary_size, top_k)
        kth_best = tf.gather(tf.sort(logits, axis=-1, direction="DESCENDING"), k - 1, axis=-1)
        logits = tf.where(logits < kth_best[:, None], tf.float32.min, logits)
        return tf.random.stateless_categorical(
            logits, 1, seed=tf.stack([seed, tf.cast(step, tf.int64)]), dtype=tf.int32
        )[:, 0]

    return decode_loop(step_fn, state, start_ids, end_id, max_length, choose)
