import keras
import numpy as np
import tensorflow as tf

from s2s_keras.losses import SequenceCrossentropy

Y_TRUE = tf.constant([[4, 5, 3, 0], [6, 3, 0, 0]])
LOGITS = tf.random.stateless_normal((2, 4, 7), seed=(1, 2))


def test_without_smoothing_it_is_keras_masked_crossentropy():
    keras_loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=0)
    np.testing.assert_allclose(
        float(SequenceCrossentropy()(Y_TRUE, LOGITS)), float(keras_loss(Y_TRUE, LOGITS)), rtol=1e-6
    )


def test_mean_runs_over_real_tokens_with_smoothing():
    epsilon = 0.1
    log_p = tf.nn.log_softmax(LOGITS).numpy()
    y = Y_TRUE.numpy()
    values = [
        -(1 - epsilon) * log_p[b, t, y[b, t]] - epsilon * log_p[b, t].mean()
        for b in range(2)
        for t in range(4)
        if y[b, t]
    ]
    np.testing.assert_allclose(
        float(SequenceCrossentropy(epsilon)(Y_TRUE, LOGITS)), np.mean(values), rtol=1e-5
    )
    # padding positions never count, whatever their logits
    noisy = tf.where((Y_TRUE == 0)[:, :, None], 100.0, LOGITS)
    np.testing.assert_allclose(
        float(SequenceCrossentropy(epsilon)(Y_TRUE, noisy)), np.mean(values), rtol=1e-5
    )
