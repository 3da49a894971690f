"""Adam with each variable's update as one TensorFlow op; a cosine decay whose length can change.

`keras.optimizers.Adam` updates a variable with about a dozen ops, each reading and writing a
tensor of the variable's size (the difference, the product, the square, the assignments of m
and v, the square root, the quotient, the assignment of the variable). TensorFlow's own
`ResourceApplyAdam` computes the same update in one pass:

    m += (g - m)·(1 - β₁),  v += (g² - v)·(1 - β₂),
    θ -= (m·α) / (√v + ε),  α = lr·√(1 - β₂ᵗ) / (1 - β₁ᵗ)

— the operations of Keras' Adam in the same order; only 1 − β rounds differently (in float32
here, in double then float32 there: a relative 5e-5 for β₂ = 0.999). An embedding's gradient
(IndexedSlices) updates as the dense gradient it sums to. Everything else (schedules,
clipping, loss scaling, the distribution strategy's updates, saving) is Keras' Adam's; AMSGrad
runs Keras' own update. `benchmarks/train_ab.py --lever adam`
times the two.

`CosineDecay` is Keras' with its decay length in a variable, which a time budget
(`time_budget.py`) sets while training runs without retracing the training step.
"""

from __future__ import annotations

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="s2s_keras")
class Adam(keras.optimizers.Adam):
    """`keras.optimizers.Adam` whose per-variable update is `ResourceApplyAdam`."""

    def update_step(self, gradient, variable, learning_rate):
        if self.amsgrad:
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        step = tf.cast(self.iterations + 1, dtype)
        beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
        index = self._get_variable_index(variable)
        if isinstance(gradient, tf.IndexedSlices):  # an embedding's: rows repeated add up
            gradient = tf.convert_to_tensor(gradient)
        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle,
            m=self._momentums[index].value.handle,
            v=self._velocities[index].value.handle,
            beta1_power=tf.pow(beta_1, step),
            beta2_power=tf.pow(beta_2, step),
            lr=tf.cast(learning_rate, dtype),
            beta1=beta_1,
            beta2=beta_2,
            epsilon=tf.cast(self.epsilon, dtype),
            grad=tf.cast(gradient, dtype),
        )


@keras.saving.register_keras_serializable(package="s2s_keras")
class CosineDecay(keras.optimizers.schedules.CosineDecay):
    """`keras.optimizers.schedules.CosineDecay` whose `decay_steps` is a variable: assigning it
    (`set_decay_steps`) changes the rate of the training step already traced; `get_config`
    records its current value."""

    def __init__(self, initial_learning_rate, decay_steps, **kwargs):
        self._decay_steps = tf.Variable(float(decay_steps), trainable=False, name="decay_steps")
        super().__init__(initial_learning_rate, decay_steps, **kwargs)

    @property
    def decay_steps(self):
        return self._decay_steps

    @decay_steps.setter
    def decay_steps(self, value):
        self.set_decay_steps(value)

    def set_decay_steps(self, value) -> None:
        self._decay_steps.assign(float(value))

    def get_config(self):
        return {**super().get_config(), "decay_steps": int(self._decay_steps.numpy())}
