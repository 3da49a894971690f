"""layers/lstm_kernels: the fused step kernels build from source, load, and give the training
loop exactly the numbers of the same loop in TensorFlow ops (outputs, states and every
gradient, float32, bf16 and float16, every mask); inference uses them only within
`fused_inference` (the same numbers), so default exports never do. On a CPU with AMX tiles, the
whole-sequence ops against the per-step kernels."""

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from s2s_keras.distribute import cpu_info
from s2s_keras.layers import lstm, lstm_kernels

BATCH, STEPS, FEATURES = 5, 7, 6
LENGTHS = [7, 4, 1, 0, 6]


@pytest.fixture(scope="module")
def kernels():
    module = lstm_kernels.load()
    assert module is not None, lstm_kernels.status()  # `make test` builds the library first
    return module


def _mask(kind):
    mask = np.arange(STEPS)[None, :] < np.array(LENGTHS)[:, None]
    return {"none": None, "right": tf.constant(mask), "left": tf.constant(mask[:, ::-1])}[kind]


def _inputs(units):
    """`x, kernel, recurrent, bias, h0, c0` of `lstm_sequence`, float32, drawn for `units`."""
    rng = np.random.default_rng(units)
    return [
        tf.constant(rng.normal(size=shape).astype("float32") * scale)
        for shape, scale in (
            ((BATCH, STEPS, FEATURES), 1.0),
            ((FEATURES, 4 * units), 0.5),
            ((units, 4 * units), 0.5),
            ((4 * units,), 0.5),
            ((BATCH, units), 1.0),
            ((BATCH, units), 1.0),
        )
    ]


def _sequence(inputs, dtype, mask, go_backwards, zero_masked_outputs, training):
    """`lstm_sequence` of `_inputs`, its weights and states cast to the compute `dtype`."""
    x, kernel, recurrent, bias, h0, c0 = inputs
    weights = (tf.cast(kernel, dtype), tf.cast(recurrent, dtype), bias)
    return lstm.lstm_sequence(
        x,
        tf.cast(h0, dtype),
        tf.cast(c0, dtype),
        mask,
        weights,
        go_backwards=go_backwards,
        zero_masked_outputs=zero_masked_outputs,
        training=training,
    )


def _run(units, dtype, mask, go_backwards, zero_masked_outputs):
    """Outputs, states and the gradients of every input of `lstm_sequence` under training."""
    inputs = _inputs(units)
    weights_of = np.arange(1.0, units + 1.0, dtype="float32")

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            outputs, h, c = _sequence(inputs, dtype, mask, go_backwards, zero_masked_outputs, True)
            loss = (
                tf.reduce_sum(tf.cast(outputs, tf.float32) * weights_of)
                + tf.reduce_sum(tf.cast(h, tf.float32) ** 2)
                + tf.reduce_sum(tf.cast(c, tf.float32) * 3.0)
            )
        gradients = tape.gradient(loss, inputs)
        return [tf.cast(t, tf.float32) for t in (outputs, h, c, *gradients)]

    return step, [t.numpy() for t in step()]


def _op_types(step) -> set:
    graph = step.get_concrete_function().graph.as_graph_def()
    functions = [graph.node, *(f.node_def for f in graph.library.function)]
    return {node.op for nodes in functions for node in nodes}


@pytest.mark.parametrize("dtype", [tf.float32, tf.bfloat16, tf.float16])
@pytest.mark.parametrize("mask", ["none", "right", "left"])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_fused_loop_equals_the_loop_in_tensorflow_ops_exactly(kernels, dtype, mask, go_backwards):
    with lstm.per_step_kernels():
        fused_step, fused = _run(16, dtype, _mask(mask), go_backwards, False)
    with lstm.without_fusing():
        plain_step, plain = _run(16, dtype, _mask(mask), go_backwards, False)
    assert {"S2sLstmGates", "S2sLstmGatesGrad"} <= _op_types(fused_step)
    assert not {"S2sLstmGates", "S2sLstmGatesGrad"} & _op_types(plain_step)
    for got, expected in zip(fused, plain):
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("dtype", [tf.float32, tf.bfloat16])
def test_units_not_a_multiple_of_the_vector_width_agree(kernels, dtype):
    """7 units: the last elements of each row take Eigen's scalar sigmoid and tanh, where
    TensorFlow's ops, over the whole flat tensor, may take the vector ones: at most an ulp."""
    _, fused = _run(7, dtype, _mask("right"), False, True)
    with lstm.without_fusing():
        _, plain = _run(7, dtype, _mask("right"), False, True)
    for got, expected in zip(fused, plain):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_inference_never_uses_the_kernels(kernels):
    """Inference (decoding, every export) runs TensorFlow's ops: a SavedModel never needs the
    library."""
    x = tf.random.stateless_normal([BATCH, STEPS, FEATURES], seed=[1, 1])
    weights = (tf.ones([FEATURES, 32]) * 0.1, tf.ones([8, 32]) * 0.1, tf.zeros([32]))
    state = tf.zeros([BATCH, 8])

    @tf.function
    def infer():
        return lstm.lstm_sequence(x, state, state, _mask("right"), weights, training=False)

    infer()
    assert not {"S2sLstmGates", "S2sLstmGatesGrad"} & _op_types(infer)


