"""The LSTM's sequence loop and decoding step with the weight casts and the input projection
hoisted out of the time loop; the same gate equations as `keras.layers.LSTMCell` (gate order
i, f, c̃, o; `z = x W_x + h W_h + b`, `c_t = f⊙c_{t-1} + i⊙tanh(z_c)`, `h_t = o⊙tanh(c_t)`).

Why: Keras' generic RNN loop runs the cell once per time step, and under `mixed_bfloat16` every
step re-reads — re-casts to bf16 — the kernels (and, in the backward pass, casts and sums a
kernel-sized gradient per step); at batch 1 these casts cost more than the matmuls. Here:
  - the weights are cast to the compute dtype once per call;
  - `x W_x + b` of all time steps is one matmul before the loop;
  - the backward pass is written out (`tf.custom_gradient`): per step only `dz W_hᵀ`; the
    recurrent kernel's gradient is one matmul over all steps after the loop;
  - matmuls run in the compute dtype (bf16 under `mixed_bfloat16`), the gate arithmetic in
    float32 (bf16 elementwise ops are emulated on CPUs); h and c are carried in the compute
    dtype (rounded after every step) in both the sequence loop and the decoding step, so that
    step-by-step decoding reproduces the teacher-forced pass;
  - in training, each step's element-wise work forward and backward is one kernel of
    `lstm_kernels` (C++, built by `make install`) instead of a dozen and two dozen ops, with the
    same numbers; where it can (bf16 on a CPU with AMX tiles or AVX-512-BF16, float32 on one
    with AVX2 and FMA) a layer runs its whole loop, recurrent matmuls included, as one op
    forward and one backward. Inference and exports trace TensorFlow's ops only, unless
    traced within `fused_inference` (an opt-in export for Python runtimes on this kind of CPU).
Masked steps keep the previous state and output the previous output (zeros before the first
real step), as Keras' loop does; `go_backwards` reverses time (and the mask) first, as Keras.

The first layer of a stack reads an embedding of token ids: its `x W_x + b` is a row of
`E W_x + b`, a table of the vocabulary's size (`input_table`) gathered by token id. A decoding
step makes the table once per decoding call; a pass called with `token_ids` and the
`embedding` (`LSTM.call`, `Bidirectional.call`) makes it once per batch, so that for a small
vocabulary (G2P: ~30 letters, ~70 phonemes) neither `x W_x` nor its two gradients (`dz W_xᵀ`,
`xᵀ dz`, matmuls over every token of the batch) are computed: the gradient reaches the table
as a sum of `dz` per id (for a small table one matmul, `one_hot(ids)ᵀ dz`: `gather_table`),
then `E` and `W_x` through a matmul of the table's size. In
inference a batch's ids are sorted and made time major before the gather, which then gives
the packed loop its inputs in one copy; a single request's span loop multiplies (a table
costs more than one word's rows). The embedding and the LSTM stay separate layers with their
own weights.
"""

from __future__ import annotations

import contextlib

import keras
import tensorflow as tf

from s2s_keras.layers import lstm_kernels


def has_lstm_equations(cell) -> bool:
    """Whether an `LSTMCell` computes exactly `_gates` (tanh / sigmoid, with a bias): what
    `lstm_step` and `lstm_sequence` may stand in for."""
    return (
        isinstance(cell, keras.layers.LSTMCell)
        and cell.use_bias
        and cell.activation is keras.activations.tanh
        and cell.recurrent_activation is keras.activations.sigmoid
    )


def lstm_weights(cell) -> tuple:
    """`(W_x, W_h, b)` of an `LSTMCell`, read once: the kernels in the cell's compute dtype
    (one cast each, outside any time loop), the bias in float32."""
    dtype = cell.compute_dtype
    return (
        tf.cast(tf.convert_to_tensor(cell.kernel.value), dtype),
        tf.cast(tf.convert_to_tensor(cell.recurrent_kernel.value), dtype),
        tf.cast(tf.convert_to_tensor(cell.bias.value), tf.float32),
    )


def _gates(z, c) -> tuple:
    """float32 pre-activations `z (batch, 4·units)` and previous cell state → `(h, c, gates)`."""
    z_i, z_f, z_g, z_o = tf.split(z, 4, axis=-1)
    i, f, g, o = tf.sigmoid(z_i), tf.sigmoid(z_f), tf.tanh(z_g), tf.sigmoid(z_o)
    c = f * c + i * g
    return o * tf.tanh(c), c, (i, f, g, o)


# In decoding, an embedding of at most this many rows feeds the first LSTM layer through
# `input_table` (a choice of algorithm, not of result: both compute `x W_x + b`). Above it —
# word vocabularies of 10k+ rows — tabulating costs more than the steps' matmuls it saves.
TABLE_MAX_ROWS = 1024


