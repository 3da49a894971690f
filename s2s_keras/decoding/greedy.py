"""Token-by-token decoding: the loop greedy search and sampling share, and greedy search."""

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
    compact: bool = False,
) -> tf.Tensor:
    """Batched one-token-at-a-time decoding as one in-graph `tf.while_loop`, the one loop every
    strategy but beam search shares (they differ in `choose` alone).

    Knows nothing about the network: `step_fn(token_ids (batch,), state) -> (logits (batch, V),
    state)` (e.g. `Seq2Seq.step_function()`); `state` is any nest of tensors with the batch first.
    `choose(logits, step) -> (batch,)` ids picks the next tokens. Stops when every sequence has
    produced `end_id` or after `max_length` steps (clamped to at least 1).

    `compact`: rows that have produced `end_id` leave the batch — each step runs `step_fn` on the
    unfinished rows only (their tokens and `state` gathered), so a batch costs the sum of its
    rows' lengths, not the longest one times the batch size; `choose` then sees only those rows
    (the same result for a `choose` that treats rows independently, as argmax does). Otherwise
    every row stays to the end, a finished row emitting padding.

    Returns `(batch, steps)` int32 ids: each row is the chosen tokens up to and including its
    `end_id`, then 0 (padding); `steps <= max_length`.
    """
    start_ids = tf.convert_to_tensor(start_ids, tf.int32)
    max_length = tf.maximum(tf.convert_to_tensor(max_length, tf.int32), 1)
    batch_size = tf.shape(start_ids)[0]
    state = tf.nest.map_structure(tf.convert_to_tensor, state)
    # Written into a preallocated (batch, max_length) buffer, so that the outputs keep a fixed
    # shape and zero iterations are fine (no TensorArray.stack).
    outputs = tf.zeros([batch_size, max_length], tf.int32)
    # rows: which rows of the batch the loop still carries (all of them unless `compact`)
    rows = tf.range(batch_size)
    finished = tf.zeros([batch_size], tf.bool)

    def condition(step, tokens, state, rows, finished, outputs):
        return (step < max_length) & (tf.size(rows) > 0) & ~tf.reduce_all(finished)

    def body(step, tokens, state, rows, finished, outputs):
        logits, state = step_fn(tokens, state)
        next_ids = tf.cast(choose(logits, step), tf.int32)
        if compact:
            positions = tf.stack([rows, tf.fill(tf.shape(rows), step)], axis=1)
            outputs = tf.tensor_scatter_nd_update(outputs, positions, next_ids)
            going_on = tf.where(tf.not_equal(next_ids, end_id))[:, 0]
            state = tf.nest.map_structure(lambda t: tf.gather(t, going_on), state)
            next_ids, rows = tf.gather(next_ids, going_on), tf.gather(rows, going_on)
            return step + 1, next_ids, state, rows, tf.gather(finished, going_on), outputs
        next_ids = tf.where(finished, tf.zeros_like(next_ids), next_ids)
        # column `step` of the buffer (a comparison, not one_hot of a scalar: ONNX has no such)
        at_step = tf.cast(tf.equal(tf.range(max_length), step), tf.int32)
        outputs += next_ids[:, None] * at_step[None, :]
        return step + 1, next_ids, state, rows, finished | tf.equal(next_ids, end_id), outputs

    def any_batch(t):
        return tf.TensorShape([None]).concatenate(t.shape[1:])

    variables = (tf.constant(0), start_ids, state, rows, finished, outputs)
    invariants = None
    if compact:  # the rows carried shrink
        shrinking = tf.nest.map_structure(any_batch, (start_ids, state, rows, finished))
        invariants = (tf.TensorShape([]), *shrinking, outputs.shape)
    steps, *_, outputs = tf.while_loop(condition, body, variables, shape_invariants=invariants)
    return outputs[:, :steps]


def argmax(logits, step) -> tf.Tensor:
    """Greedy search's `choose`: the most probable token of each row."""
    return tf.argmax(logits, axis=-1, output_type=tf.int32)


def greedy_search(
    step_fn: StepFunction, state, start_ids: tf.Tensor, end_id: int, max_length
) -> tf.Tensor:
    """At each step the most probable next token; returns `(batch, steps)` ids (see `decode_loop`).

    A batch of at least `COMPACT_MIN_ROWS` rows is decoded with `compact` (finished rows leave
    it); the results are the same either way. A `step_fn` with a `greedy_search` attribute
    other than None (`search(state, start_ids, end_id, max_length) -> ids`, the same result) is
    searched by it instead: `Seq2Seq.step_function()` within `lstm.fused_inference`.

    Example:
        >>> step = lambda ids, s: (tf.one_hot(tf.fill(tf.shape(ids), 3), 5), s)
        >>> greedy_search(step, (), tf.constant([2, 2]), end_id=3, max_length=4).numpy().tolist()
        [[3], [3]]
    """
    start_ids = tf.convert_to_tensor(start_ids, tf.int32)
    search = getattr(step_fn, "greedy_search", None)
    if search is not None:  # the step's own whole loop (an LSTM decoder's, `lstm.py`)
        return search(state, start_ids, end_id, max_length)

    def loop(compact):
        return lambda: decode_loop(step_fn, state, start_ids, end_id, max_length, argmax, compact)

    return tf.cond(tf.shape(start_ids)[0] >= COMPACT_MIN_ROWS, loop(True), loop(False))