def _infer(units, dtype, mask, go_backwards, zero_masked_outputs):
    """The traced inference pass of `lstm_sequence` (`_run`'s inputs) and its outputs and
    states."""
    inputs = _inputs(units)

    @tf.function
    def infer():
        outputs, h, c = _sequence(inputs, dtype, mask, go_backwards, zero_masked_outputs, False)
        return [tf.cast(t, tf.float32) for t in (outputs, h, c)]

    return infer, [t.numpy() for t in infer()]


@pytest.mark.parametrize("dtype", [tf.float32, tf.bfloat16])
@pytest.mark.parametrize("mask", ["none", "right", "left"])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_fused_inference_gives_the_numbers_of_inference_in_tensorflow_ops(
    kernels, dtype, mask, go_backwards
):
    """Within `fused_inference`, a pass runs training's loop on the per-step kernels (whole
    sequences aside): the same outputs and states as TensorFlow's masked inference loop, whose
    matmuls take every row as the kernels' do (the packed loop's take only the real rows, and
    a float32 matmul of fewer rows may sum in another order: `test_lstm.py` compares that loop
    with Keras' LSTM within a tolerance)."""
    with lstm.fused_inference(), lstm.per_step_kernels():
        fused_infer, fused = _infer(16, dtype, _mask(mask), go_backwards, mask == "left")
    with lstm.without_packing():
        plain_infer, plain = _infer(16, dtype, _mask(mask), go_backwards, mask == "left")
    assert "S2sLstmGates" in _op_types(fused_infer)
    assert not {op for op in _op_types(plain_infer) if op.startswith("S2s")}
    for got, expected in zip(fused, plain):
        np.testing.assert_array_equal(got, expected)


def test_fused_inference_runs_whole_sequences_where_they_run(kernels):
    """Where a whole-sequence op runs (bf16 on AMX or AVX-512-BF16, float32 on AVX2 FMA), a
    fused inference pass is that one op, its numbers within a bf16 rounding of the loop's."""
    dtype = tf.bfloat16 if lstm_kernels.sequence_ops(tf.bfloat16) else tf.float32
    ops = lstm_kernels.sequence_ops(dtype)
    if ops is None:
        pytest.skip(f"no whole-sequence op runs here: {lstm_kernels.status()}")
    with lstm.fused_inference():
        fused_infer, fused = _infer(32, dtype, _mask("right"), True, True)
    plain_infer, plain = _infer(32, dtype, _mask("right"), True, True)
    kernels_run = {op for op in _op_types(fused_infer) if op.startswith("S2s")}
    assert len(kernels_run) == 1 and kernels_run <= {
        "S2sLstmSequence",
        "S2sLstmSequenceAvx512",
        "S2sLstmSequenceFloat",
    }
    for got, expected in zip(fused, plain):
        np.testing.assert_allclose(got, expected, atol=0.02)


@pytest.mark.parametrize("dtype", [tf.bfloat16, tf.float32])
def test_whole_sequence_op_in_inference_keeps_nothing_for_a_backward_pass(kernels, dtype):
    """`inference=True`: the same h_seq, h and c, bit for bit; c_prev_seq and gate_seq empty."""
    ops = lstm_kernels.sequence_ops(dtype)
    if ops is None:
        pytest.skip(f"no {dtype.name} whole-sequence op runs here: {lstm_kernels.status()}")
    rng = np.random.default_rng(5)
    units = 32
    projected = tf.constant(rng.normal(size=(BATCH, STEPS, 4 * units)).astype("float32"))
    h0, c0 = (tf.cast(rng.normal(size=(BATCH, units)).astype("float32"), dtype) for _ in "hc")
    kernel = tf.cast(rng.normal(size=(units, 4 * units)).astype("float32") * 0.3, dtype)
    keep = _mask("left")
    training = ops.forward(projected, h0, c0, kernel, keep)
    inference = ops.forward(projected, h0, c0, kernel, keep, inference=True)
    assert inference[1].shape == (BATCH, 0, units) and inference[2].shape == (BATCH, 0, 4 * units)
    for got, expected in zip(inference[::3] + inference[4:], training[::3] + training[4:]):
        np.testing.assert_array_equal(tf.cast(got, tf.float32), tf.cast(expected, tf.float32))


@pytest.mark.parametrize("dtype", [tf.float32, tf.bfloat16])
def test_fused_decoding_step_gives_the_numbers_of_the_step_in_tensorflow_ops(kernels, dtype):
    rng = np.random.default_rng(3)
    projected = tf.constant(rng.normal(size=(BATCH, 64)).astype("float32"))
    recurrent = tf.cast(rng.normal(size=(16, 64)).astype("float32") * 0.5, dtype)
    h, c = (tf.cast(rng.normal(size=(BATCH, 16)).astype("float32"), dtype) for _ in range(2))
    weights = (None, recurrent, None)
    step = tf.function(lambda: lstm.lstm_projected_step(projected, h, c, weights))
    with lstm.fused_inference():
        fused_step = tf.function(lambda: lstm.lstm_projected_step(projected, h, c, weights))
        fused = fused_step()
    assert "S2sLstmGates" in _op_types(fused_step)
    for got, expected in zip(fused, step()):
        assert got.dtype == dtype
        np.testing.assert_array_equal(got.numpy(), expected.numpy())


def test_register_names_the_kernels_it_cannot_load(kernels):
    lstm_kernels.register(["S2sLstmGates"])
    with pytest.raises(RuntimeError, match="S2sLstmNoSuchOp, which this process cannot load"):
        lstm_kernels.register(["S2sLstmGates", "S2sLstmNoSuchOp"])


