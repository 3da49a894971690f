import numpy as np
import pytest
import tensorflow as tf

from s2s_keras.decoding import greedy_search
from s2s_keras.text import END_ID, START_ID

VOCAB = 6


def scripted(table):
    """Step function whose logits at step t for row b are one-hot table[b][t]. Its state (batch
    first, as decoders require) is each row's index and step: `scripted_state(rows)`."""
    table = tf.constant(table, tf.int32)

    def step(token_ids, state):
        rows, t = state
        logits = tf.one_hot(tf.gather_nd(table, tf.stack([rows, t], axis=1)), VOCAB) * 5.0
        return logits, (rows, t + 1)

    return step


def scripted_state(rows):
    return tf.range(rows), tf.zeros([rows], tf.int32)


def test_greedy_follows_scripted_logits_and_pads_after_end():
    step = scripted([[4, 5, END_ID, 4, 4], [5, END_ID, 4, 4, 4]])
    out = greedy_search(
        step, scripted_state(2), tf.constant([START_ID, START_ID]), END_ID, max_length=5
    )
    assert out.numpy().tolist() == [[4, 5, END_ID], [5, END_ID, 0]]


def test_greedy_steps_only_the_unfinished_rows(monkeypatch):
    import s2s_keras.decoding.greedy as greedy

    monkeypatch.setattr(greedy, "COMPACT_MIN_ROWS", 2)
    step = scripted([[END_ID, 4, 4, 4, 4], [4, 4, END_ID, 4, 4], [4, 4, 4, 4, END_ID]])
    sizes = []

    def counting(token_ids, state):
        sizes.append(int(tf.shape(token_ids)[0]))
        return step(token_ids, state)

    out = greedy_search(counting, scripted_state(3), tf.fill([3], START_ID), END_ID, max_length=9)
    assert out.numpy().tolist() == [
        [END_ID, 0, 0, 0, 0],
        [4, 4, END_ID, 0, 0],
        [4, 4, 4, 4, END_ID],
    ]
    assert sizes == [3, 2, 2, 1, 1]  # a row leaves the batch after its end token


def test_greedy_stops_at_max_length_and_clamps_nonpositive():
    step = scripted([[4, 4, 4, 4, 4]])
    start = tf.constant([START_ID])
    assert greedy_search(step, scripted_state(1), start, END_ID, max_length=3).numpy().tolist() == [
        [4, 4, 4]
    ]
    assert greedy_search(step, scripted_state(1), start, END_ID, max_length=0).shape == (1, 1)


def test_greedy_empty_batch():
    step = lambda ids, s: (tf.zeros([tf.shape(ids)[0], VOCAB]), s)  # noqa: E731
    out = greedy_search(step, tf.zeros([0]), tf.zeros([0], tf.int32), END_ID, max_length=4)
    assert out.shape[0] == 0


def test_greedy_feeds_back_its_own_choice():
    def step(token_ids, state):  # next token = previous + 1, end after 5
        next_ids = tf.where(token_ids >= 5, END_ID, tf.maximum(token_ids + 1, 4))
        return tf.one_hot(next_ids, VOCAB), state

    out = greedy_search(step, (), tf.constant([START_ID]), END_ID, max_length=10)
    assert out.numpy().tolist() == [[4, 5, END_ID]]


def test_greedy_equals_argmax_of_teacher_forced_logits(tiny_model):
    source_ids = tiny_model.source_tokenizer.tokenize(tf.constant(["abc", "fed", "a", "bbbbbb"]))
    start = tf.fill([4], START_ID)
    output_ids = greedy_search(
        tiny_model.decode_step, tiny_model.encode(source_ids), start, END_ID, 7
    ).numpy()
    target_in = np.concatenate(
        [np.full((len(output_ids), 1), START_ID), output_ids[:, :-1]], axis=1
    )
    logits = tiny_model(
        {"source_ids": source_ids, "target_in_ids": tf.constant(target_in, tf.int32)}
    )
    argmax = np.argmax(logits.numpy(), axis=-1)
    real = output_ids != 0
    assert real.sum() > 4
    np.testing.assert_array_equal(argmax[real], output_ids[real])


# --- beam search and sampling -------------------------------------------------------------------

from s2s_keras.decoding import beam_search, length_penalty, sample  # noqa: E402

A, B = 4, 5


def markov(tables):
    """Step function: row r's next-token distribution is tables[r][previous token].

    The state holds each row's index, so a beam search that reorders beams wrongly (or mixes
    rows) reads the wrong table."""
    log_tables = tf.math.log(tf.constant(tables, tf.float32) + 1e-12)

    def step(token_ids, rows):
        return tf.gather_nd(log_tables, tf.stack([rows, token_ids], axis=1)), rows

    return step, log_tables


def table(**rows):
    """A (VOCAB × VOCAB) transition table; unspecified rows are uniform over A, B, END."""
    t = np.zeros((VOCAB, VOCAB), np.float32)
    t[:, [A, B, END_ID]] = 1 / 3
    for token, probs in rows.items():
        t[{"start": START_ID, "a": A, "b": B}[token]] = probs
    return t


