"""(source, target) string pairs → padded, length-bucketed id batches for teacher forcing.

Each seq2seq element is `({"source_ids": (batch, S), "target_in_ids": (batch, T)}, target_out_ids
(batch, T))` with `target_in = <s> + y` and `target_out = y + </s>` (the teacher-forcing shift),
0 = padding; classification and language-model elements are built the same way (see
`make_dataset`), and `make_stream_dataset` cuts contiguous text for truncated BPTT.
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


def make_dataset(pairs, source_tokenizer: Tokenizer, target_tokenizer: Tokenizer | None, batch_size: int,
                 shuffle: bool, seed: int = 0, bucket_width: int = 2, max_bucket_length: int = 64,
                 shuffle_buffer: int = 200_000, epoch_range: tuple[int, int] | None = None,
                 batch_tokens: int = 0, task: str = "seq2seq", labels=None,
                 max_source_tokens: int = 0) -> tf.data.Dataset:
    """Batches of one pass over `pairs` (reshuffled each time it is iterated), or with
    `epoch_range=(first, stop)` the batches of epochs `first .. stop-1` one after the other, where
    epoch e's order is a function of `(seed, e)` alone: a run resumed at epoch e (plus `skip`
    of the steps already done) sees exactly the batches an uninterrupted run would.

    `batch_tokens > 0` sizes each length bucket's batches to about that many padded tokens
    (`batch_tokens // bucket length`, at least 1) instead of `batch_size` examples.

    `task` picks the examples (same tokenization, bucketing and batching for all):
    `seq2seq` `({"source_ids", "target_in_ids"}, target_out_ids)`; `classify`
    `({"source_ids"}, label id (batch,))` with ids in the order of `labels` and sources cut to
    their last `max_source_tokens` tokens (0: uncut); `lm` (sentences of the source column, see
    `LanguageModel`) `({"input_ids": </s> + y}, y + </s>)`."""
    if not pairs:
        raise ValueError("make_dataset: no pairs (is the split empty?)")
    sources = tf.constant([source for source, _ in pairs], tf.string)
    targets = tf.constant([target for _, target in pairs], tf.string)
    encode, arrange_inputs = _task_examples(task, source_tokenizer, target_tokenizer, labels, max_source_tokens)

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

    def length(*example):
        # the longest sequence of the example (a label is a scalar: not a sequence)
        return tf.reduce_max(tf.stack([tf.shape(part)[0] for part in example if part.shape.rank == 1]))

    def arrange(epoch_seed, reshuffle: bool):
        dataset = examples
        if shuffle:
            dataset = dataset.shuffle(min(shuffle_buffer, len(pairs)), seed=epoch_seed,
                                      reshuffle_each_iteration=reshuffle)
        dataset = dataset.bucket_by_sequence_length(
            element_length_func=length, bucket_boundaries=boundaries,
            bucket_batch_sizes=bucket_batch_sizes,
            padding_values=tuple(PAD_ID for _ in examples.element_spec))
        if shuffle:
            # Buckets fill at different rates; mixing whole batches keeps lengths from arriving in runs.
            dataset = dataset.shuffle(64, seed=epoch_seed + 1, reshuffle_each_iteration=reshuffle)
        return dataset.map(arrange_inputs)

    if epoch_range is None:
        dataset = arrange(seed, reshuffle=True)
    else:
        first, stop = epoch_range
        dataset = tf.data.Dataset.range(first, stop).flat_map(
            lambda epoch: arrange(tf.cast(seed, tf.int64) + 7919 * epoch, reshuffle=False))
    return _distributable(dataset)


def _task_examples(task: str, source_tokenizer, target_tokenizer, labels, max_source_tokens: int):
    """`(encode(sources, targets) -> ragged/dense tensors, to_model(*batch) -> (inputs, targets))`."""
    if task == "seq2seq":
        def encode(source, target):
            return encode_pairs(source, target, source_tokenizer, target_tokenizer)

        return encode, lambda source, target_in, target_out: (
            {"source_ids": source, "target_in_ids": target_in}, target_out)
    if task == "classify":
        if not labels:
            raise ValueError("make_dataset: task 'classify' needs the labels")
        table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(list(labels)), tf.range(len(labels))), -1)

        def encode(source, target):
            ids = source_tokenizer.tokenize_ragged(source)
            if max_source_tokens:
                ids = ids[:, -max_source_tokens:]
            label = table.lookup(target)
            check = tf.debugging.assert_non_negative(label, message="make_dataset: a label not in `labels`")
            with tf.control_dependencies([check]):
                return ids, tf.identity(label)

        return encode, lambda source, label: ({"source_ids": source}, label)
    if task == "lm":
        def encode(source, target):
            return lm_shift(source_tokenizer.tokenize_ragged(source))

        return encode, lambda inputs, outputs: ({"input_ids": inputs}, outputs)
    raise ValueError(f"make_dataset: unknown task {task!r}")


def lm_shift(ids: tf.RaggedTensor):
    """Ragged sentences `y` → `(</s> + y, y + </s>)`: a language model reads the end token
    before a sentence (as in contiguous text, where it ends the previous one)."""
    rows = ids.nrows()
    end = tf.RaggedTensor.from_tensor(tf.fill([rows, 1], END_ID))
    return tf.concat([end, ids], axis=1), tf.concat([ids, end], axis=1)


def make_stream_dataset(texts, tokenizer: Tokenizer, batch_size: int, bptt_length: int,
                        epoch_range: tuple[int, int] | None = None) -> tf.data.Dataset:
    """Contiguous text for truncated BPTT (Zaremba et al. 2014): every text's tokens followed by
    `</s>`, one after the other (after a first `</s>`), cut into `batch_size` equal streams laid
    side by side; batch i is steps `[i·L, (i+1)·L)` of every stream, `({"input_ids": (batch, L)},
    next tokens (batch, L))`, so that row r of batch i+1 continues row r of batch i (the last
    batch may be shorter). Order is fixed (no shuffling: it would break the streams); with
    `epoch_range`, that order once per epoch. The last `< batch_size` tokens are dropped (the
    streams must be equal); `stream_statistics` reports how many."""
    if not texts:
        raise ValueError("make_stream_dataset: no texts (is the split empty?)")
    ids = _stream_ids(texts, tokenizer)
    steps = (len(ids) - 1) // batch_size
    if steps < 1:
        raise ValueError(f"make_stream_dataset: {len(ids)} tokens cannot fill {batch_size} streams")
    inputs = tf.reshape(ids[:batch_size * steps], [batch_size, steps])
    outputs = tf.reshape(ids[1:batch_size * steps + 1], [batch_size, steps])
    starts = tf.range(0, steps, bptt_length)
    chunks = tf.data.Dataset.from_tensor_slices(starts).map(
        lambda start: ({"input_ids": inputs[:, start:start + bptt_length]},
                       outputs[:, start:start + bptt_length]))
    if epoch_range is not None:
        chunks = chunks.repeat(epoch_range[1] - epoch_range[0])
    return _distributable(chunks)


def stream_statistics(texts, tokenizer: Tokenizer, batch_size: int, bptt_length: int) -> dict:
    """`batches` per epoch, `tokens` predicted per epoch, `dropped_tokens` (see `make_stream_dataset`)."""
    total = len(_stream_ids(texts, tokenizer)) - 1
    steps = total // batch_size
    return {"batches": -(-steps // bptt_length), "tokens": steps * batch_size,
            "dropped_tokens": total - steps * batch_size, "padding_fraction": 0.0}


def _stream_ids(texts, tokenizer: Tokenizer) -> tf.Tensor:
    pieces = [tf.constant([END_ID], tf.int32)]
    for start in range(0, len(texts), 4096):
        ragged = tokenizer.tokenize_ragged(tf.constant(texts[start:start + 4096], tf.string))
        pieces.append(lm_shift(ragged)[1].flat_values)  # y + </s> per text
    return tf.concat(pieces, axis=0)


def _distributable(dataset: tf.data.Dataset) -> tf.data.Dataset:
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
        # target_in_ids / input_ids pad where target_out does; a label is not a sequence
        sequences = [inputs["source_ids"]] if "source_ids" in inputs else []
        sequences += [target_out] if target_out.shape.rank == 2 else []
        for ids in sequences:
            padded += int(tf.reduce_sum(tf.cast(ids == PAD_ID, tf.int64)))
            total += int(tf.size(ids, out_type=tf.int64))
    return {"batches": batches, "padding_fraction": padded / total if total else 0.0}