def project_inputs(x, weights):
    """`x W_x + b` in float32 for `x (..., in)` (compute dtype matmul)."""
    kernel, _, bias = weights
    if x.shape.rank == 2:  # a decoding step's: no reshapes (their shape ops run every step)
        return tf.cast(tf.matmul(tf.cast(x, kernel.dtype), kernel), tf.float32) + bias
    flat = tf.reshape(tf.cast(x, kernel.dtype), [-1, tf.shape(x)[-1]])
    projected = tf.cast(tf.matmul(flat, kernel), tf.float32) + bias
    return tf.reshape(projected, tf.concat([tf.shape(x)[:-1], [tf.shape(kernel)[1]]], 0))


def input_table(embeddings, weights):
    """`(rows, 4·units)` float32: `project_inputs` of every row of an embedding matrix; a token's
    projected input is its row (`tf.gather(table, ids)`)."""
    return project_inputs(embeddings, weights)


def lstm_step(x, h, c, weights) -> tuple:
    """One step for `x (batch, in)`, `h`, `c (batch, units)` in the compute dtype; returns
    `(h, c)` in the same dtype. `weights` from `lstm_weights`."""
    return lstm_projected_step(project_inputs(x, weights), h, c, weights)


def lstm_projected_step(projected, h, c, weights) -> tuple:
    """`lstm_step` from the projected input `x W_x + b (batch, 4·units)` float32 (within
    `fused_inference`, its element-wise work one kernel)."""
    _, recurrent_kernel, _ = weights
    dtype = h.dtype
    kernels = lstm_kernels.load() if _loops["inference_kernels"] else None
    if kernels is not None:  # the same numbers in one op
        recurrent = tf.matmul(tf.cast(h, recurrent_kernel.dtype), recurrent_kernel)
        rows = tf.ones([1, tf.shape(h)[0]], tf.bool)
        state = [tf.cast(s, recurrent_kernel.dtype) for s in (h, c)]
        h, c, _ = kernels.s2s_lstm_gates(0, projected[None], recurrent, *state, rows)
        return tf.cast(h, dtype), tf.cast(c, dtype)
    z = projected + tf.cast(
        tf.matmul(tf.cast(h, recurrent_kernel.dtype), recurrent_kernel), tf.float32
    )
    h, c, _ = _gates(z, tf.cast(c, tf.float32))
    return tf.cast(h, dtype), tf.cast(c, dtype)


def lstm_sequence(
    x,
    h0,
    c0,
    mask,
    weights,
    go_backwards: bool = False,
    zero_masked_outputs: bool = False,
    training: bool = True,
) -> tuple:
    """`x (batch, T, in)`, initial `h0, c0 (batch, units)` (compute dtype), `mask (batch, T)`
    bool or None → `(outputs (batch, T, units), h, c)` in the compute dtype of `h0`.
    `zero_masked_outputs`: masked steps output zeros (Keras' `zero_output_for_mask`, which
    `Bidirectional` sets) instead of the previous output. `training=False` with a mask whose
    rows share one span of real steps (a single request) runs those steps alone, unmasked
    (`_span_recurrence`); with another mask padded on one side the packed loop
    (`_packed_recurrence`): the same numbers, each step on the rows real at that step only.
    Their gradients come from TensorFlow's own differentiation."""
    return lstm_projected_sequence(
        project_inputs(x, weights),
        h0,
        c0,
        mask,
        weights,
        go_backwards,
        zero_masked_outputs,
        training,
    )


def lstm_projected_sequence(
    projected,
    h0,
    c0,
    mask,
    weights,
    go_backwards: bool = False,
    zero_masked_outputs: bool = False,
    training: bool = True,
) -> tuple:
    """`lstm_sequence` from the projected inputs `x W_x + b (batch, T, 4·units)` float32."""
    _, recurrent_kernel, _ = weights
    if not training:
        return lstm_inference_sequence(
            projected,
            tf.identity,
            h0,
            c0,
            mask,
            recurrent_kernel,
            go_backwards,
            zero_masked_outputs,
        )
    if go_backwards:
        projected = tf.reverse(projected, [1])
        mask = None if mask is None else tf.reverse(mask, [1])
    dtype = recurrent_kernel.dtype
    h0, c0 = tf.cast(h0, dtype), tf.cast(c0, dtype)
    if _whole_sequence_runs(recurrent_kernel):
        outputs, h, c = _whole_sequence(projected, h0, c0, mask, recurrent_kernel)
    else:
        keep = None if mask is None else tf.transpose(mask)[:, :, None]  # (T, batch, 1) bool
        h_seq, h, c = _recurrence(
            tf.transpose(projected, [1, 0, 2]), h0, c0, keep, recurrent_kernel, fused=True
        )
        outputs = tf.transpose(h_seq, [1, 0, 2])
    return _masked_outputs(outputs, mask, zero_masked_outputs), h, c


