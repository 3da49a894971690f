"""`--strategy` names → `tf.distribute` strategies.

`train.batch_size` is always the GLOBAL batch size: each of R replicas gets `batch_size / R`
examples per step, so a run's optimization does not change with the number of devices.
"""

from __future__ import annotations

import os

import tensorflow as tf

from s2s_keras.keras_workarounds import patch_multi_worker_log_reduction


def configure_devices(cpu_devices: int) -> None:
    """Splits the CPU into `cpu_devices` logical devices (0 or 1: leave it whole), so that
    MirroredStrategy can run replicas on a CPU-only host. TensorFlow allows this only before
    its runtime starts: call it before any op runs."""
    if cpu_devices <= 1:
        return
    cpu = tf.config.list_physical_devices("CPU")[0]
    current = tf.config.get_logical_device_configuration(cpu)
    if current is not None and len(current) == cpu_devices:
        return
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * cpu_devices
        )
    except RuntimeError as error:
        raise ValueError(
            f"train.cpu_devices={cpu_devices}: TensorFlow has already started in this process "
            f"({error}); set it before anything else runs (the `s2s` command does)"
        ) from None


def get_strategy(name: str, cpu_devices: int = 0) -> tf.distribute.Strategy:
    """`auto`: MirroredStrategy when several GPUs (or logical CPU devices) are visible, else one
    device; `one_device`: the first GPU or the CPU; `mirrored`: all visible GPUs / logical CPUs;
    `multi_worker`: MultiWorkerMirroredStrategy over the cluster in `TF_CONFIG` (RING
    collectives); `tpu`: TPUStrategy on the TPU that `TPUClusterResolver` finds."""
    configure_devices(cpu_devices)
    if name == "multi_worker":
        if "TF_CONFIG" not in os.environ:
            raise ValueError(
                "--strategy multi_worker: TF_CONFIG is not set (it names the cluster's workers "
                "and this process's task; see docs/training.md)"
            )
        patch_multi_worker_log_reduction()
        options = tf.distribute.experimental.CommunicationOptions(
            implementation=tf.distribute.experimental.CommunicationImplementation.RING
        )
        return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    if name == "tpu":
        try:
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
            tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)
        except (ValueError, RuntimeError, tf.errors.OpError) as error:
            raise ValueError(f"--strategy tpu: no TPU found ({error})") from None
        return tf.distribute.TPUStrategy(resolver)
    gpus = tf.config.list_logical_devices("GPU")
    cpus = tf.config.list_logical_devices("CPU")
    devices = [d.name for d in (gpus or cpus)]
    if name == "auto":
        name = "mirrored" if len(devices) > 1 else "one_device"
    if name == "one_device":
        return tf.distribute.OneDeviceStrategy(devices[0])
    if name == "mirrored":
        return tf.distribute.MirroredStrategy(devices)
    raise ValueError(
        f"--strategy: expected auto, one_device, mirrored, multi_worker or tpu, got {name!r}"
    )
