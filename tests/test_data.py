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