def dist(end=0.0, a=0.0, b=0.0):
    p = np.zeros(VOCAB, np.float32)
    p[[END_ID, A, B]] = end, a, b
    return p


# From <s>: A .6, B .4. After A: A .35 B .35 </s> .3. After B: </s> 1.
TRAP = table(start=dist(a=0.6, b=0.4), a=dist(end=0.3, a=0.35, b=0.35), b=dist(end=1.0))


def random_tables(seed, rows, concentration=1.0):
    """Random transition tables over A, B and </s> (never padding, unknown or start)."""
    rng = np.random.default_rng(seed)
    tables = np.zeros((rows, VOCAB, VOCAB), np.float32)
    tables[:, :, [A, B, END_ID]] = rng.dirichlet(np.ones(3) * concentration, size=(rows, VOCAB))
    return tables


def path_logp(tables, row, ids):
    previous, total = START_ID, 0.0
    for token in ids:
        if token == 0:
            break
        total += float(np.log(tables[row][previous][token] + 1e-12))
        previous = token
    return total


def test_beam_finds_what_greedy_misses():
    step, _ = markov([TRAP])
    rows, start = tf.constant([0]), tf.constant([START_ID])
    greedy = greedy_search(step, rows, start, END_ID, max_length=6).numpy()[0].tolist()
    assert greedy[:2] == [A, A]  # greedy walks into the trap
    ids, scores = beam_search(step, rows, start, END_ID, max_length=6, beam_size=2)
    assert ids.numpy()[0, 0].tolist()[:2] == [B, END_ID]
    assert scores.numpy()[0, 0] == pytest.approx(np.log(0.4), abs=1e-5)


@pytest.mark.parametrize(
    "compact_min_rows", [1, 16]
)  # greedy with and without dropping finished rows
def test_beam_width_one_equals_greedy_on_many_random_tables(compact_min_rows, monkeypatch):
    import s2s_keras.decoding.greedy as greedy

    monkeypatch.setattr(greedy, "COMPACT_MIN_ROWS", compact_min_rows)
    tables = random_tables(0, 8, concentration=0.5)
    step, _ = markov(tables)
    rows, start = tf.range(8), tf.fill([8], START_ID)
    greedy = greedy_search(step, rows, start, END_ID, max_length=12).numpy()
    ids, _ = beam_search(step, rows, start, END_ID, max_length=12, beam_size=1)
    ids = ids.numpy()[:, 0]
    width = max(greedy.shape[1], ids.shape[1])
    pad = lambda x: np.pad(x, [(0, 0), (0, width - x.shape[1])])  # noqa: E731
    np.testing.assert_array_equal(pad(greedy), pad(ids))


@pytest.mark.parametrize("alpha", [0.0, 0.6, 1.0])
def test_nbest_scores_are_summed_log_probs_normalized(alpha):
    tables = random_tables(1, 3)
    step, _ = markov(tables)
    ids, scores = beam_search(
        step,
        tf.range(3),
        tf.fill([3], START_ID),
        END_ID,
        max_length=8,
        beam_size=4,
        alpha=alpha,
        num_results=3,
    )
    ids, scores = ids.numpy(), scores.numpy()
    assert ids.shape[:2] == (3, 3) and scores.shape == (3, 3)
    for row in range(3):
        assert (np.diff(scores[row]) <= 1e-6).all()  # best first
        seen, finished = set(), []
        for k in range(3):
            hyp = ids[row, k]
            length = int((hyp != 0).sum())
            finished.append(hyp[length - 1] == END_ID)  # else: cut at max_length, ranked last
            assert tuple(hyp) not in seen
            seen.add(tuple(hyp))
            expected = path_logp(tables, row, hyp) / float(length_penalty(length, alpha))
            assert scores[row, k] == pytest.approx(expected, abs=1e-4)
        assert finished == sorted(finished, reverse=True) and finished[0]


def test_beam_rows_are_independent_and_clamped_parameters():
    favourite_a = table(start=dist(a=0.9, b=0.1), a=dist(end=1.0))
    favourite_b = table(start=dist(a=0.1, b=0.9), b=dist(end=1.0))
    step, _ = markov([favourite_a, favourite_b])
    ids, _ = beam_search(
        step,
        tf.constant([0, 1]),
        tf.fill([2], START_ID),
        END_ID,
        max_length=5,
        beam_size=3,
        num_results=1,
    )
    assert ids.numpy()[:, 0, :2].tolist() == [[A, END_ID], [B, END_ID]]
    ids, scores = beam_search(
        step,
        tf.constant([0]),
        tf.constant([START_ID]),
        END_ID,
        max_length=0,
        beam_size=0,
        num_results=9,
    )
    assert ids.shape[:2] == (1, 1) and ids.shape[2] == 1  # beam 1, one step
    empty, empty_scores = beam_search(
        step, tf.zeros([0], tf.int32), tf.zeros([0], tf.int32), END_ID, max_length=5, beam_size=3
    )
    assert empty.shape[0] == 0 and empty_scores.shape == (0, 3)


