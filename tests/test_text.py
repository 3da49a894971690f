import keras
import numpy as np
import pytest
import tensorflow as tf

from s2s_keras.text import END_ID, PAD_ID, START_ID, UNK_ID, Tokenizer, build_vocabulary


def test_reserved_ids_and_order():
    tokenizer = Tokenizer(vocabulary=list("abc"), split="characters")
    assert (PAD_ID, UNK_ID, START_ID, END_ID) == (0, 1, 2, 3)
    assert tokenizer.vocabulary_size == 7
    ids = tokenizer.tokenize(tf.constant(["cab", "Ad", ""])).numpy().tolist()
    assert ids == [[6, 4, 5], [4, UNK_ID, 0], [0, 0, 0]]


def test_detokenize_stops_at_end_and_drops_padding_and_start():
    tokenizer = Tokenizer(vocabulary=["AA", "B"], split="whitespace", lowercase=False)
    ids = tf.constant([[START_ID, 4, 5, END_ID, 4], [5, 0, 0, 0, 0], [END_ID, 4, 4, 4, 4]])
    assert tokenizer.detokenize(ids).numpy().tolist() == [b"AA B", b"B", b""]


def test_normalization_unicode_casefold_nfkc_and_invalid_utf8():
    vocabulary = build_vocabulary(["Straße", "ÉCOLE", "ﬁ"], "characters", lowercase=True)
    assert "É" not in vocabulary and "é" in vocabulary  # Unicode case folding, not ASCII only
    assert "ﬁ" not in vocabulary and "f" in vocabulary and "i" in vocabulary  # NFKC
    tokenizer = Tokenizer(vocabulary, "characters")
    # Invalid UTF-8 becomes U+FFFD (unknown), the valid bytes around it still map.
    ids = tokenizer.tokenize(tf.constant([b"\xffe"])).numpy().tolist()[0]
    assert ids == [UNK_ID, tokenizer.tokenize(tf.constant(["e"])).numpy()[0, 0]]


def test_vocabulary_is_by_count_then_code_point_and_excludes_reserved():
    assert build_vocabulary(["b a a", "c b a <s>"], "whitespace", lowercase=False) == [
        "a",
        "b",
        "c",
    ]


def test_round_trip_and_max_length():
    tokenizer = Tokenizer(vocabulary=list("helo wrd"), split="characters")
    ids = tokenizer.tokenize(tf.constant(["Hello world", "he"]))
    assert tokenizer.detokenize(ids).numpy().tolist() == [b"hello world", b"he"]
    assert tokenizer.tokenize(tf.constant(["hello"]), max_length=3).shape == (1, 3)


def test_serialization_round_trip():
    tokenizer = Tokenizer(vocabulary=list("xyz"), split="characters", lowercase=False)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(tokenizer))
    assert restored.vocabulary == ["x", "y", "z"] and restored.lowercase is False
    strings = tf.constant(["zyx", "X"])
    assert (restored.tokenize(strings).numpy() == tokenizer.tokenize(strings).numpy()).all()


@pytest.mark.parametrize("split", ["characters", "whitespace", "wordpiece"])
def test_a_reversing_tokenizer_runs_right_to_left_and_reads_back_in_order(split):
    texts = {
        "characters": ["cab", "a", "", "abcab"],
        "whitespace": ["AA B C", "B", "", "C AA"],
        "wordpiece": ["unhappy day", "day", "", "happy unday"],
    }[split]
    vocabulary = build_vocabulary(texts, split, lowercase=False, vocabulary_size=40)
    forward = Tokenizer(vocabulary, split, lowercase=False)
    backward = Tokenizer(vocabulary, split, lowercase=False, reverse=True)
    strings = tf.constant(texts)
    expected = [row[::-1] for row in forward.tokenize_ragged(strings).to_list()]
    assert backward.tokenize_ragged(strings).to_list() == expected
    ids = backward.tokenize(strings)
    assert backward.detokenize(ids).numpy().tolist() == [text.encode() for text in texts]
    # Ids after the end id are not read; the text before it comes back in reading order.
    ids = tf.concat([ids[:, :2], tf.fill([4, 1], END_ID), tf.fill([4, 2], 4)], axis=1)
    assert backward.detokenize(ids).numpy().tolist() == [
        forward.detokenize(row[::-1][None]).numpy()[0] for row in ids[:, :2].numpy()
    ]
    assert backward.split(strings).to_list() == forward.split(strings).to_list()
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(backward))
    assert restored.reverse
    np.testing.assert_array_equal(restored.tokenize(strings), backward.tokenize(strings))


def test_rejects_reserved_tokens_and_bad_split():
    with pytest.raises(ValueError, match="reserved"):
        Tokenizer(vocabulary=["a", "</s>"])
    with pytest.raises(ValueError, match="split"):
        Tokenizer(vocabulary=["a"], split="words")


@pytest.mark.parametrize("split", ["characters", "whitespace", "wordpiece"])
def test_vocabulary_from_a_stream_in_small_batches_equals_the_one_from_a_list(split):
    texts = ["Hello, world!", "the quick brown fox", "naïve café, Straße", "hello again world"] * 5
    in_one_batch = build_vocabulary(texts, split, lowercase=True, vocabulary_size=40)
    streamed = build_vocabulary(
        (text for text in texts), split, lowercase=True, batch_size=3, vocabulary_size=40
    )
    assert streamed == in_one_batch and len(in_one_batch) > 5
