"""optimizers.Adam: Adam's equations in one op per variable (ResourceApplyAdam), for dense and
embedding (IndexedSlices) gradients, schedules and clipping, as Keras' Adam."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from s2s_keras.optimizers import Adam

BETA_1, BETA_2, EPSILON, RATE = 0.9, 0.999, 1e-7, 0.01


def _reference(theta, gradients):
    """Adam in float32 NumPy, as TensorFlow's kernel computes it: the βs in float32 first."""
    f = np.float32
    beta_1, beta_2 = f(BETA_1), f(BETA_2)
    m = np.zeros_like(theta)
    v = np.zeros_like(theta)
    for t, g in enumerate(gradients, start=1):
        alpha = f(RATE) * np.sqrt(f(1) - beta_2**t) / (f(1) - beta_1**t)
        m = m + (g - m) * (f(1) - beta_1)
        v = v + (g * g - v) * (f(1) - beta_2)
        theta = theta - (m * alpha) / (np.sqrt(v) + f(EPSILON))
    return theta


def _gradients(seed, shape, steps=4):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=shape).astype("float32") for _ in range(steps)]


def test_updates_follow_adams_equations():
    theta = np.random.default_rng(0).normal(size=(5, 3)).astype("float32")
    gradients = _gradients(1, theta.shape)
    variable = keras.Variable(theta)
    optimizer = Adam(RATE, beta_1=BETA_1, beta_2=BETA_2, epsilon=EPSILON)
    for g in gradients:
        optimizer.apply([tf.constant(g)], [variable])
    np.testing.assert_allclose(variable.numpy(), _reference(theta, gradients), rtol=2e-6, atol=1e-7)
    assert int(optimizer.iterations.numpy()) == len(gradients)


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("clipnorm", [None, 0.5])
def test_trains_as_keras_adam(sparse, clipnorm):
    """Same schedule, clipping and (embedding) gradients: the same weights as Keras' Adam up to
    the rounding of 1 − β (Keras' in double, then float32; the kernel's in float32)."""
    theta = np.random.default_rng(2).normal(size=(6, 4)).astype("float32")
    schedule = keras.optimizers.schedules.CosineDecay(RATE, decay_steps=10, alpha=0.05)
    results = []
    for optimizer in (
        Adam(schedule, global_clipnorm=clipnorm),
        keras.optimizers.Adam(schedule, global_clipnorm=clipnorm),
    ):
        variable = keras.Variable(theta)

        @tf.function
        def step(g, rows):
            gradient = tf.IndexedSlices(tf.gather(g, rows), rows, tf.shape(g)) if sparse else g
            optimizer.apply([gradient], [variable])

        for g in _gradients(3, theta.shape, steps=6):
            step(tf.constant(g), tf.constant([0, 2, 5]))
        results.append(variable.numpy())
    np.testing.assert_allclose(results[0], results[1], rtol=1e-4, atol=1e-6)
    assert not np.array_equal(results[0], theta)


def test_an_embedding_gradients_repeated_rows_add_up():
    """IndexedSlices naming a row twice (a token twice in a batch) update as the dense gradient
    they sum to (Keras' own update, given the slices unsummed, differs in that row)."""
    theta = np.zeros((4, 3), "float32")
    g = tf.constant(_gradients(4, (4, 3), steps=1)[0])
    rows = tf.constant([1, 3, 3])
    results = []
    for dense in (False, True):
        variable, optimizer = keras.Variable(theta), Adam(RATE)
        gradient = tf.IndexedSlices(tf.gather(g, rows), rows, tf.shape(g))
        optimizer.apply([tf.convert_to_tensor(gradient) if dense else gradient], [variable])
        results.append(variable.numpy())
    np.testing.assert_array_equal(results[0], results[1])
    assert np.all(results[0][[0, 2]] == 0) and np.all(results[0][[1, 3]] != 0)


def test_amsgrad_runs_keras_update_and_the_config_round_trips():
    optimizer = Adam(RATE, amsgrad=True)
    variable = keras.Variable(np.ones((2, 2), "float32"))
    optimizer.apply([tf.ones((2, 2))], [variable])
    assert variable.numpy()[0, 0] < 1.0
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert type(restored) is Adam and restored.amsgrad