def lstm_inference_sequence(
    inputs,
    project,
    h0,
    c0,
    mask,
    recurrent_kernel,
    go_backwards: bool = False,
    zero_masked_outputs: bool = False,
    batched=None,
) -> tuple:
    """`lstm_projected_sequence(training=False)` from unprojected `inputs (batch, T, ...)` and
    `project(inputs') -> (..., 4·units)` float32, the inputs' `x W_x + b` for any reordering
    `inputs'` of their rows and steps (`project_inputs` of `x (batch, T, in)`, or the identity
    of projected inputs). Inputs are reversed, made time major and sorted before they are
    projected, being narrower than their projections. `batched`: another `(inputs, project)`
    pair for the loop over batches of mixed lengths, such as token ids `(batch, T)` gathering
    rows of `input_table` (made in that loop alone: for a single word the table's matmul costs
    more than the word's own).

    A mask whose rows share one span of real steps (a single request) runs those steps alone,
    unmasked (`_span_recurrence`); another mask padded on one side the packed loop
    (`_packed_recurrence`), each step on the rows real at that step only; other masks
    (and every mask `without_packing`) the masked loop. Their gradients come from TensorFlow's
    own differentiation. Within `fused_inference`, training's loop instead (the kernels), on
    inputs projected at their real steps alone (`_project_real_steps`)."""
    if _loops["inference_kernels"]:
        if batched is not None:  # a table's rows: gathering padding costs next to nothing
            projected = batched[1](batched[0])
        elif mask is None or project is tf.identity:  # nothing to save
            projected = project(inputs)
        else:
            projected = _project_real_steps(inputs, project, mask)
        return lstm_projected_sequence(
            projected,
            h0,
            c0,
            mask,
            (None, recurrent_kernel, None),
            go_backwards,
            zero_masked_outputs,
        )
    if go_backwards:
        inputs = tf.reverse(inputs, [1])
        mask = None if mask is None else tf.reverse(mask, [1])
        batched = batched and (tf.reverse(batched[0], [1]), batched[1])
    dtype = recurrent_kernel.dtype
    h0, c0 = tf.cast(h0, dtype), tf.cast(c0, dtype)
    time_major = _time_major(inputs)

    def masked():
        keep = None if mask is None else tf.transpose(mask)[:, :, None]  # (T, batch, 1) bool
        return _recurrence(project(time_major), h0, c0, keep, recurrent_kernel)

    if mask is None or not _loops["packing"]:
        h_seq, h, c = masked()
    else:
        shared = tf.reduce_all(mask, axis=0)  # the steps real in every row
        shared_steps = tf.cast(shared, tf.int32)
        start = tf.argmax(shared_steps, output_type=tf.int32)
        count = tf.reduce_sum(shared_steps)
        time = tf.range(tf.shape(mask)[1])
        span = (time >= start) & (time < start + count)
        one_span = (count > 0) & tf.reduce_all(tf.equal(mask, span[None, :]))

        def packed_or_masked():  # masks padded on both sides cannot pack
            lengths = tf.reduce_sum(tf.cast(mask, tf.int32), axis=1)
            right = tf.sequence_mask(lengths, tf.shape(mask)[1])
            right_padded = tf.reduce_all(tf.equal(mask, right))
            left_padded = tf.reduce_all(tf.equal(mask, tf.reverse(right, [1])))
            batched_time_major, batched_project = (
                (time_major, project) if batched is None else (_time_major(batched[0]), batched[1])
            )
            return tf.cond(
                right_padded | left_padded,
                lambda: _packed_recurrence(
                    batched_time_major,
                    h0,
                    c0,
                    lengths,
                    recurrent_kernel,
                    batched_project,
                    left_padded,
                ),
                masked,
            )

        h_seq, h, c = tf.cond(
            one_span,
            lambda: _span_recurrence(time_major, h0, c0, start, count, recurrent_kernel, project),
            packed_or_masked,
        )
    outputs = tf.transpose(h_seq, [1, 0, 2])
    return _masked_outputs(outputs, mask, zero_masked_outputs), h, c


def _project_real_steps(inputs, project, mask):
    """`project(inputs)` at the steps `mask (batch, T)` keeps, zeros at the others — which the
    whole-sequence op never reads (a masked step reads no input) — so that a batch padded to
    its longest row pays the input matmul of its real steps only."""
    real = tf.where(mask)  # (n, 2): row, step
    projected = project(tf.gather_nd(inputs, real))  # (n, 4·units)
    shape = tf.concat([tf.shape(mask, tf.int64), tf.shape(projected, tf.int64)[1:]], 0)
    return tf.scatter_nd(real, projected, shape)


def _time_major(inputs):
    """`(batch, T, ...)` → `(T, batch, ...)`."""
    return tf.transpose(inputs, [1, 0, *range(2, inputs.shape.rank)])


def _masked_outputs(outputs, mask, zero_masked_outputs: bool):
    """Keras' outputs at masked steps: zeros (`zero_masked_outputs`), or (default) the previous
    output — zeros before the first real step, then the carried h."""
    if mask is None:
        return outputs
    shown = mask if zero_masked_outputs else tf.cumsum(tf.cast(mask, tf.int32), axis=1) > 0
    return tf.where(shown[:, :, None], outputs, tf.zeros([], outputs.dtype))


# Choices of loop made when a function is traced, all but the first on unless turned off
# around the trace: inference runs TensorFlow's ops unless `fused_inference`, packs rows padded
# on one side (`_packed_recurrence`), training runs the fused kernels, where it can the
# whole-sequence ones, gathers token tables where it is given token ids, and takes a small
# table's gradient as a one-hot matmul (`gather_table`).
_loops = {
    "inference_kernels": False,
    "packing": True,
    "fusing": True,
    "sequence": True,
    "tables": True,
    "one_hot_gradient": True,
}


