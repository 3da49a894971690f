"""(source, target) string pairs → padded, length-bucketed id batches.

What a batch holds is the task's `Examples` (`s2s_keras.tasks`); for seq2seq (`TeacherForcing`)
each element is `({"source_ids": (batch, S), "target_in_ids": (batch, T)}, target_out_ids
(batch, T))` with `target_in = <s> + y` and `target_out = y + </s>` (the teacher-forcing shift),
0 = padding. (Contiguous text for truncated BPTT: `tasks.lm.make_stream_dataset`.)
`TrainingData` is what a task hands the fit loop: the per-epoch stream, the validation batches,
the steps per epoch and the statistics of the data preparation (`bucketed_training_data`).
Pairs are tokenized once (when the dataset is made), shuffled with a seed, grouped into buckets
of similar length (`bucket_width` tokens wide) so that little of each batch is padding, cut into
batches whose order is shuffled too — all arranged per batch, with a few tensor ops per epoch
rather than tf.data's per-example ops (for 36k CMUdict pairs, 0.1 CPU seconds an epoch instead
of 1.7, beside a ~5 s epoch of the `lstm` network on 2 cores) — then prefetched. A streamed
training split (`pipelines.corpus.PairStream`, `data.streaming`) is read from its files on
every pass instead: tokenized as it is read, shuffled within a window of `shuffle_buffer`
examples.
"""

from __future__ import annotations

import bisect
import collections
import collections.abc
import dataclasses
import itertools
import typing

import keras
import numpy as np
import tensorflow as tf

from s2s_keras.text import END_ID, PAD_ID, START_ID, Tokenizer


def teacher_forcing_shift(target_ids: tf.RaggedTensor):
    """Ragged `y` → `(<s> + y, y + </s>)`: decoder inputs and the tokens they must predict."""
    rows = target_ids.nrows()
    start = tf.RaggedTensor.from_tensor(tf.fill([rows, 1], START_ID))
    end = tf.RaggedTensor.from_tensor(tf.fill([rows, 1], END_ID))
    return tf.concat([start, target_ids], axis=1), tf.concat([target_ids, end], axis=1)


class TeacherForcing:
    """Seq2seq examples (see `tasks.base.Examples`): ragged `(source_ids, target_in_ids,
    target_out_ids)` per batch of strings."""

    counted = (0, 2)  # target_in pads where target_out does

    def __init__(self, source_tokenizer: Tokenizer, target_tokenizer: Tokenizer):
        self.source_tokenizer = source_tokenizer
        self.target_tokenizer = target_tokenizer

    def encode(self, sources, targets):
        target_in, target_out = teacher_forcing_shift(
            self.target_tokenizer.tokenize_ragged(targets)
        )
        return self.source_tokenizer.tokenize_ragged(sources), target_in, target_out

    def to_model(self, source, target_in, target_out):
        return {"source_ids": source, "target_in_ids": target_in}, target_out


def teacher_forcing_lengths(source_lengths, target_lengths) -> np.ndarray:
    """Bucketing lengths of seq2seq pairs: `max(source tokens, target tokens + 1)`."""
    return np.maximum(np.asarray(source_lengths), np.asarray(target_lengths) + 1)


STRING_BATCH = 4096  # strings per tokenizer call: far cheaper than one string per call


def buckets(
    bucket_width: int, max_bucket_length: int, batch_size: int, batch_tokens: int = 0
) -> tuple:
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
            self.counts = tf.Variable(
                tf.zeros([epochs, 3], tf.int64), trainable=False, name="padding_counts"
            )

    def count(self, epoch, index, *sequences):
        """Adds the padding and size of batch `index` of `epoch`'s id tensors `sequences`."""
        padded = tf.add_n([tf.reduce_sum(tf.cast(ids == PAD_ID, tf.int64)) for ids in sequences])
        total = tf.add_n([tf.size(ids, out_type=tf.int64) for ids in sequences])
        epoch = tf.cast(epoch, tf.int64)

        def add():
            indices = tf.stack([tf.fill([3], epoch), tf.range(3, dtype=tf.int64)], axis=1)
            return self.counts.scatter_nd_add(indices, tf.stack([padded, total, 1])).read_value()[
                0, 0
            ]

        return tf.cond(
            tf.equal(index, self.counts[epoch, 2]), add, lambda: tf.constant(0, tf.int64)
        )

    def fraction(self, epoch: int) -> float:
        padded, total, _ = self.counts[epoch].numpy().tolist()
        return padded / total if total else 0.0