def test_unfinished_hypotheses_fill_the_nbest_at_max_length():
    never_ends = table(start=dist(a=0.5, b=0.5), a=dist(a=0.5, b=0.5), b=dist(a=0.5, b=0.5))
    step, _ = markov([never_ends])
    ids, scores = beam_search(
        step, tf.constant([0]), tf.constant([START_ID]), END_ID, max_length=3, beam_size=2
    )
    assert ids.shape == (1, 2, 3) and (ids.numpy() != 0).all()
    np.testing.assert_allclose(scores.numpy(), [[3 * np.log(0.5)] * 2], atol=1e-5)


def test_sampling_is_seeded_and_degenerates_to_greedy():
    tables = random_tables(2, 4)
    step, _ = markov(tables)
    rows, start = tf.range(4), tf.fill([4], START_ID)
    greedy = greedy_search(step, rows, start, END_ID, max_length=10).numpy()
    for kwargs in ({"top_k": 1, "temperature": 1.0}, {"temperature": 1e-4}):
        out = sample(step, rows, start, END_ID, max_length=10, seed=3, **kwargs).numpy()
        np.testing.assert_array_equal(out, greedy)
    first = sample(step, rows, start, END_ID, max_length=10, seed=11).numpy()
    np.testing.assert_array_equal(
        first, sample(step, rows, start, END_ID, max_length=10, seed=11).numpy()
    )
    draws = {
        tuple(sample(step, rows, start, END_ID, max_length=10, seed=s).numpy().ravel())
        for s in range(6)
    }
    assert len(draws) > 1
    with pytest.raises(tf.errors.InvalidArgumentError, match="temperature must be > 0"):
        sample(step, rows, start, END_ID, max_length=10, temperature=0.0)


@pytest.mark.parametrize("alpha", [0.0, 0.8])
def test_beam_stops_once_the_results_cannot_change(alpha):
    """With num_results < beam_size the search may stop before beam_size hypotheses have
    finished, once no alive one can beat the returned ones — and returns the same hypotheses."""
    # After A: </s> .9 — the best hypothesis "A </s>" ends at step 2; the alternatives wander.
    tables = [
        table(start=dist(a=0.95, b=0.05), a=dist(end=0.9, a=0.05, b=0.05), b=dist(a=0.5, b=0.5))
    ] * 2
    tables += list(random_tables(5, 6))
    step, _ = markov(tables)
    rows, start = tf.range(8), tf.fill([8], START_ID)
    full_ids, full_scores = beam_search(
        step, rows, start, END_ID, max_length=30, beam_size=4, alpha=alpha
    )
    ids, scores = beam_search(
        step, rows[:2], start[:2], END_ID, max_length=30, beam_size=4, alpha=alpha, num_results=1
    )
    assert ids.shape[2] == 2 < full_ids.shape[2]  # stopped at step 2
    np.testing.assert_array_equal(ids.numpy()[:, 0], full_ids.numpy()[:2, 0, :2])
    np.testing.assert_allclose(scores.numpy()[:, 0], full_scores.numpy()[:2, 0], rtol=1e-6)
    for k in (1, 2, 3):  # random tables: every k gives the full search's k best
        ids, scores = beam_search(
            step, rows, start, END_ID, max_length=30, beam_size=4, alpha=alpha, num_results=k
        )
        width = ids.shape[2]
        assert width <= full_ids.shape[2]
        np.testing.assert_array_equal(ids.numpy(), full_ids.numpy()[:, :k, :width])
        assert (full_ids.numpy()[:, :k, width:] == 0).all()
        np.testing.assert_allclose(scores.numpy(), full_scores.numpy()[:, :k], rtol=1e-6)


def test_beam_rows_leave_the_batch_when_done_and_do_not_depend_on_each_other():
    quick = table(start=dist(a=0.9, end=0.1), a=dist(end=1.0))  # every hypothesis ends by step 2
    tables = [quick, *random_tables(7, 3)]
    step, _ = markov(tables)
    sizes = []

    def counting(token_ids, rows):
        sizes.append(int(tf.shape(token_ids)[0]))
        return step(token_ids, rows)

    rows, start = tf.range(4), tf.fill([4], START_ID)
    ids, scores = beam_search(
        counting, rows, start, END_ID, max_length=20, beam_size=3, num_results=2
    )
    assert sizes[0] == 4 * 3 and sizes[-1] < sizes[0] and sizes == sorted(sizes, reverse=True)
    assert sizes[2] <= 3 * 3  # the quick row left after its second step
    for row in range(4):  # alone, each row gets what it got in the batch
        alone_ids, alone_scores = beam_search(
            step, rows[row : row + 1], start[:1], END_ID, max_length=20, beam_size=3, num_results=2
        )
        width = alone_ids.shape[2]
        np.testing.assert_array_equal(alone_ids.numpy()[0], ids.numpy()[row, :, :width])
        assert (ids.numpy()[row, :, width:] == 0).all()
        np.testing.assert_allclose(alone_scores.numpy()[0], scores.numpy()[row], rtol=1e-6)