@contextlib.contextmanager
def _choosing(choice: str, value: bool):
    before, _loops[choice] = _loops[choice], value
    try:
        yield
    finally:
        _loops[choice] = before


def _without(choice: str):
    return _choosing(choice, False)


def fused_inference():
    """Inference loops traced inside run on the kernels as training's do (where their
    libraries load): an encoder's pass is training's loop — on AMX, AVX-512-BF16 or AVX2 one op
    for the whole sequence, whose matmuls may round differently from TensorFlow's — and a
    decoding step's element-wise work one `S2sLstmGates` (the same numbers). What
    `export(fused=True)` traces; the graph then needs the libraries (`lstm_kernels.register`)."""
    return _choosing("inference_kernels", True)


def without_packing():
    """Functions traced inside run the plain loop in inference too: one loop, no `tf.cond`
    between two (whose both branches would hold the weights) — what the LiteRT and ONNX
    exports trace, for their converters and file sizes."""
    return _without("packing")


def without_fusing():
    """Training loops traced inside run TensorFlow's ops even with the fused kernels loaded:
    the reference the kernels are tested and timed against."""
    return _without("fusing")


def per_step_kernels():
    """Training loops traced inside run the per-step fused kernels in a TensorFlow loop even
    where the whole-sequence ops could run: their reference in tests and A/B timings."""
    return _without("sequence")


def without_token_tables():
    """Loops traced inside multiply their embedded inputs even when called with token ids: the
    reference the token tables are tested and timed against."""
    return _without("tables")


def without_one_hot_gradient():
    """Token tables gathered in training functions traced inside take TensorFlow's gradient of
    `tf.gather` (a sum per id) whatever their size: `gather_table`'s reference in tests and
    A/B timings."""
    return _without("one_hot_gradient")


# A token table of at most this many rows gets its training gradient as one matmul in the
# compute dtype, `one_hot(ids)ᵀ dz`: TensorFlow's gradient of `tf.gather` sums `dz` per id with
# `UnsortedSegmentSum`, a scatter that added about a billion floats a second on one thread
# (train_ab.py --lever one_hot, G2P's tables of 33 and 43 rows). The matmul costs 2·rows
# multiply-adds per float; the bound is an estimate from those rates, not a measured crossover.
ONE_HOT_MAX_ROWS = 128


def gather_table(table, ids, dtype):
    """`tf.gather(table, ids)` for a `(rows, width)` float32 token table; for at most
    `ONE_HOT_MAX_ROWS` rows, its gradient `one_hot(ids)ᵀ dz` is one matmul in `dtype` (the
    compute dtype: `dz` and the summed rows are rounded to it, as the recurrent kernel's
    gradient is) instead of a sum per id."""
    rows = table.shape[0]
    if not (_loops["one_hot_gradient"] and rows is not None and rows <= ONE_HOT_MAX_ROWS):
        return tf.gather(table, ids)
    flat_ids = tf.reshape(ids, [-1])

    @tf.custom_gradient
    def run(table):
        def gradient(d_rows):
            d_flat = tf.cast(tf.reshape(d_rows, [-1, tf.shape(d_rows)[-1]]), dtype)
            one_hot = tf.one_hot(flat_ids, rows, dtype=dtype)
            return tf.cast(tf.matmul(one_hot, d_flat, transpose_a=True), tf.float32)

        return tf.gather(table, ids), gradient

    return run(table)


def _whole_sequence_runs(recurrent_kernel) -> bool:
    """Whether a training loop of this kernel runs as `_whole_sequence`: whole-sequence ops for
    its dtype run here (`lstm_kernels.sequence_ops`: bf16 on a CPU with AMX tiles, or with
    AVX-512-BF16, float32 on one with AVX2 and FMA) and take its units (a multiple of 32 on
    AMX, else of 16)."""
    if not (_loops["fusing"] and _loops["sequence"]):
        return False
    ops = lstm_kernels.sequence_ops(recurrent_kernel.dtype)
    return ops is not None and recurrent_kernel.shape[0] % ops.units_multiple == 0


def _whole_sequence(projected, h0, c0, mask, recurrent_kernel):
    """`_recurrence(fused=True)` as one op forward and one backward (`lstm_sequence.h`), batch
    major: `projected (batch, T, 4·units)` float32, `mask (batch, T)` bool or None →
    `(outputs (batch, T, units), h, c)` in the compute dtype, outputs unmasked. Within
    `fused_inference`, the forward op alone, keeping nothing for a backward pass."""
    ops = lstm_kernels.sequence_ops(recurrent_kernel.dtype)
    keep = tf.ones(tf.shape(projected)[:2], tf.bool) if mask is None else mask
    if _loops["inference_kernels"]:
        h_seq, _, _, h, c = ops.forward(projected, h0, c0, recurrent_kernel, keep, inference=True)
        return h_seq, h, c

    @tf.custom_gradient
    def run(projected, h0, c0, recurrent_kernel):
        h_seq, c_prev, gate_seq, h, c = ops.forward(projected, h0, c0, recurrent_kernel, keep)

        def gradient(d_h_seq, d_h, d_c):
            d_z_seq, d_h0, d_c0 = ops.backward(
                gate_seq, c_prev, d_h_seq, keep, d_h, d_c, recurrent_kernel
            )
            h_prev = tf.concat([h0[:, None], h_seq[:, :-1]], 1)
            return d_z_seq, d_h0, d_c0, _recurrent_gradient(h_prev, d_z_seq)

        return (h_seq, h, c), gradient

    return run(projected, h0, c0, recurrent_kernel)


