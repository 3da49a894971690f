"""Batched beam search with length penalty, as one in-graph `tf.while_loop`."""

from __future__ import annotations

import tensorflow as tf

from s2s_keras.decoding.greedy import StepFunction

# A large finite "minus infinity": -inf would turn into NaN in sums and cannot travel in JSON.
NEG_INF = -1e9


def length_penalty(length, alpha):
    """GNMT's `((5 + length) / 6) ** alpha` (Wu et al. 2016); alpha = 0 gives 1 (no penalty)."""
    return tf.pow((5.0 + tf.cast(length, tf.float32)) / 6.0, tf.cast(alpha, tf.float32))


def beam_search(
    step_fn: StepFunction,
    state,
    start_ids: tf.Tensor,
    end_id: int,
    max_length,
    beam_size,
    alpha=0.0,
    num_results=None,
):
    """Returns the `num_results` best hypotheses per batch row, best first.

    Knows nothing about the network: `step_fn(token_ids (n,), state) -> (logits (n, V), state)`
    is called on `n = batch * beam_size` rows; `state` is any nest of tensors with the batch first
    (it is repeated per beam and reordered as beams are chosen).

    Score of a hypothesis y of length |y| (its tokens including `end_id`) =
    `Σ_t log p(y_t | y_<t) / length_penalty(|y|, alpha)`; with `alpha = 0` it is the summed
    log-probability. Each step ranks the `2 * beam_size` best extensions; one ending with
    `end_id` is kept aside as finished if it ranks in the top `beam_size`, and the `beam_size`
    best unfinished ones continue (so `beam_size = 1` is exactly greedy search). A row stops
    once it has `beam_size` finished hypotheses, or once its `num_results` best finished ones
    can no longer change: extending a hypothesis only lowers its log-probability, so none can
    score above `best alive log-probability / length_penalty(max_length)` (the returned
    hypotheses are the same as without this early stop). A stopped row leaves the batch: the
    next steps run `step_fn` on the other rows' beams only (`state` gathered: every state tensor
    must have the batch first), and no row's result depends on the others. The search stops
    when every row has, or at `max_length` steps. Rows without
    enough finished hypotheses are filled with the best unfinished ones (cut at `max_length`,
    scored by their length).

    Returns `(ids (batch, num_results, steps) int32` — tokens up to and including `end_id`,
    then 0 — `, scores (batch, num_results) float32)`. `beam_size` and `max_length` are clamped
    to at least 1, `alpha` to at least 0, `num_results` (default `beam_size`) to `[1, beam_size]`.

    A `step_fn` with a `beam_search` attribute other than None (`search(state, start_ids,
    end_id, max_length, beam_size, alpha, num_results) -> (ids, scores)`, the same search) is
    searched by it instead: `Seq2Seq.step_function()` within `lstm.fused_inference`.
    """
    start_ids = tf.convert_to_tensor(start_ids, tf.int32)
    beam_size = tf.maximum(tf.convert_to_tensor(beam_size, tf.int32), 1)
    max_length = tf.maximum(tf.convert_to_tensor(max_length, tf.int32), 1)
    num_results = (
        beam_size
        if num_results is None
        else tf.clip_by_value(tf.convert_to_tensor(num_results, tf.int32), 1, beam_size)
    )
    # GNMT's penalty is defined for alpha >= 0; negative values are clamped to 0.
    alpha = tf.maximum(tf.convert_to_tensor(alpha, tf.float32), 0.0)
    search = getattr(step_fn, "beam_search", None)
    if search is not None:  # the step's own whole loop (an LSTM decoder's, `lstm.py`)
        return search(state, start_ids, end_id, max_length, beam_size, alpha, num_results)
    batch_size = tf.shape(start_ids)[0]

    state = tf.nest.map_structure(lambda t: tf.repeat(t, beam_size, axis=0), state)
    # Only the first beam is live at the start; the others would duplicate it.
    alive_logp = tf.tile(
        tf.concat([[0.0], tf.fill([beam_size - 1], NEG_INF)], axis=0)[None], [batch_size, 1]
    )
    alive_seq = tf.zeros([batch_size, beam_size, max_length], tf.int32)
    last_tokens = tf.repeat(start_ids, beam_size)
    finished_seq = tf.zeros([batch_size, beam_size, max_length], tf.int32)
    finished_scores = tf.fill([batch_size, beam_size], NEG_INF)

    final_penalty = length_penalty(max_length, alpha)

    def done(alive_logp, finished_scores):
        """Per row: beam_size hypotheses finished, or its num_results best cannot change."""
        finished_count = tf.reduce_sum(tf.cast(finished_scores > NEG_INF / 2, tf.int32), axis=1)
        # Both sorted best first (top_k): the num_results-th finished score, the best alive one.
        settled = (finished_count >= num_results) & (
            _normalize(alive_logp[:, 0], final_penalty)
            < tf.gather(finished_scores, num_results - 1, axis=1)
        )
        return (finished_count >= beam_size) | settled

    # A row that is done leaves the search: its finished hypotheses go to these (batch-sized)
    # results, and the loop goes on with the other rows (`rows`: their indices in the batch).
    results_seq, results_scores = finished_seq, finished_scores

    def condition(
        step,
        rows,
        last_tokens,
        state,
        alive_seq,
        alive_logp,
        finished_seq,
        finished_scores,
        results_seq,
        results_scores,
    ):
        return (step < max_length) & (tf.size(rows) > 0)

    def body(
        step,
        rows,
        last_tokens,
        state,
        alive_seq,
        alive_logp,
        finished_seq,
        finished_scores,
        results_seq,
        results_scores,
    ):
        active = tf.shape(rows)[0]
        logits, state = step_fn(last_tokens, state)
        vocabulary_size = tf.shape(logits)[-1]
        logp = tf.nn.log_softmax(tf.cast(logits, tf.float32), axis=-1)
        logp = tf.reshape(logp, [active, beam_size, vocabulary_size])
        candidates = tf.reshape(alive_logp[:, :, None] + logp, [active, -1])
        # 2 * beam candidates: even if beam of them end here, beam unfinished ones remain.
        top_logp, top_index = tf.math.top_k(
            candidates, k=tf.minimum(2 * beam_size, tf.shape(candidates)[1])
        )
        top_beam = top_index // vocabulary_size
        top_token = top_index % vocabulary_size
        column = tf.one_hot(step, max_length, dtype=tf.int32)
        top_seq = tf.gather(alive_seq, top_beam, batch_dims=1) + top_token[:, :, None] * column
        ended = tf.equal(top_token, end_id)
        # As in fairseq: a hypothesis ending here is kept only if it ranks among the top
        # beam_size candidates of this step — what makes beam_size 1 exactly greedy search.
        in_beam = tf.range(tf.shape(top_token)[1])[None, :] < beam_size

        # Finished pool: the kept ones plus those ending now, best beam_size kept.
        end_scores = tf.where(
            ended & in_beam, _normalize(top_logp, length_penalty(step + 1, alpha)), NEG_INF
        )
        pool_scores = tf.concat([finished_scores, end_scores], axis=1)
        pool_seq = tf.concat([finished_seq, top_seq], axis=1)
        finished_scores, keep = tf.math.top_k(pool_scores, k=beam_size)
        finished_seq = tf.gather(pool_seq, keep, batch_dims=1)

        # Alive: the best beam_size candidates that did not end.
        alive_candidates = tf.where(ended, NEG_INF, top_logp)
        alive_logp, keep = tf.math.top_k(alive_candidates, k=beam_size)
        alive_seq = tf.gather(top_seq, keep, batch_dims=1)
        chosen_beam = tf.gather(top_beam, keep, batch_dims=1)
        last_tokens = tf.gather(top_token, keep, batch_dims=1)
        beam_rows = chosen_beam + tf.range(active)[:, None] * beam_size  # (active, beam) into state

        is_done = done(alive_logp, finished_scores)

        def leave():
            """Rows done now: results out; the rest (and their beams' states) go on."""
            leaving = tf.where(is_done)[:, 0]
            indices = tf.gather(rows, leaving)[:, None]
            results = (
                tf.tensor_scatter_nd_update(results_seq, indices, tf.gather(finished_seq, leaving)),
                tf.tensor_scatter_nd_update(
                    results_scores, indices, tf.gather(finished_scores, leaving)
                ),
            )
            going_on = tf.where(~is_done)[:, 0]
            return (
                tf.gather(rows, going_on),
                tf.gather(beam_rows, going_on),
                tf.gather(last_tokens, going_on),
                *(
                    tf.gather(t, going_on)
                    for t in (alive_seq, alive_logp, finished_seq, finished_scores)
                ),
                *results,
            )

        def stay():  # most steps: nobody leaves, nothing to gather but the chosen beams' states
            return (
                rows,
                beam_rows,
                last_tokens,
                alive_seq,
                alive_logp,
                finished_seq,
                finished_scores,
                results_seq,
                results_scores,
            )

        (
            rows,
            beam_rows,
            last_tokens,
            alive_seq,
            alive_logp,
            finished_seq,
            finished_scores,
            results_seq,
            results_scores,
        ) = tf.cond(tf.reduce_any(is_done), leave, stay)
        state = tf.nest.map_structure(lambda t: tf.gather(t, tf.reshape(beam_rows, [-1])), state)
        return (
            step + 1,
            rows,
            tf.reshape(last_tokens, [-1]),
            state,
            alive_seq,
            alive_logp,
            finished_seq,
            finished_scores,
            results_seq,
            results_scores,
        )

    def any_rows(t):  # rows leave; and a Python-int beam_size may show up as a static dimension
        return tf.TensorShape([None] * t.shape.rank)

    state = tf.nest.map_structure(tf.convert_to_tensor, state)
    loop_vars = (
        tf.constant(0),
        tf.range(batch_size),
        last_tokens,
        state,
        alive_seq,
        alive_logp,
        finished_seq,
        finished_scores,
        results_seq,
        results_scores,
    )
    (
        steps,
        rows,
        _,
        _,
        alive_seq,
        alive_logp,
        finished_seq,
        finished_scores,
        results_seq,
        results_scores,
    ) = tf.while_loop(
        condition,
        body,
        loop_vars,
        shape_invariants=(
            tf.TensorShape([]),
            *tf.nest.map_structure(any_rows, loop_vars[1:8]),
            tf.TensorShape([None, None, None]),
            tf.TensorShape([None, None]),
        ),
    )
    # Rows still searching at max_length: their finished and (to fill up) unfinished hypotheses.
    finished_seq = tf.tensor_scatter_nd_update(results_seq, rows[:, None], finished_seq)
    finished_scores = tf.tensor_scatter_nd_update(results_scores, rows[:, None], finished_scores)
    alive_seq = tf.scatter_nd(rows[:, None], alive_seq, tf.shape(results_seq))
    alive_logp = tf.tensor_scatter_nd_update(
        tf.fill(tf.shape(results_scores), NEG_INF), rows[:, None], alive_logp
    )

    # Rank finished hypotheses first, then unfinished ones (cut at max_length).
    alive_scores = _normalize(alive_logp, length_penalty(steps, alpha))
    scores = tf.concat([finished_scores, alive_scores], axis=1)
    is_alive = tf.concat([tf.zeros_like(finished_scores), tf.ones_like(alive_scores)], axis=1)
    # float64 so that the group offsets do not swallow the score differences.
    rank_key = (
        tf.cast(scores, tf.float64)
        + 2 * NEG_INF * tf.cast(is_alive, tf.float64)
        + 4 * NEG_INF * tf.cast(scores <= NEG_INF, tf.float64)
    )
    _, order = tf.math.top_k(rank_key, k=num_results)
    sequences = tf.gather(tf.concat([finished_seq, alive_seq], axis=1), order, batch_dims=1)
    return sequences[:, :, :steps], tf.gather(scores, order, batch_dims=1)


def _normalize(logp, penalty):
    """Length-normalized score; placeholders (NEG_INF log-probability) stay exactly NEG_INF."""
    return tf.where(logp > NEG_INF / 2, logp / penalty, NEG_INF)
