"""(source, target) string pairs → padded, length-bucketed id batches for teacher forcing.

Each element is `({"source_ids": (batch, S), "target_in_ids": (batch, T)}, target_out_ids (batch, T))`
with `target_in = <s> + y` and `target_out = y + </s>` (the teacher-forcing shift), 0 = padding.
Pairs are tokenized once (cached), shuffled with a seed, grouped into buckets of similar length
(`bucket_width` tokens wide) so that little of each batch is padding, then prefetched. A streamed
training split (`pipelines.corpus.PairStream`, `data.streaming`) is read from its files on every
pass instead: tokenized as it is read, shuffled within a window of `shuffle_buffer` examples.
"""

from __future__ import annotations

import bisect
import collections.abc
import itertools

import numpy as np
import tensorflow as tf

from s2s_keras.text import END_ID, PAD_ID, START_ID, Tokenizer


def teacher_forcing_shift(target_ids: tf.RaggedTensor):
    """Ragged `y` → `(<s> + y, y + </s>)`: decoder inputs and the tokens they must predict."""
    rows = target_ids.nrows()
    start = tf.RaggedTensor.from_tensor(tf.fill([rows, 1], START_ID))
    end = tf.RaggedTensor.from_tensor(tf.fill([rows, 1], END_ID))
    return tf.concat([start, target_ids], axis=1), tf.concat([target_ids, end], axis=1)


def encode_pairs(sources: tf.Tensor, targets: tf.Tensor, source_tokenizer: Tokenizer,
                 target_tokenizer: Tokenizer):
    """Batch of strings → ragged `(source_ids, target_in_ids, target_out_ids)`."""
    target_in, target_out = teacher_forcing_shift(target_tokenizer.tokenize_ragged(targets))
    return source_tokenizer.tokenize_ragged(sources), target_in, target_out


STRING_BATCH = 4096  # strings per tokenizer call: far cheaper than one string per call