def _span_recurrence(time_major, h0, c0, start, count, recurrent_kernel, project):
    """`_recurrence`'s forward loop where every row is real over the same `count` (> 0) steps
    from `start` and padding elsewhere (one request, or a batch of one length): those steps
    alone projected (`project`, see `lstm_inference_sequence`), no masks, no packing. As the
    masked loop, `h_seq (T, batch, units)` holds h0 before the span and the last h after it."""
    dtype = recurrent_kernel.dtype
    projected = project(time_major[start : start + count])
    inputs = tf.TensorArray(tf.float32, size=count, element_shape=projected.shape[1:])
    inputs = inputs.unstack(projected)

    def body(t, h, c, h_seq):
        z = inputs.read(t) + tf.cast(tf.matmul(h, recurrent_kernel), tf.float32)
        h_new, c_new, _ = _gates(z, tf.cast(c, tf.float32))
        h_new, c_new = tf.cast(h_new, dtype), tf.cast(c_new, dtype)
        h_new.set_shape(h0.shape)  # no op: LiteRT lowers lists of static element shapes
        c_new.set_shape(c0.shape)
        return t + 1, h_new, c_new, h_seq.write(t, h_new)

    h_seq = tf.TensorArray(dtype, size=count, element_shape=h0.shape)
    _, h, c, h_seq = tf.while_loop(lambda t, *_: t < count, body, (tf.constant(0), h0, c0, h_seq))
    after = tf.shape(time_major)[0] - start - count
    return (
        tf.concat(
            [tf.tile(h0[None], [start, 1, 1]), h_seq.stack(), tf.tile(h[None], [after, 1, 1])], 0
        ),
        h,
        c,
    )


def _packed_recurrence(time_major, h0, c0, lengths, recurrent_kernel, project, left_padded):
    """`_recurrence`'s forward loop for rows of `lengths` padded on one side (right, or with
    `left_padded` left: a right-padded batch read backwards), as PyTorch's packed sequences:
    the rows sorted longest first (before `project`, see `lstm_inference_sequence`), step t
    multiplies only the rows real at t, a prefix of that order; the others carry their h and
    c. Returns `(h_seq (T, batch, units), h, c)` in the original row order."""
    dtype = recurrent_kernel.dtype
    order = tf.argsort(lengths, direction="DESCENDING", stable=True)
    sorted_lengths = tf.gather(lengths, order)
    projected = project(tf.gather(time_major, order, axis=1))
    h0, c0 = tf.gather(h0, order), tf.gather(c0, order)
    steps = tf.shape(projected)[0]

    def body(t, h, c, h_seq):
        # right padding: rows longer than t are real; left padding: those reaching back to t
        n = tf.reduce_sum(
            tf.cast(sorted_lengths > tf.where(left_padded, steps - 1 - t, t), tf.int32)
        )
        z = projected[t, :n] + tf.cast(tf.matmul(h[:n], recurrent_kernel), tf.float32)
        h_new, c_new, _ = _gates(z, tf.cast(c[:n], tf.float32))
        h_next = tf.concat([tf.cast(h_new, dtype), h[n:]], 0)
        c_next = tf.concat([tf.cast(c_new, dtype), c[n:]], 0)
        h_next.set_shape(h0.shape)  # all rows, as before the step (no op: LiteRT has none)
        c_next.set_shape(c0.shape)
        return t + 1, h_next, c_next, h_seq.write(t, h_next)

    # Element shapes as static as the inputs' let LiteRT's converter lower the lists.
    h_seq = tf.TensorArray(dtype, size=steps, element_shape=h0.shape)
    _, h, c, h_seq = tf.while_loop(lambda t, *_: t < steps, body, (tf.constant(0), h0, c0, h_seq))
    inverse = tf.math.invert_permutation(order)
    return tf.gather(h_seq.stack(), inverse, axis=1), tf.gather(h, inverse), tf.gather(c, inverse)