class PaddingFraction(keras.callbacks.Callback):
    """Writes the epoch's padding fraction (padding / all source and target positions of the
    batches trained on, from a `PaddingCounter`) into its logs as `padding_fraction`: callbacks
    after it (history.csv, TensorBoard, the run state's history) record it."""

    def __init__(self, counter: PaddingCounter):
        super().__init__()
        self.counter = counter

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["padding_fraction"] = self.counter.fraction(epoch)


def make_dataset(
    pairs,
    examples,
    batch_size: int,
    shuffle: bool,
    seed: int = 0,
    bucket_width: int = 2,
    max_bucket_length: int = 64,
    shuffle_buffer: int = 200_000,
    epoch_range: tuple[int, int] | None = None,
    batch_tokens: int = 0,
    padding: PaddingCounter | None = None,
) -> tf.data.Dataset:
    """Batches of one pass over `pairs` (reshuffled each time it is iterated), or with
    `epoch_range=(first, stop)` the batches of epochs `first .. stop-1` one after the other, where
    epoch e's order is a function of `(seed, e)` alone: a run resumed at epoch e (plus `skip`
    of the steps already done) sees exactly the batches an uninterrupted run would.

    `pairs` is a list, or any other re-iterable of pairs (a `pipelines.corpus.PairStream`): that
    one is read anew each pass, in order, through a bounded shuffle window; nothing is cached.

    `batch_tokens > 0` sizes each length bucket's batches to about that many padded tokens
    (`batch_tokens // bucket length`, at least 1) instead of `batch_size` examples.
    `padding` (with `epoch_range`) counts each epoch's padding (see `PaddingCounter`).

    `examples` (a task's `Examples`, e.g. `TeacherForcing`) turns strings into model examples;
    tokenization, bucketing and batching are the same for every task."""
    in_memory = isinstance(pairs, collections.abc.Sequence)
    if in_memory and not pairs:
        raise ValueError("make_dataset: no pairs (is the split empty?)")

    boundaries, bucket_batch_sizes = buckets(
        bucket_width, max_bucket_length, batch_size, batch_tokens
    )
    if in_memory:
        batched = _table_batches(_encoded_table(pairs, examples), boundaries, bucket_batch_sizes)
    else:
        batched = _streamed_batches(pairs, examples, boundaries, bucket_batch_sizes, shuffle_buffer)

    def arrange(epoch, epoch_seed, reshuffle: bool):
        dataset = batched(epoch_seed, shuffle, reshuffle)
        if padding is None:
            return dataset.map(examples.to_model)

        def counted(index, batch):
            parts = [batch[i] for i in examples.counted]
            with tf.control_dependencies([padding.count(epoch, index, *parts)]):
                return examples.to_model(*(tf.identity(ids) for ids in batch))

        return dataset.enumerate().map(counted)

    if epoch_range is None:
        dataset = arrange(0, seed, reshuffle=True)
    else:
        first, stop = epoch_range
        dataset = tf.data.Dataset.range(first, stop).flat_map(
            lambda epoch: arrange(epoch, tf.cast(seed, tf.int64) + 7919 * epoch, reshuffle=False)
        )
    return distributable(dataset)


def _encoded_table(pairs, examples) -> tuple:
    """Every pair of a list encoded once (`examples.encode`, `STRING_BATCH` strings a call): the
    components of all examples, a ragged (examples, None) tensor per sequence, a dense
    (examples,) one per label."""
    parts = [
        examples.encode(tf.constant(sources, tf.string), tf.constant(targets, tf.string))
        for sources, targets in string_batches(pairs)
    ]
    return tuple(tf.concat(list(component), axis=0) for component in zip(*parts))


