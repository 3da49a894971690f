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


def patch_multi_worker_log_reduction() -> None:
    """tensorflow/tensorflow#72388 (in Keras 3's TF trainer): under MultiWorkerMirroredStrategy,
    `fit`/`evaluate` reduce their logs — scalars — with `strategy.reduce("MEAN", v, axis=0)`,
    which fails ("Invalid reduction dimension 0 for input with 0 dimensions"). Scalars are
    reduced with `axis=None` instead; everything else goes to Keras's own function. Installed
    once per process by `get_strategy("multi_worker")`."""
    from keras.src.backend.tensorflow import trainer as tf_trainer

    original = tf_trainer.reduce_per_replica
    if getattr(original, "s2s_patched", False):
        return

    def reduce_per_replica(values, strategy, reduction):
        if reduction not in ("auto", "mean") or not tf_trainer._collective_all_reduce_multi_worker(
            strategy
        ):
            return original(values, strategy, reduction)

        def reduce(value):
            if not isinstance(value, tf.distribute.DistributedValues):
                return value
            if strategy.experimental_local_results(value)[0].shape.rank == 0:
                return strategy.reduce("MEAN", value, axis=None)
            return original(value, strategy, reduction)

        return tree.map_structure(reduce, values)

    reduce_per_replica.s2s_patched = True
    tf_trainer.reduce_per_replica = reduce_per_replica
