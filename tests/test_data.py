import numpy as np

from s2s_keras.data import batch_statistics, make_dataset
from s2s_keras.text import END_ID, START_ID, Tokenizer

PAIRS = [("ab", "X Y"), ("abcde", "Y"), ("a", "X X X Z"), ("cab", "Z")] * 3


def tokenizers():
    return (Tokenizer(list("abcde"), "characters"),
            Tokenizer(["X", "Y", "Z"], "whitespace", lowercase=False))


def test_teacher_forcing_shift_shapes_and_masks():
    source_tokenizer, target_tokenizer = tokenizers()
    dataset = make_dataset(PAIRS, source_tokenizer, target_tokenizer, batch_size=2, shuffle=False,
                           bucket_width=2, max_bucket_length=8)
    seen = 0
    for inputs, target_out in dataset:
        source, target_in = inputs["source_ids"].numpy(), inputs["target_in_ids"].numpy()
        target_out = target_out.numpy()
        assert source.dtype == np.int32 and target_in.shape == target_out.shape
        assert (target_in[:, 0] == START_ID).all()
        for row_in, row_out in zip(target_in, target_out):
            length = int((row_out != 0).sum())
            assert row_out[length - 1] == END_ID  # y + </s>
            np.testing.assert_array_equal(row_in[1:length], row_out[:length - 1])  # <s> + y
            assert (row_in[length:] == 0).all() and (row_out[length:] == 0).all()
        seen += len(source)
    assert seen == len(PAIRS)  # nothing dropped by bucketing


def test_buckets_reduce_padding_and_statistics():
    source_tokenizer, target_tokenizer = tokenizers()
    pairs = [("a" * n, "X " * n) for n in range(1, 9)] * 4
    bucketed = make_dataset(pairs, source_tokenizer, target_tokenizer, batch_size=4, shuffle=True,
                            bucket_width=1, max_bucket_length=16)
    stats = batch_statistics(bucketed)
    assert stats["batches"] == 8 and stats["padding_fraction"] < 0.15
    one_bucket = make_dataset(pairs, source_tokenizer, target_tokenizer, batch_size=32, shuffle=False,
                              bucket_width=15, max_bucket_length=16)
    assert batch_statistics(one_bucket)["padding_fraction"] > 0.3


def test_shuffle_is_seeded():
    source_tokenizer, target_tokenizer = tokenizers()

    def first_batch(seed):
        dataset = make_dataset(PAIRS * 10, source_tokenizer, target_tokenizer, batch_size=4,
                               shuffle=True, seed=seed)
        return next(iter(dataset))[0]["source_ids"].numpy().tolist()

    assert first_batch(5) == first_batch(5)


def test_token_based_batches_hold_about_batch_tokens_and_drop_nothing():
    source_tokenizer, target_tokenizer = tokenizers()
    dataset = make_dataset(PAIRS, source_tokenizer, target_tokenizer, batch_size=100, shuffle=False,
                           bucket_width=2, max_bucket_length=8, batch_tokens=12)
    seen = 0
    for inputs, target_out in dataset:
        rows, length = inputs["source_ids"].shape[0], max(inputs["source_ids"].shape[1], target_out.shape[1])
        assert rows * length <= 12 or rows == 1
        seen += rows
    assert seen == len(PAIRS)


def test_epoch_streams_depend_only_on_seed_and_epoch():
    source_tokenizer, target_tokenizer = tokenizers()

    def batches(epoch_range):
        stream = make_dataset(PAIRS, source_tokenizer, target_tokenizer, batch_size=2, shuffle=True, seed=3,
                              bucket_width=2, max_bucket_length=8, epoch_range=epoch_range)
        return [inputs["source_ids"].numpy().tolist() for inputs, _ in stream]

    whole = batches((0, 3))
    per_epoch = len(whole) // 3
    assert batches((1, 3)) == whole[per_epoch:]  # a resumed run's stream is the tail of the whole one
    assert whole[:per_epoch] != whole[per_epoch:2 * per_epoch]  # each epoch has its own order
