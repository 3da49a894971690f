"""The private Keras API patched by `s2s_keras/keras_workarounds.py` and the bug it works around."""

import inspect

from conftest import REPO, run_python


def test_patched_private_method_still_exists_with_the_same_signature():
    from keras.src.backend.tensorflow.trainer import TensorFlowTrainer
    from keras.src.trainers.trainer import Trainer

    assert list(inspect.signature(TensorFlowTrainer._maybe_symbolic_build).parameters) == [
        "self",
        "iterator",
        "data_batch",
    ], "Keras changed _maybe_symbolic_build: revisit keras_workarounds.py"
    assert "data_batch" in inspect.signature(Trainer._symbolic_build).parameters


def test_upstream_bug_is_still_there_and_our_model_avoids_it():
    # A stock Keras model evaluating batches whose replicas' halves differ in shape.
    out = run_python(
        """
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
# 5 rows: replica 0 gets 3, replica 1 gets 2.
data = tf.data.Dataset.from_tensor_slices((tf.ones((5, 3)), tf.ones((5, 1)))).batch(5)
with strategy.scope():
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    model.compile(loss="mse", metrics=["mae"])
try:
    model.evaluate(data, verbose=0)
    print("UPSTREAM FIXED")
except tf.errors.InvalidArgumentError as error:
    print("still broken:", "must have the same size and shape" in str(error))
""",
        cwd=REPO,
    )
    assert "UPSTREAM FIXED" not in out, (
        "keras-team/keras#20585 is fixed: delete DistributedBuildFix"
    )
    assert "still broken: True" in out


def test_multi_worker_log_reduction_bug_is_still_in_keras():
    from keras.src.backend.tensorflow import trainer

    source = inspect.getsource(trainer.reduce_per_replica)
    assert 'strategy.reduce("MEAN", v, axis=0)' in source, (
        "Keras changed how logs are reduced under multi-worker strategies: revisit "
        "patch_multi_worker_log_reduction (tensorflow/tensorflow#72388)"
    )
    assert "_collective_all_reduce_multi_worker" in source
