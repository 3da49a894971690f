import numpy as np
import tensorflow as tf

from s2s_keras.layers import ReverseSequence


def test_reverse_keeps_padding_right_aligned_and_is_its_own_inverse():
    ids = tf.constant([[4, 5, 6, 0, 0], [7, 0, 0, 0, 0], [0, 0, 0, 0, 0], [4, 5, 6, 7, 8]])
    reverse = ReverseSequence()
    once = reverse(ids).numpy()
    assert once.tolist() == [[6, 5, 4, 0, 0], [7, 0, 0, 0, 0], [0, 0, 0, 0, 0], [8, 7, 6, 5, 4]]
    np.testing.assert_array_equal(reverse(once).numpy(), ids.numpy())
