"""`--strategy` names → `tf.distribute` strategies."""

from __future__ import annotations

import tensorflow as tf


def get_strategy(name: str) -> tf.distribute.Strategy:
    """`auto`: MirroredStrategy when several GPUs (or logical CPU devices) are visible, else one
    device; `one_device`: the first GPU or the CPU; `mirrored`: all visible GPUs / logical CPUs."""
    gpus = tf.config.list_logical_devices("GPU")
    cpus = tf.config.list_logical_devices("CPU")
    devices = [d.name for d in (gpus or cpus)]
    if name == "auto":
        name = "mirrored" if len(devices) > 1 else "one_device"
    if name == "one_device":
        return tf.distribute.OneDeviceStrategy(devices[0])
    if name == "mirrored":
        return tf.distribute.MirroredStrategy(devices)
    raise ValueError(f"--strategy: expected auto, one_device or mirrored, got {name!r}")