def _recurrence(projected, h0, c0, keep, recurrent_kernel, fused=False):
    """The time loop over `projected (T, batch, 4·units)` float32 with its hand-written backward
    pass. h and c are carried in the compute dtype (the kernel's), the gates computed in float32;
    `keep (T, batch, 1)` bool or None. `fused` (training only: a graph traced for inference or
    export must hold TensorFlow's ops alone): each step's element-wise work is one kernel of
    `lstm_kernels` when its library is loaded; else the same arithmetic in TensorFlow ops."""
    dtype = recurrent_kernel.dtype
    units = recurrent_kernel.shape[0]
    steps = tf.shape(projected)[0]
    kernels = lstm_kernels.load() if fused and _loops["fusing"] else None

    def array(dtype, width=units):  # static element shapes: LiteRT can lower the lists
        return tf.TensorArray(dtype, size=steps, element_shape=[h0.shape[0], width])

    @tf.custom_gradient
    def run(projected, h0, c0, recurrent_kernel):
        if kernels is not None:
            rows = tf.ones([steps, tf.shape(h0)[0]], tf.bool) if keep is None else keep[:, :, 0]

            def body(t, h, c, h_seq, c_seq, gate_seq):
                recurrent = tf.matmul(h, recurrent_kernel)
                h, c, gates = kernels.s2s_lstm_gates(t, projected, recurrent, h, c, rows)
                return t + 1, h, c, h_seq.write(t, h), c_seq.write(t, c), gate_seq.write(t, gates)

        else:

            def body(t, h, c, h_seq, c_seq, gate_seq):
                z = projected[t] + tf.cast(tf.matmul(h, recurrent_kernel), tf.float32)
                h_new, c_new, gates = _gates(z, tf.cast(c, tf.float32))
                h_new, c_new = tf.cast(h_new, dtype), tf.cast(c_new, dtype)
                if keep is not None:
                    h_new, c_new = tf.where(keep[t], h_new, h), tf.where(keep[t], c_new, c)
                return (
                    t + 1,
                    h_new,
                    c_new,
                    h_seq.write(t, h_new),
                    c_seq.write(t, c_new),
                    gate_seq.write(t, tf.concat(gates, axis=-1)),
                )

        _, h, c, h_seq, c_seq, gate_seq = tf.while_loop(
            lambda t, *_: t < steps,
            body,
            (tf.constant(0), h0, c0, array(dtype), array(dtype), array(tf.float32, 4 * units)),
        )
        h_seq, c_seq, gate_seq = h_seq.stack(), c_seq.stack(), gate_seq.stack()

        def gradient(d_h_seq, d_h, d_c):
            c_prev = tf.cast(tf.concat([c0[None], c_seq[:-1]], 0), tf.float32)
            d_h_seq = tf.cast(d_h_seq, tf.float32)
            transposed = tf.transpose(recurrent_kernel)
            d_z_seq = array(tf.float32, 4 * units)
            if kernels is not None:
                d_h0, d_c0, d_z_seq = _fused_backward(
                    kernels, gate_seq, c_prev, d_h_seq, rows, d_h, d_c, transposed, d_z_seq
                )
            else:
                d_h0, d_c0, d_z_seq = _backward(
                    gate_seq, c_prev, d_h_seq, keep, d_h, d_c, transposed, d_z_seq
                )
            h_prev = tf.concat([h0[None], h_seq[:-1]], 0)
            d_recurrent = _recurrent_gradient(h_prev, d_z_seq)
            return d_z_seq, tf.cast(d_h0, dtype), tf.cast(d_c0, dtype), d_recurrent

        return (h_seq, h, c), gradient

    return run(projected, h0, c0, recurrent_kernel)


def _recurrent_gradient(h_prev, d_z_seq):
    """The recurrent kernel's gradient, one matmul over all steps and rows: `Σ h_{t-1}ᵀ d_z_t`
    for `h_prev` (compute dtype) and `d_z_seq` (float32) in the same (steps, rows) order."""
    units = h_prev.shape[-1]
    return tf.matmul(
        tf.reshape(h_prev, [-1, units]),
        tf.cast(tf.reshape(d_z_seq, [-1, 4 * units]), h_prev.dtype),
        transpose_a=True,
    )


def _backward(gate_seq, c_prev, d_h_seq, keep, d_h, d_c, transposed, d_z_seq):
    """The backward loop in TensorFlow ops → `(d_h0, d_c0, d_z_seq)` float32, the steps'
    `d_z` written into the TensorArray `d_z_seq` and stacked."""
    steps = tf.shape(gate_seq)[0]
    dtype = transposed.dtype
    zero = tf.zeros([], tf.float32)

    def back(s, d_h, d_c, d_z_seq):
        t = steps - 1 - s
        d_h = d_h + d_h_seq[t]
        i, f, g, o = tf.split(gate_seq[t], 4, axis=-1)
        if keep is not None:  # a masked step passes the gradient through unchanged
            pass_h, pass_c = tf.where(keep[t], zero, d_h), tf.where(keep[t], zero, d_c)
            d_h, d_c = d_h - pass_h, d_c - pass_c
        tanh_c = tf.tanh(f * c_prev[t] + i * g)
        d_c = d_c + d_h * o * (1 - tanh_c * tanh_c)
        d_z = tf.concat(
            [
                d_c * g * i * (1 - i),
                d_c * c_prev[t] * f * (1 - f),
                d_c * i * (1 - g * g),
                d_h * tanh_c * o * (1 - o),
            ],
            axis=-1,
        )
        d_h = tf.cast(tf.matmul(tf.cast(d_z, dtype), transposed), tf.float32)
        d_c = d_c * f
        if keep is not None:
            d_h, d_c = d_h + pass_h, d_c + pass_c
        return s + 1, d_h, d_c, d_z_seq.write(t, d_z)

    _, d_h0, d_c0, d_z_seq = tf.while_loop(
        lambda s, *_: s < steps,
        back,
        (
            tf.constant(0),
            tf.cast(d_h, tf.float32),
            tf.cast(d_c, tf.float32),
            d_z_seq,
        ),
    )
    return d_h0, d_c0, d_z_seq.stack()