def _table_batches(table: tuple, boundaries: list, bucket_batch_sizes: list):
    """`batched(epoch_seed, shuffle, reshuffle)` → the dataset of one epoch's padded batches of
    an encoded table, arranged per batch rather than per example (see the module docstring): the
    examples in a seeded random order, grouped by length bucket (a bucket's examples in that
    order), cut into the bucket's batch size (its last batch may be smaller), and the batches in
    a seeded random order; without `shuffle`, in table order, bucket after bucket. Each batch
    gathers its rows and pads each sequence to its longest (`PAD_ID`)."""
    sequences = [part for part in table if isinstance(part, tf.RaggedTensor)]
    length = tf.reduce_max(tf.stack([part.row_lengths() for part in sequences]), axis=0)
    bucket = tf.searchsorted(
        tf.constant(boundaries, tf.int64), tf.cast(length, tf.int64), side="right"
    )
    bucket = tf.cast(bucket, tf.int32)
    sizes = tf.constant(bucket_batch_sizes, tf.int32)
    count = tf.shape(length, out_type=tf.int32)[0]

    def shuffled(n, seed):
        return tf.random.experimental.stateless_shuffle(tf.range(n), tf.stack([seed, 0]))

    def plan(epoch_seed, shuffle):
        order = shuffled(count, epoch_seed) if shuffle else tf.range(count)
        grouped = tf.argsort(tf.gather(bucket, order), stable=True)
        order = tf.gather(order, grouped)
        of = tf.gather(bucket, order)
        per_bucket = tf.math.bincount(of, minlength=len(bucket_batch_sizes), dtype=tf.int32)
        first = tf.cumsum(per_bucket, exclusive=True)
        batches_per_bucket = (per_bucket + sizes - 1) // sizes
        first_batch = tf.cumsum(batches_per_bucket, exclusive=True)
        position = tf.range(count) - tf.gather(first, of)
        batch = tf.gather(first_batch, of) + position // tf.gather(sizes, of)
        total = tf.reduce_sum(batches_per_bucket)
        rows = tf.RaggedTensor.from_value_rowids(order, batch, nrows=total)
        if shuffle:
            rows = tf.gather(rows, shuffled(total, epoch_seed + 1))
        return rows

    def gather(rows):
        return tuple(
            tf.gather(part, rows).to_tensor(PAD_ID)
            if isinstance(part, tf.RaggedTensor)
            else tf.gather(part, rows)
            for part in table
        )

    def batched(epoch_seed, shuffle: bool, reshuffle: bool):
        if reshuffle:  # each pass draws its order's seed from a seeded stream of seeds
            seeds = tf.data.Dataset.random(seed=epoch_seed, rerandomize_each_iteration=True)
            seeds = seeds.take(1)
        else:
            seeds = tf.data.Dataset.from_tensors(tf.cast(epoch_seed, tf.int64))
        rows = seeds.map(lambda seed: plan(seed, shuffle))
        return rows.flat_map(tf.data.Dataset.from_tensor_slices).map(gather)

    return batched


def _streamed_batches(pairs, examples, boundaries, bucket_batch_sizes, shuffle_buffer: int):
    """`_table_batches`' `batched` for pairs read anew each pass (a `PairStream`): tokenized as
    read, shuffled within a window of `shuffle_buffer` examples, grouped by tf.data's
    `bucket_by_sequence_length`, the batches mixed within a window of 64."""
    strings = tf.data.Dataset.from_generator(
        lambda: string_batches(pairs), output_signature=(tf.TensorSpec([None], tf.string),) * 2
    )

    def densify(*ragged):
        # After unbatch each element is a rank-0-ragged tensor; padded_batch wants plain tensors.
        return tuple(
            tensor.to_tensor() if isinstance(tensor, tf.RaggedTensor) else tensor
            for tensor in ragged
        )

    encoded = strings.map(examples.encode, num_parallel_calls=tf.data.AUTOTUNE)
    encoded = encoded.unbatch().map(densify)

    def length(*example):
        # the longest sequence of the example (a label is a scalar: not a sequence)
        return tf.reduce_max(
            tf.stack([tf.shape(part)[0] for part in example if part.shape.rank == 1])
        )

    def batched(epoch_seed, shuffle: bool, reshuffle: bool):
        dataset = encoded
        if shuffle:
            dataset = dataset.shuffle(
                shuffle_buffer, seed=epoch_seed, reshuffle_each_iteration=reshuffle
            )
        dataset = dataset.bucket_by_sequence_length(
            element_length_func=length,
            bucket_boundaries=boundaries,
            bucket_batch_sizes=bucket_batch_sizes,
            padding_values=tuple(PAD_ID for _ in encoded.element_spec),
        )
        if shuffle:
            # Buckets fill at different rates; mixing whole batches keeps lengths from arriving
            # in runs.
            dataset = dataset.shuffle(64, seed=epoch_seed + 1, reshuffle_each_iteration=reshuffle)
        return dataset

    return batched


