"""Text ⇄ token ids, as one Keras layer that runs in tf.data, in training and inside the export."""

from __future__ import annotations

import collections
import itertools
import typing

import keras
import numpy as np
import tensorflow as tf
import tensorflow_text as tf_text

PAD, UNK, START, END = "", "[UNK]", "<s>", "</s>"
PAD_ID, UNK_ID, START_ID, END_ID = 0, 1, 2, 3
RESERVED = (PAD, UNK, START, END)
SPLIT_MODES = ("characters", "whitespace", "wordpiece")
SUFFIX = "##"  # WordPiece marks a piece that continues a word


@keras.saving.register_keras_serializable(package="s2s_keras")
class Tokenizer(keras.layers.Layer):
    """Normalizes strings, splits them into tokens and maps tokens to ids (and back).

    Normalization: invalid UTF-8 bytes become U+FFFD, then Unicode NFKC, then (if `lowercase`)
    Unicode case folding (`tf_text.case_fold_utf8`), then surrounding whitespace is stripped.
    The same graph ops run when the vocabulary is built, in the tf.data pipeline and in the
    SavedModel.

    Ids: 0 padding, 1 unknown (`[UNK]`), 2 start (`<s>`), 3 end (`</s>`), then `vocabulary`
    in order. Tokens never seen in training map to the unknown id.

    Args:
        vocabulary: list of tokens (without the reserved ones), e.g. from `build_vocabulary`.
        split: `"characters"` (Unicode code points; spaces are tokens too), `"whitespace"`, or
            `"wordpiece"`: subwords (BERT-style split on whitespace and punctuation, then
            `tf_text.FastWordpieceTokenizer` over `vocabulary`, whose continuation pieces start
            with `##`; `build_vocabulary` learns one). Detokenization joins pieces back into
            words, words with single spaces.
        lowercase: apply Unicode case folding.
        reverse: ids run right to left (`tokenize` reverses each row's tokens; `detokenize`
            reads ids in that order and gives text in reading order): a right-to-left model,
            e.g. for reranking a left-to-right model's n-best. `split` keeps reading order.

    Shapes: `tokenize(strings (batch,)) -> ids (batch, time)` int32, padded with 0;
    `detokenize(ids (batch, time)) -> strings (batch,)`, stopping at the end id.

    Example:
        >>> tokenizer = Tokenizer(vocabulary=list("abc"), split="characters")
        >>> tokenizer.tokenize(tf.constant(["cab", "Ad"])).numpy().tolist()
        [[6, 4, 5], [4, 1, 0]]
        >>> tokenizer.detokenize(tf.constant([[6, 4, 3, 5]])).numpy().tolist()
        [b'ca']
    """

    def __init__(
        self,
        vocabulary: typing.Sequence[str],
        split: str = "characters",
        lowercase: bool = True,
        reverse: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if split not in SPLIT_MODES:
            raise ValueError(f"Tokenizer split: expected one of {SPLIT_MODES}, got {split!r}")
        clashes = [token for token in vocabulary if token in RESERVED]
        if clashes:
            raise ValueError(
                f"Tokenizer vocabulary must not contain reserved tokens {RESERVED}: {clashes}"
            )
        self.vocabulary = list(vocabulary)
        self.split_mode = split
        self.lowercase = lowercase
        self.reverse = reverse
        self.lookup = keras.layers.StringLookup(
            vocabulary=[START, END, *self.vocabulary],
            mask_token=PAD,
            oov_token=UNK,
            num_oov_indices=1,
            dtype="int64",
        )
        # id -> token, for detokenization (reserved ids are masked out there).
        self.id_to_token = tf.constant([PAD, UNK, START, END, *self.vocabulary])
        self.wordpiece = None
        if split == "wordpiece":
            self.wordpiece = tf_text.FastWordpieceTokenizer(
                [UNK, *self.vocabulary],
                suffix_indicator=SUFFIX,
                token_out_type=tf.string,
                unknown_token=UNK,
                no_pretokenization=False,
            )
        self.built = True

    @property
    def vocabulary_size(self) -> int:
        """Number of ids, reserved ones included."""
        return len(self.vocabulary) + len(RESERVED)

    def normalize(self, strings: tf.Tensor) -> tf.Tensor:
        strings = tf.strings.unicode_transcode(
            strings,
            input_encoding="UTF-8",
            output_encoding="UTF-8",
            errors="replace",
            replacement_char=0xFFFD,
        )
        strings = tf_text.normalize_utf8(strings, "NFKC")
        if self.lowercase:
            strings = tf_text.case_fold_utf8(strings)
        return tf.strings.strip(strings)

    def split(self, strings: tf.Tensor) -> tf.RaggedTensor:
        """Normalized tokens, `(batch,) -> (batch, None)` ragged strings."""
        strings = self.normalize(strings)
        if self.split_mode == "characters":
            return tf.strings.unicode_split(strings, "UTF-8")
        if self.split_mode == "wordpiece":
            return self.wordpiece.tokenize(strings)
        return tf.strings.split(strings)

    def tokenize_ragged(self, strings: tf.Tensor) -> tf.RaggedTensor:
        tokens = self.split(strings)
        ids = self.lookup(tokens.flat_values)
        ids = tokens.with_flat_values(tf.cast(ids, tf.int32))
        return reversed_rows(ids) if self.reverse else ids

    def tokenize(self, strings: tf.Tensor, max_length: int | tf.Tensor | None = None) -> tf.Tensor:
        ids = self.tokenize_ragged(strings)
        if max_length is not None:
            ids = ids[:, :max_length]
        return ids.to_tensor(default_value=PAD_ID)

    def call(self, strings):
        return self.tokenize(strings)

    def detokenize(self, ids: tf.Tensor) -> tf.Tensor:
        """Joins the tokens before the first end id; padding and start ids are dropped."""
        ids = tf.convert_to_tensor(ids, tf.int32)
        before_end = (
            tf.cumsum(tf.cast(tf.equal(ids, END_ID), tf.int32), axis=1, exclusive=True) == 0
        )
        keep = before_end & (ids != PAD_ID) & (ids != START_ID) & (ids != END_ID)
        tokens = tf.ragged.boolean_mask(tf.gather(self.id_to_token, ids), keep)
        if self.reverse:
            tokens = reversed_rows(tokens)
        separator = "" if self.split_mode == "characters" else " "
        text = tf.strings.reduce_join(tokens, axis=1, separator=separator)
        if self.split_mode == "wordpiece":
            text = tf.strings.regex_replace(
                tf.strings.regex_replace(text, " " + SUFFIX, ""), "^" + SUFFIX, ""
            )
        return text

    def get_config(self):
        config = super().get_config()
        config.update(
            vocabulary=self.vocabulary,
            split=self.split_mode,
            lowercase=self.lowercase,
            reverse=self.reverse,
        )
        return config


def reversed_rows(ragged: tf.RaggedTensor) -> tf.RaggedTensor:
    """Each row of a 2-D ragged tensor in reverse order: the value at offset k of a row of
    length n moves to offset n - 1 - k."""
    rows = ragged.value_rowids()
    starts = tf.gather(ragged.row_starts(), rows)
    ends = tf.gather(ragged.row_limits(), rows)
    positions = tf.range(tf.size(rows, out_type=rows.dtype), dtype=rows.dtype)
    return ragged.with_flat_values(tf.gather(ragged.flat_values, starts + ends - 1 - positions))


class TokenCounter:
    """Counts the tokens of a stream of string batches; memory is one count per distinct token
    (per distinct word for `wordpiece`), never the texts. `vocabulary()` turns the counts into a
    vocabulary: what `build_vocabulary` returns for the same texts, however they were batched.

    `update(strings (batch,))` returns each string's token count (for `characters` and
    `whitespace` the lengths the `Tokenizer` will produce; for `wordpiece`, words).

    Example:
        >>> counter = TokenCounter("characters", lowercase=True)
        >>> counter.update(tf.constant(["Abba", "ab"])).tolist()
        [4, 2]
        >>> counter.vocabulary()
        ['a', 'b']
    """

    def __init__(self, split: str, lowercase: bool):
        self.split = split
        self.splitter = Tokenizer(
            vocabulary=[],
            split="whitespace" if split == "wordpiece" else split,
            lowercase=lowercase,
        )
        if split == "wordpiece":
            # The words BERT's vocabulary tool learns from (its `bert_vocab_from_dataset`).
            from tensorflow_text.python.ops.bert_tokenizer import BasicTokenizer

            self.words = BasicTokenizer(lower_case=False)
        self.counts: collections.Counter = collections.Counter()

    def update(self, strings) -> np.ndarray:
        strings = tf.convert_to_tensor(strings, tf.string)
        if self.split == "wordpiece":
            tokens = self.words.tokenize(self.splitter.normalize(strings))
        else:
            tokens = self.splitter.split(strings)
        self.counts.update(tokens.flat_values.numpy())
        return tokens.row_lengths().numpy()

    def vocabulary(self, vocabulary_size: int = 8000, min_count: int = 1) -> list[str]:
        counts = {token.decode("utf-8"): count for token, count in self.counts.items()}
        if self.split == "wordpiece":
            from tensorflow_text.tools.wordpiece_vocab import wordpiece_tokenizer_learner_lib

            learned = wordpiece_tokenizer_learner_lib.learn(
                collections.Counter(counts), vocabulary_size, reserved_tokens=[UNK]
            )
            return [token for token in learned if token not in RESERVED]
        tokens = [t for t, c in counts.items() if c >= min_count and t not in RESERVED]
        return sorted(tokens, key=lambda t: (-counts[t], t))


def build_vocabulary(
    texts: typing.Iterable[str],
    split: str,
    lowercase: bool,
    min_count: int = 1,
    batch_size: int = 4096,
    vocabulary_size: int = 8000,
) -> list[str]:
    """Tokens of `texts` by descending count (ties: code point order), through the same
    normalization and splitting graph as `Tokenizer`; reserved tokens are left out. For
    `wordpiece`, a WordPiece vocabulary of about `vocabulary_size` pieces learned from the
    normalized texts with TensorFlow Text's BERT vocabulary tool. `texts` is read in batches
    (any iterable: a generator streams; see `TokenCounter`)."""
    counter = TokenCounter(split, lowercase)
    texts = iter(texts)
    while batch := list(itertools.islice(texts, batch_size)):
        counter.update(tf.constant(batch, tf.string))
    return counter.vocabulary(vocabulary_size, min_count)
