"""(source, target) string pairs → padded, length-bucketed id batches for teacher forcing.

Each element is `({"source_ids": (batch, S), "target_in_ids": (batch, T)}, target_out_ids (batch, T))`
with `target_in = <s> + y` and `target_out = y + </s>` (the teacher-forcing shift), 0 = padding.
Pairs are tokenized once (cached), shuffled with a seed, grouped into buckets of similar length
(`bucket_width` tokens wide) so that little of each batch is padding, then prefetched.
"""

from __future__ import annotations

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


def make_dataset(pairs, source_tokenizer: Tokenizer, target_tokenizer: Tokenizer, batch_size: int,
                 shuffle: bool, seed: int = 0, bucket_width: int = 2, max_bucket_length: int = 64,
                 shuffle_buffer: int = 200_000, epoch_range: tuple[int, int] | None = None,
                 batch_tokens: int = 0) -> tf.data.Dataset:
    """Batches of one pass over `pairs` (reshuffled each time it is iterated), or with
    `epoch_range=(first, stop)` the batches of epochs `first .. stop-1` one after the other, where
    epoch e's order is a function of `(seed, e)` alone: a run resumed at epoch e (plus `skip`
    of the steps already done) sees exactly the batches an uninterrupted run would.

    `batch_tokens > 0` sizes each length bucket's batches to about that many padded tokens
    (`batch_tokens // bucket length`, at least 1) instead of `batch_size` examples."""
    if not pairs:
        raise ValueError("make_dataset: no pairs (is the split empty?)")
    sources = tf.constant([source for source, _ in pairs], tf.string)
    targets = tf.constant([target for _, target in pairs], tf.string)

    def encode(source, target):
        return encode_pairs(source, target, source_tokenizer, target_tokenizer)

    def densify(*ragged):
        # After unbatch each element is a rank-0-ragged tensor; padded_batch wants plain tensors.
        return tuple(tensor.to_tensor() if isinstance(tensor, tf.RaggedTensor) else tensor
                     for tensor in ragged)

    # Tokenizing 4096 strings per call is far cheaper than one string per call.
    examples = (tf.data.Dataset.from_tensor_slices((sources, targets))
                .batch(4096)
                .map(encode, num_parallel_calls=tf.data.AUTOTUNE)
                .unbatch()
                .map(densify)
                .cache())
    boundaries = list(range(bucket_width + 1, max_bucket_length + 1, bucket_width))
    if batch_tokens > 0:
        # a bucket holds lengths below its boundary; the last one everything longer
        longest = [boundary - 1 for boundary in boundaries] + [max_bucket_length]
        bucket_batch_sizes = [max(1, batch_tokens // length) for length in longest]
    else:
        bucket_batch_sizes = [batch_size] * (len(boundaries) + 1)

    def arrange(epoch_seed, reshuffle: bool):
        dataset = examples
        if shuffle:
            dataset = dataset.shuffle(min(shuffle_buffer, len(pairs)), seed=epoch_seed,
                                      reshuffle_each_iteration=reshuffle)
        dataset = dataset.bucket_by_sequence_length(
            element_length_func=lambda source, target_in, _: tf.maximum(tf.shape(source)[0],
                                                                        tf.shape(target_in)[0]),
            bucket_boundaries=boundaries,
            bucket_batch_sizes=bucket_batch_sizes,
            padding_values=(PAD_ID, PAD_ID, PAD_ID))
        if shuffle:
            # Buckets fill at different rates; mixing whole batches keeps lengths from arriving in runs.
            dataset = dataset.shuffle(64, seed=epoch_seed + 1, reshuffle_each_iteration=reshuffle)
        return dataset.map(lambda source, target_in, target_out: (
            {"source_ids": source, "target_in_ids": target_in}, target_out))

    if epoch_range is None:
        dataset = arrange(seed, reshuffle=True)
    else:
        first, stop = epoch_range
        dataset = tf.data.Dataset.range(first, stop).flat_map(
            lambda epoch: arrange(tf.cast(seed, tf.int64) + 7919 * epoch, reshuffle=False))
    # In memory, not in files: multi-worker training shards it by element (each worker takes its
    # part of every global batch), not by file.
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options).prefetch(tf.data.AUTOTUNE)


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