def test_a_step_outside_the_sequence_is_refused(kernels):
    projected = tf.zeros([3, 2, 8])
    state = tf.zeros([2, 2])
    with pytest.raises(tf.errors.InvalidArgumentError, match="t = 3 outside"):
        kernels.s2s_lstm_gates(3, projected, tf.zeros([2, 8]), state, state, tf.ones([3, 2], bool))
    with pytest.raises(tf.errors.InvalidArgumentError, match="inconsistent shapes"):
        kernels.s2s_lstm_gates(0, projected, tf.zeros([2, 4]), state, state, tf.ones([3, 2], bool))


def test_builds_from_source_and_loads(tmp_path):
    library = str(tmp_path / "kernels.so")
    assert lstm_kernels.build(library) == library and os.path.getsize(library) > 0
    assert sorted(os.listdir(tmp_path)) == ["kernels.so"]  # the staged file was renamed
    # in a process of its own: a second copy of the ops in this one would register them twice
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            f"from s2s_keras.layers import lstm_kernels; print(lstm_kernels.status({library!r}))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert loaded.stdout.strip() in ("fused", "fused, whole sequences on AMX")


def test_a_missing_or_stale_library_says_why_and_training_still_runs(tmp_path):
    missing = str(tmp_path / "none.so")
    assert lstm_kernels.load(missing) is None
    assert "is not built (make install builds it)" in lstm_kernels.status(missing)
    stale = tmp_path / "stale.so"
    stale.write_bytes(b"")
    os.utime(stale, (0, 0))
    assert "is older than" in lstm_kernels.status(str(stale))


def test_a_compiler_error_is_reported(tmp_path, monkeypatch):
    monkeypatch.setattr(lstm_kernels, "SOURCE", str(tmp_path / "broken.cc"))
    (tmp_path / "broken.cc").write_text("this is not C++\n")
    with pytest.raises(RuntimeError, match="building the LSTM kernels .*broken.cc.* failed"):
        lstm_kernels.build(str(tmp_path / "out.so"))
    assert not os.path.exists(tmp_path / "out.so")
    assert os.listdir(tmp_path) == ["broken.cc"]


def test_loop_choices_are_restored_after_nested_contexts():
    with lstm.without_fusing():
        with lstm.without_fusing():
            pass
        assert not lstm._loops["fusing"]  # still off: the outer context has not ended
        with lstm.without_packing(), lstm.per_step_kernels():
            with lstm.without_token_tables(), lstm.without_one_hot_gradient():
                assert not any(lstm._loops.values())
                with lstm.fused_inference():
                    assert lstm._loops["inference_kernels"]
            assert lstm._loops["tables"] and lstm._loops["one_hot_gradient"]
    assert lstm._loops == {
        "inference_kernels": False,
        "packing": True,
        "fusing": True,
        "sequence": True,
        "tables": True,
        "one_hot_gradient": True,
    }


@pytest.fixture(scope="module")
def amx(kernels):
    """The bf16 whole-sequence ops, where this CPU has AMX tiles."""
    if not lstm_kernels.amx():
        pytest.skip("this CPU has no AMX tiles: the bf16 whole-sequence ops do not run here")
    ops = lstm_kernels.sequence_ops(tf.bfloat16)
    assert ops is not None, lstm_kernels.status()  # `make test` builds the library first
    return ops


@pytest.fixture(scope="module")
def avx512(kernels):
    """The bf16 whole-sequence ops in AVX-512-BF16, where this CPU has it and no AMX tiles (with
    AMX tiles the AMX engine runs instead)."""
    if lstm_kernels.amx() or not lstm_kernels.avx512_bf16():
        pytest.skip("the AVX-512-BF16 whole-sequence ops run only without AMX, with AVX-512-BF16")
    ops = lstm_kernels.sequence_ops(tf.bfloat16)
    assert ops is not None and ops.engine == "AVX-512-BF16", lstm_kernels.status()
    return ops


@pytest.fixture(scope="module")
def fma(kernels):
    """The float32 whole-sequence ops, where this CPU has AVX2 and FMA."""
    if not {"avx2", "fma"} <= cpu_info()[1]:
        pytest.skip("this CPU has no AVX2 and FMA: the float32 whole-sequence ops do not run")
    ops = lstm_kernels.sequence_ops(tf.float32)
    assert ops is not None, lstm_kernels.status()  # `make test` builds the library first
    return ops


def _whole_against_per_step(units, dtype, mask, go_backwards, op_name):
    whole_step, whole = _run(units, dtype, _mask(mask), go_backwards, False)
    with lstm.per_step_kernels():
        step_step, per_step = _run(units, dtype, _mask(mask), go_backwards, False)
    assert {op_name, op_name + "Grad"} <= _op_types(whole_step)
    assert "S2sLstmGates" not in _op_types(whole_step)
    assert op_name not in _op_types(step_step)
    return whole, per_step


@pytest.mark.parametrize("units", [32, 96])
@pytest.mark.parametrize("mask", ["none", "right", "left"])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_whole_sequence_ops_equal_the_per_step_kernels(amx, units, mask, go_backwards):
    """One op per direction (recurrent matmuls on AMX tiles inside it) against the per-step
    kernels whose matmuls are TensorFlow's: outputs, states and every gradient. Both sum the bf16
    products in float32 and round to bf16, in another order; the gate arithmetic is AVX-512's
    (FMA) instead of AVX's: bf16 roundings that differ by an ulp now and then."""
    whole, per_step = _whole_against_per_step(
        units, tf.bfloat16, mask, go_backwards, "S2sLstmSequence"
    )
    for got, expected in zip(whole, per_step):
        assert np.linalg.norm(got - expected) <= 1e-2 * np.linalg.norm(expected)
    for got, expected in zip(whole[:3], per_step[:3]):  # outputs and states: mostly identical
        assert np.mean(got == expected) > 0.95