def lm_shift(ids: tf.RaggedTensor):
    """Ragged sentences `y` → `(</s> + y, y + </s>)`: a language model reads the end token
    before a sentence (as in contiguous text, where it ends the previous one)."""
    rows = ids.nrows()
    end = tf.RaggedTensor.from_tensor(tf.fill([rows, 1], END_ID))
    return tf.concat([end, ids], axis=1), tf.concat([ids, end], axis=1)


def distributable(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """`dataset`, sharded by element under multi-worker training, prefetched."""
    # Multi-worker training shards by element (each worker takes its part of every global
    # batch), not by file: in memory there are no files, and a stream's shards are read in order.
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    # No autotuning model: deleting an iterator waits for its tuning thread, which sleeps
    # through periods doubling up to a minute and often wakes only at the period's end — at the
    # end of every `fit`, `evaluate` and validation pass, seconds of idle time. Without it,
    # AUTOTUNE parallel maps run one call per core and the prefetch buffer still grows on demand.
    options.autotune.enabled = False
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
        # target_in_ids / input_ids pad where target_out does; a label is not a sequence
        sequences = [inputs["source_ids"]] if "source_ids" in inputs else []
        sequences += [target_out] if target_out.shape.rank == 2 else []
        for ids in sequences:
            padded += int(tf.reduce_sum(tf.cast(ids == PAD_ID, tf.int64)))
            total += int(tf.size(ids, out_type=tf.int64))
    return {"batches": batches, "padding_fraction": padded / total if total else 0.0}


@dataclasses.dataclass
class TrainingData:
    """What the fit loop trains on, from a task (`Task.datasets`).

    Attributes:
        batches: steps per epoch (the same every epoch).
        valid: the validation batches (with a known length), or None without a valid split.
        make: `make(pairs, shuffle, epoch_range, padding) -> tf.data.Dataset` of any split.
        corpus: the corpus whose training split `epochs` reads.
        statistics: what the data preparation reports in summary.json (besides padding).
    """

    batches: int
    valid: tf.data.Dataset | None
    make: typing.Callable
    corpus: typing.Any
    statistics: dict = dataclasses.field(default_factory=dict)

    def epochs(self, first: int, stop: int, padding: PaddingCounter | None = None):
        """The training batches of epochs `first .. stop-1` (see `make_dataset`)."""
        return self.make(self.corpus.train, True, (first, stop), padding)

    def split(self, pairs) -> tf.data.Dataset:
        """One unshuffled pass over `pairs` (evaluation)."""
        return self.make(pairs, False, None, None)


def length_histogram(lengths_of, source_tokenizer, target_tokenizer, pairs) -> collections.Counter:
    """`{bucketing length: pairs}` of `pairs`, measured with the tokenizers (one pass);
    `lengths_of(source lengths, target lengths or None)` gives a batch's bucketing lengths."""
    lengths = collections.Counter()
    for sources, targets in string_batches(pairs):
        source_lengths = source_tokenizer.tokenize_ragged(sources).row_lengths()
        target_lengths = (
            target_tokenizer.tokenize_ragged(targets).row_lengths() if target_tokenizer else None
        )
        lengths.update(lengths_of(source_lengths, target_lengths).tolist())
    return lengths


def bucketed_training_data(data, batch_size: int, corpus, examples, lengths) -> TrainingData:
    """Length-bucketed batches of `examples` (`data` a `DataConfig`); `lengths`: the training
    split's bucketing-length histogram (`length_histogram`), which gives the steps per epoch."""
    bucketing = buckets(data.bucket_width, data.max_bucket_length, batch_size, data.batch_tokens)

    def make(pairs, shuffle, epoch_range, padding):
        return make_dataset(
            pairs,
            examples,
            batch_size,
            shuffle=shuffle,
            seed=data.seed,
            bucket_width=data.bucket_width,
            max_bucket_length=data.max_bucket_length,
            shuffle_buffer=data.shuffle_buffer,
            batch_tokens=data.batch_tokens,
            epoch_range=epoch_range,
            padding=padding,
        )

    valid = None
    if corpus.valid:
        valid = make(corpus.valid, False, None, None)
        valid = valid.apply(
            tf.data.experimental.assert_cardinality(batch_statistics(valid)["batches"])
        )
    return TrainingData(count_batches(lengths, *bucketing), valid, make, corpus)
