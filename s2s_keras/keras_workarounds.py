"""Workarounds for Keras 3.15 bugs under `tf.distribute`, in one place (private Keras API).

`tests/test_keras_workarounds.py` fails loudly when Keras changes the private method patched here
or when upstream fixes the bug (then delete the workaround).

keras-team/keras#20585: before the first step, `model.fit`/`evaluate` under a strategy take the
first DISTRIBUTED batch and reduce it across replicas with MEAN to build the metrics
symbolically (`TensorFlowTrainer._maybe_symbolic_build`). Replicas' batches may differ in shape
(a last or length-bucketed batch splits unevenly; each replica pads to its own longest sequence),
and the reduction fails with "Inputs to operation AddN ... must have the same size and shape".
Building from one replica's local batch needs no reduction at all.
"""

from __future__ import annotations

import tensorflow as tf
from keras.src import tree


class DistributedBuildFix:
    """Mixin for a `keras.Model` (before it in the bases): symbolic build from a local batch."""

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        strategy = self._distribute_strategy
        if strategy is None:
            return super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)
        if iterator is not None:
            for _, _, batches in iterator:
                data_batch = tree.map_structure(_first_replica, next(batches))
                break
        with strategy.scope():
            self._symbolic_build(data_batch=data_batch)


def _first_replica(value):
    if isinstance(value, tf.distribute.DistributedValues):
        return value.values[0]
    return value
