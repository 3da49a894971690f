"""Token-by-token decoding (greedy search) and the loop that sampling shares."""

from __future__ import annotations

import typing

import tensorflow as tf

# Batches of at least this many rows drop finished rows as they go (`greedy_search`); smaller
# ones keep every row to the end: a few rows cost little more than one, while the gathers would
# cost every step (a choice of speed, not of result).
COMPACT_MIN_ROWS = 16

StepFunction = typing.Callable[[tf.Tensor, typing.Any], typing.Tuple[tf.Tensor, typing.Any]]
ChooseFunction = typing.Callable[[tf.Tensor, tf.Tensor], tf.Tensor]  # (logits, step) -> ids


def decode_loop(
    step_fn: StepFunction,
    state,
    start_ids: tf.Tensor,
    end_id: int,
    max_length,
    choose: ChooseFunction,
) -> tf.Tensor:
    """Batched one-token-at-a-time decoding as one in-graph `tf.while_loop`.

    Knows nothing about the network: `step_fn(token_ids (batch,), state) -> (logits (batch, V),
    state)` (e.g. `Seq2Seq.step_function()`); `state` is any nest of tensors with the batch first.
    `choose(logits, step) -> (batch,)` ids picks the next tokens. Stops when every sequence has
    produced `end_id` or after `max_length` steps (clamped to at least 1).

    Returns `(batch, steps)` int32 ids: each row is the chosen tokens up to and including its
    `end_id`, then 0 (padding); `steps <= max_length`.
    """
    start_ids = tf.convert_to_tensor(start_ids, tf.int32)
    max_length = tf.maximum(tf.convert_to_tensor(max_length, tf.int32), 1)
    batch_size = tf.shape(start_ids)[0]
    # Written into a preallocated (batch, max_length) buffer with a one-hot column mask, so that
    # the loop variables keep fixed shapes and zero iterations are fine (no TensorArray.stack).
    outputs = tf.zeros([batch_size, max_length], tf.int32)
    finished = tf.zeros([batch_size], tf.bool)

    def condition(step, tokens, state, finished, outputs):
        return (step < max_length) & ~tf.reduce_all(finished)

    def body(step, tokens, state, finished, outputs):
        logits, state = step_fn(tokens, state)
        next_ids = tf.cast(choose(logits, step), tf.int32)
        next_ids = tf.where(finished, tf.zeros_like(next_ids), next_ids)
        column = tf.one_hot(step, max_length, dtype=tf.int32)
        outputs += next_ids[:, None] * column[None, :]
        finished |= tf.equal(next_ids, end_id)
        return step + 1, next_ids, state, finished, outputs

    steps, _, _, _, outputs = tf.while_loop(
        condition, body, (tf.constant(0), start_ids, state, finished, outputs)
    )
    return outputs[:, :steps]


def greedy_search(
    step_fn: StepFunction, state, start_ids: tf.Tensor, end_id: int, max_length
) -> tf.Tensor:
    """At each step the most probable next token; returns `(batch, steps)` ids (see `decode_loop`).

    In a batch of at least `COMPACT_MIN_ROWS`, rows that have produced `end_id` leave it: each
    step runs `step_fn` on the unfinished rows only (their tokens and `state` gathered — every
    state tensor must have the batch first), so a batch costs the sum of its rows' lengths, not
    the longest one times the batch size. The results are the same either way.

    Example:
        >>> step = lambda ids, s: (tf.one_hot(tf.fill(tf.shape(ids), 3), 5), s)
        >>> greedy_search(step, (), tf.constant([2, 2]), end_id=3, max_length=4).numpy().tolist()
        [[3], [3]]
    """
    start_ids = tf.convert_to_tensor(start_ids, tf.int32)
    max_length = tf.maximum(tf.convert_to_tensor(max_length, tf.int32), 1)
    batch_size = tf.shape(start_ids)[0]
    outputs = tf.zeros([batch_size, max_length], tf.int32)

    def condition(step, tokens, state, rows, outputs):
        return (step < max_length) & (tf.size(rows) > 0)

    def body(step, tokens, state, rows, outputs):
        logits, state = step_fn(tokens, state)
        next_ids = tf.argmax(logits, axis=-1, output_type=tf.int32)
        outputs = tf.tensor_scatter_nd_update(
            outputs, tf.stack([rows, tf.fill(tf.shape(rows), step)], axis=1), next_ids
        )
        going_on = tf.where(tf.not_equal(next_ids, end_id))[:, 0]
        state = tf.nest.map_structure(lambda t: tf.gather(t, going_on), state)
        return step + 1, tf.gather(next_ids, going_on), state, tf.gather(rows, going_on), outputs

    def any_batch(t):
        return tf.TensorShape([None]).concatenate(t.shape[1:])

    def compacting():
        steps, _, _, _, ids = tf.while_loop(
            condition,
            body,
            (tf.constant(0), start_ids, state, tf.range(batch_size), outputs),
            shape_invariants=(
                tf.TensorShape([]),
                tf.TensorShape([None]),
                tf.nest.map_structure(any_batch, state),
                tf.TensorShape([None]),
                outputs.shape,
            ),
        )
        return ids[:, :steps]

    def whole_batch():
        return decode_loop(
            step_fn,
            state,
            start_ids,
            end_id,
            max_length,
            choose=lambda logits, step: tf.argmax(logits, axis=-1, output_type=tf.int32),
        )

    state = tf.nest.map_structure(tf.convert_to_tensor, state)
    return tf.cond(batch_size >= COMPACT_MIN_ROWS, compacting, whole_batch)