def buckets(bucket_width: int, max_bucket_length: int, batch_size: int, batch_tokens: int = 0) -> tuple:
    """`(boundaries, batch sizes)` of the length buckets: bucket i holds example lengths in
    `[boundaries[i-1], boundaries[i])`, the first one everything shorter, the last one everything
    longer."""
    boundaries = list(range(bucket_width + 1, max_bucket_length + 1, bucket_width))
    if batch_tokens > 0:
        longest = [boundary - 1 for boundary in boundaries] + [max_bucket_length]
        return boundaries, [max(1, batch_tokens // length) for length in longest]
    return boundaries, [batch_size] * (len(boundaries) + 1)


def count_batches(lengths: collections.abc.Mapping, boundaries: list, batch_sizes: list) -> int:
    """Batches per epoch from a histogram `{example length: examples}`, where an example's length
    is `max(source tokens, target tokens + 1)` (what bucketing measures). Every bucket ends its
    epoch with one partial batch, so the count does not depend on the order."""
    per_bucket = collections.Counter()
    for length, examples in lengths.items():
        per_bucket[bisect.bisect_right(boundaries, length)] += examples
    return sum(-(-examples // batch_sizes[bucket]) for bucket, examples in per_bucket.items())


def example_lengths(source_lengths, target_lengths) -> collections.Counter:
    """Histogram of bucketing lengths from token counts per pair (see `count_batches`)."""
    return collections.Counter(np.maximum(np.asarray(source_lengths), np.asarray(target_lengths) + 1).tolist())


class PaddingCounter:
    """Padding and all positions (source ids + target ids) of the batches of each epoch, counted
    as tf.data produces them: the per-epoch padding fraction without a pass of its own. Give it
    to `make_dataset(..., epoch_range=..., padding=counter)`; read `fraction(epoch)` once the
    epoch's batches are consumed (`PaddingFraction` does, into the epoch's logs).

    Batch i of an epoch is counted only if batches 0 .. i-1 were and it was not: an iterator that
    reads ahead and is dropped (Keras peeks at one batch to build the model; prefetching reads
    further) and the iterator that trains produce the same batches, as epoch e's order depends
    on (seed, e) alone, so each is counted once."""

    def __init__(self, epochs: int):
        with tf.init_scope():
            self.counts = tf.Variable(tf.zeros([epochs, 3], tf.int64), trainable=False, name="padding_counts")

    def count(self, epoch, index, source, target_out):
        padded = tf.add_n([tf.reduce_sum(tf.cast(ids == PAD_ID, tf.int64)) for ids in (source, target_out)])
        total = tf.size(source, out_type=tf.int64) + tf.size(target_out, out_type=tf.int64)
        epoch = tf.cast(epoch, tf.int64)

        def add():
            indices = tf.stack([tf.fill([3], epoch), tf.range(3, dtype=tf.int64)], axis=1)
            return self.counts.scatter_nd_add(indices, tf.stack([padded, total, 1])).read_value()[0, 0]

        return tf.cond(tf.equal(index, self.counts[epoch, 2]), add, lambda: tf.constant(0, tf.int64))

    def fraction(self, epoch: int) -> float:
        padded, total, _ = self.counts[epoch].numpy().tolist()
        return padded / total if total else 0.0


def make_dataset(pairs, source_tokenizer: Tokenizer, target_tokenizer: Tokenizer, batch_size: int,
                 shuffle: bool, seed: int = 0, bucket_width: int = 2, max_bucket_length: int = 64,
                 shuffle_buffer: int = 200_000, epoch_range: tuple[int, int] | None = None,
                 batch_tokens: int = 0, padding: PaddingCounter | None = None) -> tf.data.Dataset:
    """Batches of one pass over `pairs` (reshuffled each time it is iterated), or with
    `epoch_range=(first, stop)` the batches of epochs `first .. stop-1` one after the other, where
    epoch e's order is a function of `(seed, e)` alone: a run resumed at epoch e (plus `skip`
    of the steps already done) sees exactly the batches an uninterrupted run would.

    `pairs` is a list, or any other re-iterable of pairs (a `pipelines.corpus.PairStream`): that
    one is read anew each pass, in order, through a bounded shuffle window; nothing is cached.

    `batch_tokens > 0` sizes each length bucket's batches to about that many padded tokens
    (`batch_tokens // bucket length`, at least 1) instead of `batch_size` examples.
    `padding` (with `epoch_range`) counts each epoch's padding (see `PaddingCounter`)."""
    in_memory = isinstance(pairs, collections.abc.Sequence)
    if in_memory and not pairs:
        raise ValueError("make_dataset: no pairs (is the split empty?)")

    def encode(source, target):
        return encode_pairs(source, target, source_tokenizer, target_tokenizer)

    def densify(*ragged):
        # After unbatch each element is a rank-0-ragged tensor; padded_batch wants plain tensors.
        return tuple(tensor.to_tensor() if isinstance(tensor, tf.RaggedTensor) else tensor
                     for tensor in ragged)

    if in_memory:
        strings = tf.data.Dataset.from_tensor_slices((
            tf.constant([source for source, _ in pairs], tf.string),
            tf.constant([target for _, target in pairs], tf.string))).batch(STRING_BATCH)
        buffer = min(shuffle_buffer, len(pairs))
    else:
        strings = tf.data.Dataset.from_generator(
            lambda: string_batches(pairs), output_signature=(tf.TensorSpec([None], tf.string),) * 2)
        buffer = shuffle_buffer
    examples = (strings
                .map(encode, num_parallel_calls=tf.data.AUTOTUNE)
                .unbatch()
                .map(densify))
    if in_memory:
        examples = examples.cache()  # tokenized once; a stream is tokenized as it is read
    boundaries, bucket_batch_sizes = buckets(bucket_width, max_bucket_length, batch_size, batch_tokens)

    def arrange(epoch, epoch_seed, reshuffle: bool):
        dataset = examples
        if shuffle:
            dataset = dataset.shuffle(buffer, seed=epoch_seed, reshuffle_each_iteration=reshuffle)
        dataset = dataset.bucket_by_sequence_length(
            element_length_func=lambda source, target_in, _: tf.maximum(tf.shape(source)[0],
                                                                        tf.shape(target_in)[0]),
            bucket_boundaries=boundaries,
            bucket_batch_sizes=bucket_batch_sizes,
            padding_values=(PAD_ID, PAD_ID, PAD_ID))
        if shuffle:
            # Buckets fill at different rates; mixing whole batches keeps lengths from arriving in runs.
            dataset = dataset.shuffle(64, seed=epoch_seed + 1, reshuffle_each_iteration=reshuffle)

        def as_inputs(source, target_in, target_out):
            return {"source_ids": source, "target_in_ids": target_in}, target_out

        if padding is None:
            return dataset.map(as_inputs)

        def counted(index, batch):
            with tf.control_dependencies([padding.count(epoch, index, batch[0], batch[2])]):
                return as_inputs(*(tf.identity(ids) for ids in batch))
        return dataset.enumerate().map(counted)

    if epoch_range is None:
        dataset = arrange(0, seed, reshuffle=True)
    else:
        first, stop = epoch_range
        dataset = tf.data.Dataset.range(first, stop).flat_map(
            lambda epoch: arrange(epoch, tf.cast(seed, tf.int64) + 7919 * epoch, reshuffle=False))
    # Multi-worker training shards by element (each worker takes its part of every global
    # batch), not by file: in memory there are no files, and a stream's shards are read in order.
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options).prefetch(tf.data.AUTOTUNE)


def string_batches(pairs, size: int = STRING_BATCH):
    """`(sources, targets)` arrays of up to `size` strings from an iterable of pairs."""
    pairs = iter(pairs)
    while batch := list(itertools.islice(pairs, size)):
        sources, targets = zip(*batch)
        yield np.array(sources, dtype=object), np.array(targets, dtype=object)


def batch_statistics(dataset: tf.data.Dataset) -> dict:
    """One pass: `batches`, and `padding_fraction` = padding positions / all source and target
    positions. Bucketing makes the batch count the same every epoch (same examples per bucket)."""
    padded = total = batches = 0
    for inputs, target_out in dataset:
        batches += 1
        for ids in (inputs["source_ids"], target_out):
            padded += int(tf.reduce_sum(tf.cast(ids == PAD_ID, tf.int64)))
            total += int(tf.size(ids, out_type=tf.int64))
    return {"batches": batches, "padding_fraction": padded / total if total else 0.0}
