import collections

import numpy as np
import pytest
import tensorflow as tf

from s2s_keras.data import (
    PaddingCounter,
    TeacherForcing,
    batch_statistics,
    buckets,
    count_batches,
    make_dataset,
    teacher_forcing_lengths,
)
from s2s_keras.text import END_ID, START_ID, Tokenizer

PAIRS = [("ab", "X Y"), ("abcde", "Y"), ("a", "X X X Z"), ("cab", "Z")] * 3


def tokenizers():
    return (
        Tokenizer(list("abcde"), "characters"),
        Tokenizer(["X", "Y", "Z"], "whitespace", lowercase=False),
    )


def test_teacher_forcing_shift_shapes_and_masks():
    source_tokenizer, target_tokenizer = tokenizers()
    dataset = make_dataset(
        PAIRS,
        TeacherForcing(source_tokenizer, target_tokenizer),
        batch_size=2,
        shuffle=False,
        bucket_width=2,
        max_bucket_length=8,
    )
    seen = 0
    for inputs, target_out in dataset:
        source, target_in = inputs["source_ids"].numpy(), inputs["target_in_ids"].numpy()
        target_out = target_out.numpy()
        assert source.dtype == np.int32 and target_in.shape == target_out.shape
        assert (target_in[:, 0] == START_ID).all()
        for row_in, row_out in zip(target_in, target_out):
            length = int((row_out != 0).sum())
            assert row_out[length - 1] == END_ID  # y + </s>
            np.testing.assert_array_equal(row_in[1:length], row_out[: length - 1])  # <s> + y
            assert (row_in[length:] == 0).all() and (row_out[length:] == 0).all()
        seen += len(source)
    assert seen == len(PAIRS)  # nothing dropped by bucketing


def test_buckets_reduce_padding_and_statistics():
    source_tokenizer, target_tokenizer = tokenizers()
    pairs = [("a" * n, "X " * n) for n in range(1, 9)] * 4
    bucketed = make_dataset(
        pairs,
        TeacherForcing(source_tokenizer, target_tokenizer),
        batch_size=4,
        shuffle=True,
        bucket_width=1,
        max_bucket_length=16,
    )
    stats = batch_statistics(bucketed)
    assert stats["batches"] == 8 and stats["padding_fraction"] < 0.15
    one_bucket = make_dataset(
        pairs,
        TeacherForcing(source_tokenizer, target_tokenizer),
        batch_size=32,
        shuffle=False,
        bucket_width=15,
        max_bucket_length=16,
    )
    assert batch_statistics(one_bucket)["padding_fraction"] > 0.3


def test_each_epoch_holds_every_pair_once_in_batches_of_one_bucket():
    """In-memory pairs are arranged per batch: a seeded order, grouped by length bucket, cut to
    the bucket's batch size (a smaller last one), the batches in a seeded order."""
    source_tokenizer, target_tokenizer = tokenizers()
    pairs = [("a" * n, "X " * (n % 3 + 1)) for n in range(1, 9)] * 5  # 40 pairs, 8 lengths

    def epochs(seed):
        stream = make_dataset(
            pairs,
            TeacherForcing(source_tokenizer, target_tokenizer),
            batch_size=3,
            shuffle=True,
            seed=seed,
            bucket_width=2,
            max_bucket_length=8,
            epoch_range=(0, 2),
        )
        return [
            [row[row != 0].tolist() for row in inputs["source_ids"].numpy()] for inputs, _ in stream
        ]

    batches = epochs(7)
    per_epoch = len(batches) // 2
    lengths = collections.Counter(max(n, n % 3 + 2) for n in range(1, 9) for _ in range(5))
    assert per_epoch == count_batches(lengths, *buckets(2, 8, 3))
    for epoch in (batches[:per_epoch], batches[per_epoch:]):
        sources = sorted(len(row) for batch in epoch for row in batch)
        assert sources == sorted(len(source) for source, _ in pairs)
        for batch in epoch:  # one bucket: the longest of source and target + 1 within 2 wide
            longest = {max(len(row), len(row) % 3 + 2) for row in batch}
            assert max(longest) - min(longest) < 2 and 1 <= len(batch) <= 3
    assert batches[:per_epoch] != batches[per_epoch:]  # each epoch its own order
    assert epochs(7) == batches and epochs(8) != batches  # a function of the seed


def test_shuffle_is_seeded():
    source_tokenizer, target_tokenizer = tokenizers()

    def first_batch(seed):
        dataset = make_dataset(
            PAIRS * 10,
            TeacherForcing(source_tokenizer, target_tokenizer),
            batch_size=4,
            shuffle=True,
            seed=seed,
        )
        return next(iter(dataset))[0]["source_ids"].numpy().tolist()

    assert first_batch(5) == first_batch(5)


def test_token_based_batches_hold_about_batch_tokens_and_drop_nothing():
    source_tokenizer, target_tokenizer = tokenizers()
    dataset = make_dataset(
        PAIRS,
        TeacherForcing(source_tokenizer, target_tokenizer),
        batch_size=100,
        shuffle=False,
        bucket_width=2,
        max_bucket_length=8,
        batch_tokens=12,
    )
    seen = 0
    for inputs, target_out in dataset:
        rows, length = (
            inputs["source_ids"].shape[0],
            max(inputs["source_ids"].shape[1], target_out.shape[1]),
        )
        assert rows * length <= 12 or rows == 1
        seen += rows
    assert seen == len(PAIRS)


