"""The LSTM training loop's fused element-wise step kernels (`lstm_kernels.cc`): a TensorFlow
op library built from source with the installed TensorFlow's headers and this machine's C++
compiler (`make install` runs `build()`), loaded on first use.

The kernels serve training only: `lstm._recurrence` runs one `S2sLstmGates` per forward step
and one `S2sLstmGatesGrad` per backward step instead of about a dozen and two dozen small ops.
Inference, decoding and every export run TensorFlow's own ops, so a SavedModel never needs the
library. Without it (not built, or built for another TensorFlow) training runs the same loop
in TensorFlow ops, with the same numbers, slower; `status()` says which and why.
"""

from __future__ import annotations

import os
import subprocess
import tempfile

import tensorflow as tf

SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lstm_kernels.cc")
LIBRARY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_lstm_kernels.so")

_loaded: dict = {}


def compile_command(output: str) -> list:
    """The compiler call: TensorFlow's own compile and link flags (its ABI, its headers),
    `-mavx` like TensorFlow's wheel so Eigen's sigmoid and tanh round as tf.sigmoid/tf.tanh."""
    return [
        os.environ.get("CXX", "g++"),
        *tf.sysconfig.get_compile_flags(),
        "-shared",
        "-fPIC",
        "-O3",
        "-mavx",
        "-Wno-deprecated-declarations",
        "-o",
        output,
        SOURCE,
        *tf.sysconfig.get_link_flags(),
    ]


def build(output: str = LIBRARY) -> str:
    """Compiles `lstm_kernels.cc` into `output` (written beside, then renamed: a process loading
    it never sees half a file). Raises `RuntimeError` with the compiler's message."""
    directory = os.path.dirname(os.path.abspath(output))
    handle, staged = tempfile.mkstemp(suffix=".so", dir=directory)
    os.close(handle)
    try:
        result = subprocess.run(compile_command(staged), capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(
                f"building the LSTM kernels ({SOURCE}) failed:\n{result.stderr.strip()}"
            )
        os.chmod(staged, 0o755)  # mkstemp's 0600 would hide it from other users
        os.replace(staged, output)
    finally:
        if os.path.exists(staged):
            os.remove(staged)
    return output


def _stale(library: str) -> str | None:
    if not os.path.exists(library):
        return f"{library} is not built (make install builds it)"
    if os.path.getmtime(library) < os.path.getmtime(SOURCE):
        return f"{library} is older than {SOURCE} (make install rebuilds it)"
    return None


def load(library: str = LIBRARY):
    """The op module (`.s2s_lstm_gates`, `.s2s_lstm_gates_grad`), or None with the reason kept
    for `status()`. Loaded once per process and path."""
    if library not in _loaded:
        reason = _stale(library)
        module = None
        if reason is None:
            try:
                module = tf.load_op_library(library)
            except (tf.errors.NotFoundError, OSError) as error:  # another TensorFlow's build
                reason = f"{library} does not load ({error}); make install rebuilds it"
        _loaded[library] = (module, reason)
    return _loaded[library][0]


def status(library: str = LIBRARY) -> str:
    """ "fused" or "tensorflow ops: <why>", for benchmark reports and `s2s train`'s log."""
    module = load(library)
    return "fused" if module is not None else f"tensorflow ops: {_loaded[library][1]}"
