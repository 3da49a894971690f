"""The LSTM training loop's fused element-wise step kernels (`lstm_kernels.cc`): a TensorFlow
op library built from source with the installed TensorFlow's headers and this machine's C++
compiler (`make install` runs `build()`), loaded on first use.

The kernels serve training only: `lstm._recurrence` runs one `S2sLstmGates` per forward step
and one `S2sLstmGatesGrad` per backward step instead of about a dozen and two dozen small ops.
Where the CPU has AMX tiles (`amx()`), a bf16 layer whose units are a multiple of 32 runs its
whole loop as one op instead, forward (`S2sLstmSequence`) and backward
(`S2sLstmSequenceGrad`), its recurrent matmuls on the tiles inside the op.
Inference, decoding and every export run TensorFlow's own ops, so a SavedModel never needs the
library. Without it (not built, or built for another TensorFlow) training runs the same loop
in TensorFlow ops, with the same numbers, slower; `status()` says which and why.
"""

from __future__ import annotations

import os
import subprocess
import tempfile

import tensorflow as tf

_HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.join(_HERE, "lstm_kernels.cc")
LIBRARY = os.path.join(_HERE, "_lstm_kernels.so")
# The whole-sequence ops: AVX-512 and AMX code throughout, so loaded only where AMX runs.
SEQUENCE_SOURCE = os.path.join(_HERE, "lstm_sequence.cc")
SEQUENCE_LIBRARY = os.path.join(_HERE, "_lstm_sequence.so")
SHARED_HEADER = os.path.join(_HERE, "lstm_rows.h")
# The per-step library: `-mavx` like TensorFlow's wheel, so that Eigen's sigmoid and tanh
# round as tf.sigmoid and tf.tanh do. The sequence library targets the CPUs with AMX (all have
# these AVX-512 subsets).
STEP_FLAGS = ["-mavx"]
SEQUENCE_FLAGS = [
    "-mavx512f",
    "-mavx512bw",
    "-mavx512dq",
    "-mavx512vl",
    "-mavx512bf16",
    "-mavx2",
    "-mfma",
    "-mf16c",
    "-mamx-tile",
    "-mamx-bf16",
]

_loaded: dict = {}


def compile_command(output: str, source: str | None = None) -> list:
    """The compiler call: TensorFlow's own compile and link flags (its ABI, its headers) and the
    source's instruction sets (`SEQUENCE_FLAGS` for `SEQUENCE_SOURCE`, else `STEP_FLAGS`)."""
    source = SOURCE if source is None else source
    return [
        os.environ.get("CXX", "g++"),
        *tf.sysconfig.get_compile_flags(),
        "-shared",
        "-fPIC",
        "-O3",
        *(SEQUENCE_FLAGS if source == SEQUENCE_SOURCE else STEP_FLAGS),
        "-Wno-deprecated-declarations",
        "-o",
        output,
        source,
        *tf.sysconfig.get_link_flags(),
    ]


def build(output: str = LIBRARY, source: str | None = None) -> str:
    """Compiles `source` (`lstm_kernels.cc`, or `SEQUENCE_SOURCE`) into `output` (written beside,
    then renamed: a process loading it never sees half a file). Raises `RuntimeError` with the
    compiler's message."""
    source = SOURCE if source is None else source
    directory = os.path.dirname(os.path.abspath(output))
    handle, staged = tempfile.mkstemp(suffix=".so", dir=directory)
    os.close(handle)
    try:
        result = subprocess.run(compile_command(staged, source), capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(
                f"building the LSTM kernels ({source}) failed:\n{result.stderr.strip()}"
            )
        os.chmod(staged, 0o755)  # mkstemp's 0600 would hide it from other users
        os.replace(staged, output)
    finally:
        if os.path.exists(staged):
            os.remove(staged)
    return output


def _stale(library: str, source: str) -> str | None:
    if not os.path.exists(library):
        return f"{library} is not built (make install builds it)"
    for path in (source, SHARED_HEADER):
        if os.path.exists(path) and os.path.getmtime(library) < os.path.getmtime(path):
            return f"{library} is older than {path} (make install rebuilds it)"
    return None


def load(library: str = LIBRARY, source: str | None = None):
    """The op module (`.s2s_lstm_gates`, `.s2s_lstm_gates_grad`, `.s2s_amx_usable`; of the
    sequence library `.s2s_lstm_sequence`, `.s2s_lstm_sequence_grad`), or None with the reason
    kept for `status()`. Loaded once per process and path."""
    if library not in _loaded:
        reason = _stale(library, SOURCE if source is None else source)
        module = None
        if reason is None:
            try:
                module = tf.load_op_library(library)
            except (tf.errors.NotFoundError, OSError) as error:  # another TensorFlow's build
                reason = f"{library} does not load ({error}); make install rebuilds it"
        _loaded[library] = (module, reason)
    return _loaded[library][0]


_amx: dict = {}


def amx(library: str = LIBRARY) -> bool:
    """Whether the CPU has AMX tiles that the operating system lets this process use (asked of
    the per-step library, which runs anywhere; once per process)."""
    module = load(library)
    if module is None:
        return False
    if library not in _amx:
        with tf.init_scope():  # a Python bool even while a function is traced
            _amx[library] = bool(module.s2s_amx_usable().numpy())
    return _amx[library]


def sequence_ops(library: str = SEQUENCE_LIBRARY):
    """The whole-sequence op module where AMX runs and the library loads, else None (the reason
    kept for `status()`). Never loaded elsewhere: its code is AVX-512 and AMX throughout."""
    if not amx():
        return None
    return load(library, SEQUENCE_SOURCE)


def status(library: str = LIBRARY) -> str:
    """ "fused", "fused, whole sequences on AMX" or "tensorflow ops: <why>", for benchmark
    reports and `s2s train`'s log (with why the whole-sequence ops do not run, where AMX does)."""
    module = load(library)
    if module is None:
        return f"tensorflow ops: {_loaded[library][1]}"
    if library != LIBRARY or not amx(library):  # (the sequence library pairs with the default)
        return "fused"
    if sequence_ops() is None:
        return f"fused; whole sequences not: {_loaded[SEQUENCE_LIBRARY][1]}"
    return "fused, whole sequences on AMX"
