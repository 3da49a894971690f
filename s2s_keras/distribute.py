"""`--strategy` names → `tf.distribute` strategies; `--precision auto` → the device's fastest.

`train.batch_size` is always the GLOBAL batch size: each of R replicas gets `batch_size / R`
examples per step, so a run's optimization does not change with the number of devices.
"""

from __future__ import annotations

import os

import tensorflow as tf

from s2s_keras.keras_workarounds import patch_multi_worker_log_reduction


def cpu_info(path: str = "/proc/cpuinfo") -> tuple[str, set]:
    """`(model name, feature flags)` of the first CPU in `path` (x86 `flags`, Arm `Features`);
    `("", set())` where there is no such file."""
    model, flags = "", set()
    try:
        with open(path) as handle:
            for line in handle:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in ("flags", "Features") and not flags:
                    flags = set(value.split())
                if key == "model name" and not model:
                    model = value.strip()
    except OSError:
        pass
    return model, flags


# CPU flags of native bf16 matmuls: AVX-512-BF16, AMX, Arm's BF16 extension.
NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})


def resolve_precision(name: str) -> str:
    """`train.precision` as a model computes: `auto` → `mixed_bfloat16` where matmuls have
    native bf16 (a GPU of compute capability >= 8.0; without a GPU, a CPU flag in
    `NATIVE_BF16_FLAGS`), else `float32` (emulated bf16 is slower: on an AVX2-only CPU see
    `train-speed-avx2.json`); any other name stays itself."""
    if name != "auto":
        return name
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        native = tuple(details.get("compute_capability", (0, 0))) >= (8, 0)
    else:
        native = bool(NATIVE_BF16_FLAGS & cpu_info()[1])
    return "mixed_bfloat16" if native else "float32"


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
    """`auto`: MirroredStrategy when several GPUs (or logical CPU devices) are visible, else
    TensorFlow's default strategy (no distribution); `one_device`: OneDeviceStrategy on the
    first GPU or the CPU; `mirrored`: all visible GPUs / logical CPUs;
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
        if len(devices) == 1:
            # TensorFlow's default strategy: the same device, without OneDeviceStrategy's
            # distributed steps and dataset (1.1-1.3x longer epochs on 2 CPU cores)
            return tf.distribute.get_strategy()
        name = "mirrored"
    if name == "one_device":
        return tf.distribute.OneDeviceStrategy(devices[0])
    if name == "mirrored":
        return tf.distribute.MirroredStrategy(devices)
    raise ValueError(
        f"--strategy: expected auto, one_device, mirrored, multi_worker or tpu, got {name!r}"
    )