def _fused_backward(kernels, gate_seq, c_prev, d_h_seq, rows, d_h, d_c, transposed, d_z_seq):
    """`_backward` with one `S2sLstmGatesGrad` per step: it takes `d_z W_hᵀ` in the compute
    dtype and the masked rows' passed-through gradient separately, and adds them itself."""
    steps = tf.shape(gate_seq)[0]
    dtype = transposed.dtype

    def back(s, d_h_recurrent, d_h_pass, d_c, d_z_seq):
        t = steps - 1 - s
        d_z, d_c, d_h_pass = kernels.s2s_lstm_gates_grad(
            t, gate_seq, c_prev, d_h_seq, rows, d_h_recurrent, d_h_pass, d_c
        )
        d_h_recurrent = tf.matmul(tf.cast(d_z, dtype), transposed)
        return s + 1, d_h_recurrent, d_h_pass, d_c, d_z_seq.write(t, d_z)

    d_h = tf.cast(d_h, tf.float32)
    _, d_h_recurrent, d_h_pass, d_c0, d_z_seq = tf.while_loop(
        lambda s, *_: s < steps,
        back,
        (
            tf.constant(0),
            tf.zeros_like(d_h, dtype),
            d_h,
            tf.cast(d_c, tf.float32),
            d_z_seq,
        ),
    )
    return tf.cast(d_h_recurrent, tf.float32) + d_h_pass, d_c0, d_z_seq.stack()


def reads_token_table(layer, embedding) -> bool:
    """Whether `layer`, reading `embedding`'s output directly, may take its projected inputs
    from `input_table`: our LSTM with the plain gate equations and an embedding of at most
    `TABLE_MAX_ROWS` rows."""
    return (
        isinstance(layer, LSTM)
        and has_lstm_equations(layer.cell)
        and embedding.input_dim <= TABLE_MAX_ROWS
    )


@contextlib.contextmanager
def reading_tokens(layers, token_ids, embedding):
    """Within: the loops of `layers` (LSTMs reading `embedding`'s output of `token_ids`) gather
    their projected inputs from `input_table`. Nothing changes with `token_ids` None."""
    if token_ids is None:
        yield
        return
    if embedding is None:
        raise ValueError("token_ids needs the embedding that looked them up (embedding=...)")
    for layer in layers:
        if not reads_token_table(layer, embedding):
            raise ValueError(
                f"{layer.name}: token_ids are read by an LSTM with the plain equations under "
                f"an embedding of at most {TABLE_MAX_ROWS} rows (reads_token_table)"
            )
        # not a tracked attribute: the embedding is not the LSTM's sublayer
        object.__setattr__(layer, "_token_source", (token_ids, embedding))
    try:
        yield
    finally:
        for layer in layers:
            object.__setattr__(layer, "_token_source", None)


def _decoding(layers, embedding, projection_weights):
    """`(ops, inputs)`: the decoding ops (`lstm_kernels.decoding_ops`) for the decoder `layers`'
    compute dtype, and the inputs they start with as a function of `(state, start_ids,
    max_length)`; None outside `fused_inference`, where the ops do not run here, or where they
    cannot run the `layers`."""
    if not _loops["inference_kernels"] or not reads_token_table(layers[0], embedding):
        return None
    dtype = layers[0].cell.compute_dtype
    ops = lstm_kernels.decoding_ops(dtype)
    if ops is None:
        return None
    depth = embedding.output_dim
    for layer in layers:
        if not (
            isinstance(layer, LSTM)
            and has_lstm_equations(layer.cell)
            and not layer.go_backwards
            and layer.cell.compute_dtype == dtype
            and layer.cell.units % ops.units_multiple == 0  # (a multiple of depth_multiple)
            and depth % ops.depth_multiple == 0
        ):
            return None
        depth = layer.cell.units
    weights = [lstm_weights(layer.cell) for layer in layers]
    projection_kernel, projection_bias = projection_weights()

    def inputs(state, start_ids, max_length):
        # (the state is the compute dtype's, as the LSTMs make it: the casts change nothing)
        return dict(
            h0=[tf.cast(layer_state[0], dtype) for layer_state in state],
            c0=[tf.cast(layer_state[1], dtype) for layer_state in state],
            kernels=[kernel for kernel, _, _ in weights],
            biases=[bias for _, _, bias in weights],
            recurrent_kernels=[recurrent for _, recurrent, _ in weights],
            embeddings=tf.convert_to_tensor(embedding.embeddings.value),
            projection_kernel=projection_kernel,
            projection_bias=projection_bias,
            start_ids=start_ids,
            max_length=max_length,
        )

    return ops, inputs