@pytest.mark.parametrize("units", [16, 48])
@pytest.mark.parametrize("mask", ["none", "right", "left"])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_avx512_whole_sequence_ops_equal_the_per_step_kernels(avx512, units, mask, go_backwards):
    """bf16 without AMX: one op per direction (recurrent matmuls in VDPBF16PS inside it) against
    the per-step kernels whose matmuls are TensorFlow's (oneDNN's bf16): the same float32 sums
    of bf16 products in another order, rounded to bf16; outputs, states and every gradient."""
    whole, per_step = _whole_against_per_step(
        units, tf.bfloat16, mask, go_backwards, "S2sLstmSequenceAvx512"
    )
    for got, expected in zip(whole, per_step):
        assert np.linalg.norm(got - expected) <= 1e-2 * np.linalg.norm(expected)
    for got, expected in zip(whole[:3], per_step[:3]):  # outputs and states: mostly identical
        assert np.mean(got == expected) > 0.95


@pytest.mark.parametrize("units", [16, 48])
@pytest.mark.parametrize("mask", ["none", "right", "left"])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_float32_whole_sequence_ops_equal_the_per_step_kernels(fma, units, mask, go_backwards):
    """float32: one op per direction (the recurrent matmuls in AVX2 FMA code inside it) against
    the per-step kernels whose matmuls are TensorFlow's. The gate arithmetic is the same code;
    the matmuls' sums run in another order (and fused multiply-adds round once), so the numbers
    agree to float32's precision, not bit for bit."""
    whole, per_step = _whole_against_per_step(
        units, tf.float32, mask, go_backwards, "S2sLstmSequenceFloat"
    )
    for got, expected in zip(whole, per_step):
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


@pytest.mark.parametrize(
    "engine, dtype, tolerance",
    [("fma", tf.float32, (1e-4, 1e-5)), ("avx512", tf.bfloat16, (1e-2, 3e-2))],
)
def test_whole_sequence_ops_follow_the_equations(request, engine, dtype, tolerance):
    """The op alone against the LSTM equations in NumPy (float64, from the same inputs rounded
    to the op's dtype), a batch that does not fill a block of rows and a mask that keeps the
    state over masked steps; bf16 to its precision (h and c rounded to bf16 at every step)."""
    ops = request.getfixturevalue(engine)
    rng = np.random.default_rng(7)
    batch, steps, units = 13, 5, 48
    projected = rng.normal(size=(batch, steps, 4 * units)).astype("float32")
    h0, c0 = (tf.cast(rng.normal(size=(batch, units)), dtype) for _ in range(2))
    kernel = tf.cast(rng.normal(size=(units, 4 * units)) * 0.2, dtype)
    keep = rng.random((batch, steps)) > 0.3
    outputs = ops.forward(projected, h0, c0, kernel, keep)
    h_seq, _, _, h, c = (tf.cast(t, tf.float64).numpy() for t in outputs)
    h0, c0, kernel = (tf.cast(t, tf.float64).numpy() for t in (h0, c0, kernel))
    rtol, atol = tolerance
    sigmoid = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    h_ref, c_ref = h0, c0
    for t in range(steps):
        z = projected[:, t] + h_ref @ kernel
        i, f, g, o = np.split(z, 4, axis=-1)
        c_new = sigmoid(f) * c_ref + sigmoid(i) * np.tanh(g)
        h_new = sigmoid(o) * np.tanh(c_new)
        kept = keep[:, t, None]
        h_ref, c_ref = np.where(kept, h_new, h_ref), np.where(kept, c_new, c_ref)
        np.testing.assert_allclose(h_seq[:, t], h_ref, rtol=rtol, atol=atol)
    np.testing.assert_allclose(h, h_ref, rtol=rtol, atol=atol)
    np.testing.assert_allclose(c, c_ref, rtol=rtol, atol=atol)


def test_whole_sequence_runs_only_where_it_can(kernels):
    """Units its engine does not take (and, without AMX or AVX-512-BF16, bf16) keep the
    per-step kernels."""
    cases = [(8, tf.float32), (8, tf.bfloat16)]
    if lstm_kernels.amx():
        cases.append((16, tf.bfloat16))
    elif not lstm_kernels.avx512_bf16():
        cases.append((32, tf.bfloat16))
    names = {"S2sLstmSequence", "S2sLstmSequenceAvx512", "S2sLstmSequenceFloat"}
    for units, dtype in cases:
        step, _ = _run(units, dtype, _mask("right"), False, False)
        assert not names & _op_types(step)
        assert "S2sLstmGates" in _op_types(step)


def test_whole_sequence_ops_refuse_bad_shapes(amx):
    projected = tf.zeros([2, 3, 128])  # batch major
    state = tf.zeros([2, 32], tf.bfloat16)
    kernel = tf.zeros([32, 128], tf.bfloat16)
    with pytest.raises(tf.errors.InvalidArgumentError, match="inconsistent shapes"):
        amx.forward(projected, state, state, kernel, tf.ones([2, 4], bool))
    odd = tf.zeros([2, 8], tf.bfloat16)
    with pytest.raises(tf.errors.InvalidArgumentError, match="multiple of 32, got 8"):
        amx.forward(
            tf.zeros([2, 3, 32]), odd, odd, tf.zeros([8, 32], tf.bfloat16), tf.ones([2, 3], bool)
        )