def test_epoch_streams_depend_only_on_seed_and_epoch():
    source_tokenizer, target_tokenizer = tokenizers()

    def batches(epoch_range):
        stream = make_dataset(
            PAIRS,
            TeacherForcing(source_tokenizer, target_tokenizer),
            batch_size=2,
            shuffle=True,
            seed=3,
            bucket_width=2,
            max_bucket_length=8,
            epoch_range=epoch_range,
        )
        return [inputs["source_ids"].numpy().tolist() for inputs, _ in stream]

    whole = batches((0, 3))
    per_epoch = len(whole) // 3
    assert (
        batches((1, 3)) == whole[per_epoch:]
    )  # a resumed run's stream is the tail of the whole one
    assert whole[:per_epoch] != whole[per_epoch : 2 * per_epoch]  # each epoch has its own order


# --- Streamed pairs (data.streaming): read anew each pass, nothing cached -----------------------


class Streamed:
    """A re-iterable that is not a list, as `s2s_keras.pipelines.corpus.PairStream` is."""

    def __init__(self, pairs):
        self.pairs = pairs

    def __iter__(self):
        return iter(self.pairs)


def examples(dataset):
    return sorted(
        (tuple(s[s != 0].tolist()), tuple(t[t != 0].tolist()))
        for inputs, target_out in dataset
        for s, t in zip(inputs["source_ids"].numpy(), target_out.numpy())
    )


def test_a_stream_gives_the_same_examples_as_the_list():
    source_tokenizer, target_tokenizer = tokenizers()
    options = dict(
        batch_size=3, shuffle=True, seed=4, bucket_width=2, max_bucket_length=8, shuffle_buffer=5
    )
    in_memory = make_dataset(PAIRS, TeacherForcing(source_tokenizer, target_tokenizer), **options)
    streamed = make_dataset(
        Streamed(PAIRS), TeacherForcing(source_tokenizer, target_tokenizer), **options
    )
    assert examples(streamed) == examples(in_memory) and len(examples(streamed)) == len(PAIRS)


def test_streamed_epochs_depend_only_on_seed_and_epoch():
    source_tokenizer, target_tokenizer = tokenizers()
    pairs = Streamed(PAIRS * 3)

    def batches(epoch_range):
        stream = make_dataset(
            pairs,
            TeacherForcing(source_tokenizer, target_tokenizer),
            batch_size=2,
            shuffle=True,
            seed=3,
            bucket_width=2,
            max_bucket_length=8,
            shuffle_buffer=7,
            epoch_range=epoch_range,
        )
        return [inputs["source_ids"].numpy().tolist() for inputs, _ in stream]

    whole = batches((0, 3))
    per_epoch = len(whole) // 3
    assert batches((0, 3)) == whole  # rebuilt: identical
    assert batches((1, 3)) == whole[per_epoch:]  # resumed at epoch 1: the same tail
    assert whole[:per_epoch] != whole[per_epoch : 2 * per_epoch]


@pytest.mark.parametrize(
    "batch_size, batch_tokens, bucket_width", [(2, 0, 2), (3, 0, 1), (100, 12, 2), (5, 7, 3)]
)
def test_batches_counted_from_lengths_match_the_dataset(batch_size, batch_tokens, bucket_width):
    source_tokenizer, target_tokenizer = tokenizers()
    pairs = PAIRS + [("abcdeabcde", "X Y Z X Y Z X Y Z")] * 3  # longer than max_bucket_length
    lengths = collections.Counter(
        teacher_forcing_lengths(
            source_tokenizer.tokenize_ragged(tf.constant([s for s, _ in pairs])).row_lengths(),
            target_tokenizer.tokenize_ragged(tf.constant([t for _, t in pairs])).row_lengths(),
        ).tolist()
    )
    dataset = make_dataset(
        pairs,
        TeacherForcing(source_tokenizer, target_tokenizer),
        batch_size=batch_size,
        shuffle=True,
        bucket_width=bucket_width,
        max_bucket_length=8,
        batch_tokens=batch_tokens,
    )
    counted = count_batches(lengths, *buckets(bucket_width, 8, batch_size, batch_tokens))
    assert counted == batch_statistics(dataset)["batches"]


def test_padding_counter_gives_each_epochs_padding_fraction():
    source_tokenizer, target_tokenizer = tokenizers()
    counter = PaddingCounter(epochs=3)
    stream = make_dataset(
        Streamed(PAIRS * 2),
        TeacherForcing(source_tokenizer, target_tokenizer),
        batch_size=3,
        shuffle=True,
        seed=1,
        bucket_width=4,
        max_bucket_length=8,
        shuffle_buffer=4,
        epoch_range=(1, 3),
        padding=counter,
    )
    next(iter(stream))  # as Keras peeks at a batch (its prefetching reads several)
    batches = list(stream)
    list(stream.take(3))
    fractions = [counter.fraction(epoch) for epoch in range(3)]
    per_epoch = len(batches) // 2
    by_hand = []
    for epoch in range(2):
        padded = total = 0
        for inputs, target_out in batches[epoch * per_epoch : (epoch + 1) * per_epoch]:
            for ids in (inputs["source_ids"].numpy(), target_out.numpy()):
                padded, total = padded + int((ids == 0).sum()), total + ids.size
        by_hand.append(padded / total)
    assert fractions[0] == 0.0  # epoch 0 was not run
    assert fractions[1:] == pytest.approx(by_hand)
    assert 0.0 < fractions[1] < 1.0
    assert counter.counts.numpy()[1:, 2].tolist() == [per_epoch, per_epoch]  # every batch once