def greedy_search_op(layers, embedding, projection_weights):
    """Within `fused_inference`, where the decoding ops run (`lstm_kernels.decoding_ops`): a
    `search(state, start_ids, end_id, max_length) -> (batch, steps)` ids that runs greedy
    decoding's whole loop as one op (`S2sLstmGreedy` in float32, `S2sLstmGreedyAmx` or
    `S2sLstmGreedyAvx512` in bf16; `lstm_greedy.h`): the decoder `layers` (our LSTMs with the
    plain equations, one compute dtype, units and input sizes as the ops need them, the first
    reading `embedding`'s small table), then the output projection `h W + b` (`projection_weights()
    -> (W, b)` float32) and argmax, step after step: what `decoding.greedy_search` computes from
    the step function, with no TensorFlow op per step. Otherwise None. `state`: per layer
    `[h, c]`, as `cell_steppers` take it."""
    decoding = _decoding(layers, embedding, projection_weights)
    if decoding is None:
        return None
    ops, inputs = decoding

    def search(state, start_ids, end_id, max_length):
        return ops.greedy(**inputs(state, start_ids, max_length), end_id=end_id)

    return search


def beam_search_op(layers, embedding, projection_weights):
    """`greedy_search_op`'s counterpart for beam search (`S2sLstmBeamSearch`, or its bf16
    `...Amx`, `...Avx512`; `lstm_beam.h`): a `search(state, start_ids, end_id, max_length,
    beam_size, alpha, num_results) -> (ids (batch, num_results, steps), scores (batch,
    num_results))` that runs `decoding.beam_search`'s whole loop as one op, or None."""
    decoding = _decoding(layers, embedding, projection_weights)
    if decoding is None:
        return None
    ops, inputs = decoding

    def search(state, start_ids, end_id, max_length, beam_size, alpha, num_results):
        return ops.beam_search(
            **inputs(state, start_ids, max_length),
            beam_size=beam_size,
            alpha=alpha,
            num_results=num_results,
            end_id=end_id,
        )

    return search


@keras.saving.register_keras_serializable(package="s2s_keras")
class LSTM(keras.layers.LSTM):
    """`keras.layers.LSTM` (same weights, config and outputs) whose loop is `lstm_sequence`;
    Keras' own loop still runs for what that does not cover (recurrent dropout while training,
    other activations, unrolling).

    `call(..., token_ids=, embedding=)`: `sequences` is `embedding(token_ids)`, and the loop
    gathers its projected inputs from `input_table` instead of multiplying `sequences` (the
    same numbers; see the module's docstring): in training, and in inference's loop over a
    batch of mixed lengths."""

    _token_source = None  # (token_ids, embedding) within `reading_tokens`

    def call(
        self,
        sequences,
        initial_state=None,
        mask=None,
        training=False,
        token_ids=None,
        embedding=None,
    ):
        with reading_tokens([self], token_ids, embedding):
            return super().call(
                sequences, initial_state=initial_state, mask=mask, training=training
            )

    def inner_loop(self, sequences, initial_state, mask, training=False):
        cell = self.cell
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        if (
            self.unroll
            or not has_lstm_equations(cell)
            or (training and (cell.dropout or cell.recurrent_dropout))
        ):
            return super().inner_loop(sequences, initial_state, mask=mask, training=training)
        weights = lstm_weights(cell)
        tables = self._token_source is not None and _loops["tables"]
        if tables:
            token_ids, embedding = self._token_source

            def table():
                return input_table(embedding.embeddings.value, weights)

        if not training:
            outputs, h, c = lstm_inference_sequence(
                sequences,
                lambda x: project_inputs(x, weights),
                initial_state[0],
                initial_state[1],
                mask,
                weights[1],
                go_backwards=self.go_backwards,
                zero_masked_outputs=self.zero_output_for_mask,
                batched=(token_ids, lambda ids: tf.gather(table(), ids)) if tables else None,
            )
            return h, outputs, [h, c]
        if tables:
            projected = gather_table(table(), token_ids, weights[0].dtype)
        else:
            projected = project_inputs(sequences, weights)
        outputs, h, c = lstm_projected_sequence(
            projected,
            initial_state[0],
            initial_state[1],
            mask,
            weights,
            go_backwards=self.go_backwards,
            zero_masked_outputs=self.zero_output_for_mask,
        )
        return h, outputs, [h, c]


@keras.saving.register_keras_serializable(package="s2s_keras")
class Bidirectional(keras.layers.Bidirectional):
    """`keras.layers.Bidirectional` whose `call` passes `token_ids` and `embedding` on to both
    directions (see `LSTM.call`)."""

    def call(
        self,
        sequences,
        initial_state=None,
        mask=None,
        training=None,
        token_ids=None,
        embedding=None,
    ):
        with reading_tokens([self.forward_layer, self.backward_layer], token_ids, embedding):
            return super().call(
                sequences, initial_state=initial_state, mask=mask, training=training
            )