def test_float32_whole_sequence_ops_refuse_bad_shapes(fma):
    state = tf.zeros([2, 16])
    with pytest.raises(tf.errors.InvalidArgumentError, match="Float: inconsistent shapes"):
        fma.forward(tf.zeros([2, 3, 64]), state, state, tf.zeros([16, 64]), tf.ones([2, 4], bool))
    with pytest.raises(tf.errors.InvalidArgumentError, match="FloatGrad: inconsistent shapes"):
        fma.backward(
            tf.zeros([2, 3, 64]),
            tf.zeros([2, 3, 16]),
            tf.zeros([2, 3, 16]),
            tf.ones([2, 3], bool),
            state,
            state,
            tf.zeros([16, 32]),
        )
    odd = tf.zeros([2, 8])
    with pytest.raises(tf.errors.InvalidArgumentError, match="multiple of 16, got 8"):
        fma.forward(tf.zeros([2, 3, 32]), odd, odd, tf.zeros([8, 32]), tf.ones([2, 3], bool))


@pytest.mark.parametrize("go_backwards", [False, True])
def test_fused_inference_projects_the_inputs_of_real_steps_alone(fma, go_backwards):
    """Within `fused_inference`, a layer reading vectors (another layer's outputs) projects them
    at the steps its mask keeps, never at the padding (which the op never reads): a padded
    batch gives the outputs and states of inference in TensorFlow's ops, to float32 precision."""
    import keras

    keras.utils.set_random_seed(4)
    layer = lstm.LSTM(16, return_sequences=True, return_state=True, go_backwards=go_backwards)
    rng = np.random.default_rng(4)
    x = tf.constant(rng.normal(size=(BATCH, STEPS, 8)).astype("float32"))
    mask = _mask("right")
    plain = [t.numpy() for t in layer(x, mask=mask)]
    with lstm.fused_inference():
        infer = tf.function(lambda: layer(x, mask=mask))
        fused = [t.numpy() for t in infer()]
    assert {"ScatterNd", "S2sLstmSequenceFloat"} <= _op_types(infer)
    for got, expected in zip(fused, plain):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def _decoder(units, vocabulary=11, embedding_size=6, dtype="float32"):
    """Our LSTM layers of `units` under an embedding of `vocabulary` rows (both under the policy
    `dtype`), and a float32 projection to `vocabulary` logits: random weights, scaled up so that
    the argmax changes from step to step."""
    import keras

    keras.utils.set_random_seed(sum(units))
    embedding = keras.layers.Embedding(vocabulary, embedding_size, dtype=dtype)
    embedding.build((None,))
    layers, width = [], embedding_size
    for size in units:
        layer = lstm.LSTM(
            size, return_sequences=True, return_state=True, use_cudnn=False, dtype=dtype
        )
        layer.build((None, None, width))
        width = size
        layers.append(layer)
    projection = keras.layers.Dense(vocabulary)
    projection.build((None, width))
    for weight in [embedding.embeddings, projection.kernel, projection.bias]:
        weight.assign(weight * 3.0 + 0.1)
    return embedding, layers, projection


def _step_in_tensorflow(embedding, layers, projection):
    """The step function of the layers under the embedding, then the projection, in
    TensorFlow's ops (`cell_steppers`, `step_cells`)."""
    from s2s_keras.layers import cell_steppers, step_cells

    steppers = cell_steppers(layers, embedding)

    def step(token_ids, state):
        x, state = step_cells(steppers, token_ids, state)
        return projection(x), state

    return step


def _greedy_in_tensorflow(embedding, layers, projection, state, start_ids, end_id, max_length):
    """`decoding.greedy_search` over the step function of the layers, in TensorFlow's ops."""
    from s2s_keras.decoding import greedy_search

    step = _step_in_tensorflow(embedding, layers, projection)
    return greedy_search(step, state, start_ids, end_id, max_length).numpy()


def _decoding_case(batch, units=(16, 12), embedding_size=6, dtype="float32"):
    """`_decoder(units)`, random initial states (the compute dtype's) and start ids for `batch`
    rows, and an end id that greedy search emits in some rows, not all (by 9 steps)."""
    embedding, layers, projection = _decoder(list(units), 11, embedding_size, dtype)
    rng = np.random.default_rng(batch)
    state = [
        [
            tf.cast(rng.normal(size=(batch, layer.units)).astype("float32"), layer.compute_dtype)
            for _ in "hc"
        ]
        for layer in layers
    ]
    start_ids = tf.constant(rng.integers(0, 11, size=batch).astype("int32"))
    never = _greedy_in_tensorflow(embedding, layers, projection, state, start_ids, -1, 9)
    tokens, counts = np.unique(never[:, 2:], return_counts=True)
    end_id = int(tokens[np.argsort(counts)[len(counts) // 2]])
    return embedding, layers, projection, state, start_ids, end_id


def _greedy_op_as_in_tensorflow(case):
    """The greedy op's ids for a `_decoding_case` (9 steps at most), checked equal to those of
    `greedy_search` over the same layers' step in TensorFlow ops; with each row's length (None:
    it ran to `max_length`)."""
    embedding, layers, projection, state, start_ids, end_id = case
    expected = _greedy_in_tensorflow(embedding, layers, projection, state, start_ids, end_id, 9)
    with lstm.fused_inference():
        search = lstm.greedy_search_op(
            layers, embedding, lambda: (projection.kernel.value, projection.bias.value)
        )
    got = search(state, start_ids, end_id, tf.constant(9)).numpy()
    np.testing.assert_array_equal(got, expected)
    return got, [list(row).index(end_id) + 1 if end_id in row else None for row in got]


def _beam_search_op_as_in_tensorflow(case, arguments):
    """The beam search op's ids for a `_decoding_case` and `arguments` (start ids, end id,
    max_length, beam, alpha, num_results), checked against `beam_search` over the same layers'
    step in TensorFlow ops: the same hypotheses in the same order, scores to float32's
    precision; and that step."""
    from s2s_keras.decoding import beam_search

    embedding, layers, projection, state = case[:4]
    step = _step_in_tensorflow(embedding, layers, projection)
    expected_ids, expected_scores = beam_search(step, state, *arguments)
    with lstm.fused_inference():
        search = lstm.beam_search_op(
            layers, embedding, lambda: (projection.kernel.value, projection.bias.value)
        )
    ids, scores = search(state, *arguments)
    np.testing.assert_array_equal(ids.numpy(), expected_ids.numpy())
    np.testing.assert_allclose(scores.numpy(), expected_scores.numpy(), rtol=1e-5)
    return ids.numpy(), step


@pytest.mark.parametrize("batch", [3, 13, 50])  # weights as they are; packed; two blocks
def test_greedy_op_decodes_as_the_loop_in_tensorflow_ops(fma, batch):
    """`S2sLstmGreedy` (greedy decoding's whole loop in one op) against `greedy_search` over the
    same layers' step in TensorFlow ops: the same ids, rows ending at different steps (the end
    id chosen among the tokens the loop emits) and some running to `max_length`."""
    _, lengths = _greedy_op_as_in_tensorflow(_decoding_case(batch))
    assert None in lengths and len({length for length in lengths if length}) > 1, lengths


@pytest.fixture(params=["AMX", "AVX-512-BF16"])
def bf16_decoding(kernels, request, monkeypatch):
    """The bf16 decoding ops of each engine this CPU runs: AMX tiles, and AVX-512-BF16 (on a CPU
    with both, as where there are no tiles: `lstm_kernels.amx` answering no)."""
    if request.param == "AMX" and not lstm_kernels.amx():
        pytest.skip("this CPU has no AMX tiles")
    if request.param == "AVX-512-BF16":
        if not lstm_kernels.avx512_bf16():
            pytest.skip("this CPU has no AVX-512-BF16")
        monkeypatch.setattr(lstm_kernels, "amx", lambda *args: False)
    ops = lstm_kernels.decoding_ops(tf.bfloat16)
    assert ops is not None and ops.engine == request.param, lstm_kernels.status()
    return ops


# units and embedding size multiples of 32: what both bf16 engines run
BF16_DECODER = dict(units=(32, 64), embedding_size=32, dtype="mixed_bfloat16")


@pytest.mark.parametrize("batch", [1, 13, 70])  # a request; one block; blocks of 35 rows
def test_bf16_greedy_op_decodes_as_the_loop_in_tensorflow_ops(bf16_decoding, batch):
    """A bf16 decoder's greedy op (`S2sLstmGreedyAmx` or `...Avx512`): the ids of
    `greedy_search` over the same layers' bf16 step in TensorFlow ops (h and c carried in bf16,
    each matmul's output rounded to bf16, the logits float32), rows ending at different steps;
    blocks of rows that are not a multiple of the AMX tiles' 32."""
    _, lengths = _greedy_op_as_in_tensorflow(_decoding_case(batch, **BF16_DECODER))
    assert batch == 1 or len(set(lengths)) > 1, lengths


@pytest.mark.parametrize("batch, beam, alpha", [(1, 5, 0.0), (13, 4, 0.6), (40, 3, 1.0)])
def test_bf16_beam_search_op_searches_as_the_loop_in_tensorflow_ops(
    bf16_decoding, batch, beam, alpha
):
    """A bf16 decoder's beam search op: the hypotheses of `beam_search` over the same layers'
    bf16 step in TensorFlow ops, in the same order, scores to float32's precision."""
    case = _decoding_case(batch, **BF16_DECODER)
    ids, _ = _beam_search_op_as_in_tensorflow(case, (*case[4:], 9, beam, alpha, 2))
    assert ids.shape[:2] == (batch, 2)


@pytest.mark.parametrize("dtype", ["float32", "mixed_bfloat16"])
def test_decoding_ops_pack_weights_again_when_they_change(kernels, dtype):
    """The ops keep their packed weights between calls (`PackedCache`), packing again where the
    values changed: a call after the weights change, and one after they change back, each
    decode as the loop in TensorFlow ops on the weights of that call."""
    compute_dtype = "bfloat16" if dtype == "mixed_bfloat16" else dtype
    if lstm_kernels.decoding_ops(compute_dtype) is None:
        pytest.skip(f"the {compute_dtype} decoding ops do not run here")
    embedding, layers, projection, state, start_ids, end_id = _decoding_case(
        13, **{**BF16_DECODER, "dtype": dtype}
    )
    weights = lambda: (projection.kernel.value, projection.bias.value)  # noqa: E731
    recurrent = layers[1].cell.recurrent_kernel
    original = recurrent.numpy()
    decoded = []
    for values in (original, original[::-1] * 2.0, original):
        recurrent.assign(values)
        expected = _greedy_in_tensorflow(embedding, layers, projection, state, start_ids, -1, 6)
        with lstm.fused_inference():
            search = lstm.greedy_search_op(layers, embedding, weights)
        got = search(state, start_ids, -1, tf.constant(6)).numpy()
        np.testing.assert_array_equal(got, expected)
        decoded.append(got)
    assert not np.array_equal(decoded[0], decoded[1])  # the change mattered


def test_bf16_decoding_ops_only_for_the_sizes_their_engine_runs(bf16_decoding):
    """A bf16 stack gets the bf16 ops where its sizes suit the engine (AMX: embedding size and
    units multiples of 32), a float32 one the float32 ops; the ops refuse other sizes."""
    weights = lambda: (tf.zeros([64, 11]), tf.zeros([11]))  # noqa: E731
    embedding, layers, _ = _decoder([32, 64], 11, 32, "mixed_bfloat16")
    odd_embedding, odd_layers, _ = _decoder([32, 64], 11, 6, "mixed_bfloat16")
    with lstm.fused_inference():
        assert lstm.greedy_search_op(layers, embedding, weights) is not None
        odd = lstm.greedy_search_op(odd_layers, odd_embedding, weights)
        assert (odd is None) == (bf16_decoding.depth_multiple > 2)
    arguments = _decoding_op_arguments()
    arguments.update(
        h0=[tf.zeros([2, 32], tf.bfloat16)],
        c0=[tf.zeros([2, 32], tf.bfloat16)],
        kernels=[tf.zeros([6, 128], tf.bfloat16)],
        biases=[tf.zeros([128])],
        recurrent_kernels=[tf.zeros([32, 128], tf.bfloat16)],
        embeddings=tf.zeros([5, 6]),
        projection_kernel=tf.zeros([32, 5]),
    )
    if bf16_decoding.depth_multiple > 2:
        message = "S2sLstmGreedy(Amx|Avx512): needs input sizes and units multiples of"
        with pytest.raises(tf.errors.InvalidArgumentError, match=message):
            bf16_decoding.greedy(**arguments)
    else:
        assert bf16_decoding.greedy(**arguments).shape == (2, 3)


def test_greedy_op_only_within_fused_inference_and_where_it_runs(fma):
    embedding, layers, projection = _decoder([16])
    weights = lambda: (projection.kernel.value, projection.bias.value)  # noqa: E731
    assert lstm.greedy_search_op(layers, embedding, weights) is None
    with lstm.fused_inference():
        assert lstm.greedy_search_op(layers, embedding, weights) is not None
        odd_embedding, odd_layers, _ = _decoder([6])  # units not a multiple of 4
        assert lstm.greedy_search_op(odd_layers, odd_embedding, weights) is None


def _decoding_op_arguments(**more):
    """A decoding op's inputs for a one-layer stack of 4 units, all weights 0 (equal logits):
    two rows starting from tokens 1 and 4 of 5, end id 2, at most 3 steps."""
    return dict(
        h0=[tf.zeros([2, 4])],
        c0=[tf.zeros([2, 4])],
        kernels=[tf.zeros([3, 16])],
        biases=[tf.zeros([16])],
        recurrent_kernels=[tf.zeros([4, 16])],
        embeddings=tf.zeros([5, 3]),
        projection_kernel=tf.zeros([4, 5]),
        projection_bias=tf.zeros([5]),
        start_ids=tf.constant([1, 4]),
        max_length=tf.constant(3),
        end_id=2,
        **more,
    )


def test_greedy_op_refuses_bad_inputs(fma):
    op = lstm_kernels.decoding_ops().greedy
    arguments = _decoding_op_arguments()
    assert op(**arguments).shape == (2, 3)  # all logits 0: token 0 (never the end) each step
    empty = dict(h0=[tf.zeros([0, 4])], c0=[tf.zeros([0, 4])], start_ids=tf.zeros([0], tf.int32))
    assert op(**{**arguments, **empty}).shape == (0, 0)
    for change, message in (
        (dict(start_ids=tf.constant([1, 5])), r"S2sLstmGreedy: start id 5 outside \[0, 5\)"),
        (dict(recurrent_kernels=[tf.zeros([4, 12])]), "inconsistent shapes in layer 0"),
        (dict(projection_kernel=tf.zeros([4, 6]), projection_bias=tf.zeros([6])), "6 logits"),
        (
            dict(
                h0=[tf.zeros([2, 2])],
                c0=[tf.zeros([2, 2])],
                kernels=[tf.zeros([3, 8])],
                biases=[tf.zeros([8])],
                recurrent_kernels=[tf.zeros([2, 8])],
                projection_kernel=tf.zeros([2, 5]),
            ),
            "needs units a multiple of 4, got 2",
        ),
    ):
        with pytest.raises(tf.errors.InvalidArgumentError, match=message):
            op(**{**arguments, **change})


@pytest.mark.parametrize(
    "batch, beam, alpha, num_results, max_length",
    [
        (1, 5, 0.0, 5, 9),  # a single request: weights as they are
        (3, 1, 0.0, 1, 9),  # beam 1 is greedy search
        (13, 4, 0.6, 2, 9),  # packed weights; rows leaving early (num_results settled)
        (50, 3, 1.0, 3, 4),  # two blocks; rows cut at max_length, unfinished ones filling up
    ],
)
def test_beam_search_op_searches_as_the_loop_in_tensorflow_ops(
    fma, batch, beam, alpha, num_results, max_length
):
    """`S2sLstmBeamSearch` (beam search's whole loop in one op) against `beam_search` over the
    same layers' step in TensorFlow ops: the same hypotheses in the same order, scores to
    float32's precision, with rows finishing at different steps."""
    from s2s_keras.decoding import greedy_search

    case = _decoding_case(batch)
    state, start_ids, end_id = case[3:]
    arguments = (start_ids, end_id, max_length, beam, alpha, num_results)
    ids, step = _beam_search_op_as_in_tensorflow(case, arguments)
    assert ids.shape[:2] == (batch, num_results)
    if beam == 1:
        np.testing.assert_array_equal(ids[:, 0], greedy_search(step, state, *arguments[:3]))
    ended = (ids[:, 0] == end_id).any(axis=1)
    assert ended.any() and (batch == 1 or not ended.all()), ended  # some cut at max_length


def test_decoding_ops_give_a_request_alone_its_numbers_in_a_batch(fma):
    """A single request's few rows multiply the weights as they are, each matmul's columns
    shared with a helper thread, and tabulate the first layer's new tokens together; a batch's
    blocks multiply packed weights: the same sums in the same order, so a request's beam scores
    and greedy ids do not depend on the batch it came in."""
    embedding, layers, projection, state, start_ids, end_id = _decoding_case(13)
    weights = (layers, embedding, lambda: (projection.kernel.value, projection.bias.value))
    with lstm.fused_inference():
        beam, greedy = lstm.beam_search_op(*weights), lstm.greedy_search_op(*weights)
    search = (end_id, tf.constant(9), tf.constant(5), tf.constant(0.6), tf.constant(3))
    ids, scores = beam(state, start_ids, *search)
    greedy_ids = greedy(state, start_ids, end_id, tf.constant(9)).numpy()
    for row in (0, 7, 12):
        alone = [[tensor[row : row + 1] for tensor in layer] for layer in state]
        row_ids, row_scores = beam(alone, start_ids[row : row + 1], *search)
        np.testing.assert_array_equal(row_scores.numpy()[0], scores.numpy()[row])
        steps = row_ids.shape[2]
        np.testing.assert_array_equal(row_ids.numpy()[0], ids.numpy()[row, :, :steps])
        assert not ids.numpy()[row, :, steps:].any()
        row_greedy = greedy(alone, start_ids[row : row + 1], end_id, tf.constant(9)).numpy()
        np.testing.assert_array_equal(
            row_greedy[0], greedy_ids[row, : row_greedy.shape[1]], err_msg=str(row)
        )


def test_beam_search_op_refuses_bad_inputs_and_takes_an_empty_batch(fma):
    op = lstm_kernels.decoding_ops().beam_search
    arguments = _decoding_op_arguments(
        beam_size=tf.constant(2), alpha=tf.constant(0.0), num_results=tf.constant(2)
    )
    ids, scores = op(**arguments)  # equal logits: ties go to the lower token, never the end
    assert ids.shape == (2, 2, 3) and scores.shape == (2, 2)
    np.testing.assert_array_equal(ids[:, 0], np.zeros([2, 3]))
    np.testing.assert_allclose(scores[:, 0], 3 * np.log(1 / 5), rtol=1e-6)
    empty = dict(h0=[tf.zeros([0, 4])], c0=[tf.zeros([0, 4])], start_ids=tf.zeros([0], tf.int32))
    ids, scores = op(**{**arguments, **empty})
    assert ids.shape == (0, 2, 0) and scores.shape == (0, 2)
    for change, message in (
        (dict(start_ids=tf.constant([1, 5])), r"S2sLstmBeamSearch: start id 5 outside \[0, 5\)"),
        (dict(biases=[tf.zeros([12])]), "inconsistent shapes in layer 0"),
        (dict(beam_size=tf.constant([2])), "must be scalars"),
    ):
        with pytest.raises(tf.errors.InvalidArgumentError, match=message):
            op(**{**arguments, **change})


def test_float32_whole_sequence_op_gives_a_row_alone_its_numbers_in_a_batch(fma):
    """A batch of a few rows multiplies W_h as it is, a larger one packed, and a step's matmul
    takes only the rows its mask keeps: the same sums in the same order, so a row's outputs and
    states do not depend on the batch it came in, nor on its neighbours' padding."""
    rng = np.random.default_rng(11)
    batch, steps, units = 40, 6, 32
    projected = tf.constant(rng.normal(size=(batch, steps, 4 * units)).astype("float32"))
    h0, c0 = (tf.constant(rng.normal(size=(batch, units)).astype("float32")) for _ in "hc")
    kernel = tf.constant(rng.normal(size=(units, 4 * units)).astype("float32") * 0.3)
    lengths = rng.integers(0, steps + 1, size=batch)
    right = np.arange(steps)[None, :] < lengths[:, None]
    keep = tf.constant(np.where(np.arange(batch)[:, None] % 2 == 0, right, right[:, ::-1]))
    together = fma.forward(projected, h0, c0, kernel, keep, inference=True)
    unmasked = fma.forward(projected, h0, c0, kernel, tf.ones_like(keep), inference=True)
    for rows in (slice(0, 1), slice(5, 8)):
        alone = fma.forward(
            projected[rows], h0[rows], c0[rows], kernel, tf.ones_like(keep[rows]), inference=True
        )
        masked = fma.forward(projected[rows], h0[rows], c0[rows], kernel, keep[rows], True)
        for got, expected in zip(masked[::3] + masked[4:], together[::3] + together[4:]):
            np.testing.assert_array_equal(got.numpy(), expected.numpy()[rows])
        np.testing.assert_array_equal(alone[0].numpy(), unmasked[0].numpy()[rows])
