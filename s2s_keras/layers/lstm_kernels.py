"""The LSTM training loop's fused element-wise step kernels (`lstm_kernels.cc`): a TensorFlow
op library built from source with the installed TensorFlow's headers and this machine's C++
compiler (`make install` runs `build()`), loaded on first use.

The kernels serve training only: `lstm._recurrence` runs one `S2sLstmGates` per forward step
and one `S2sLstmGatesGrad` per backward step instead of about a dozen and two dozen small ops.
Where it can, a layer runs its whole loop as one op forward and one backward instead, its
recurrent matmuls inside the op (`lstm_sequence.h`; `sequence_ops(dtype)`): in bf16 on a CPU with
AMX tiles (`amx()`; `S2sLstmSequence`, units a multiple of 32) or else with AVX-512-BF16
(`avx512_bf16()`; `S2sLstmSequenceAvx512`, units a multiple of 16), in float32 on a CPU with AVX2
and FMA (`S2sLstmSequenceFloat`, units a multiple of 16).
Inference, decoding and every export run TensorFlow's own ops, so a SavedModel never needs the
library, unless exported with `fused=True` (`lstm.fused_inference`; `register()` before loading).
Without it (not built, or built for another TensorFlow) training runs the same loop in
TensorFlow ops, with the same numbers, slower; `status()` says which and why.
"""

from __future__ import annotations

import collections
import os
import subprocess
import tempfile

import tensorflow as tf

_HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.join(_HERE, "lstm_kernels.cc")
LIBRARY = os.path.join(_HERE, "_lstm_kernels.so")
# The bf16 whole-sequence ops: AVX-512 and AMX code throughout, so loaded only where AMX or
# AVX-512-BF16 runs.
SEQUENCE_SOURCE = os.path.join(_HERE, "lstm_sequence.cc")
SEQUENCE_LIBRARY = os.path.join(_HERE, "_lstm_sequence.so")
# The float32 whole-sequence ops: AVX code as the per-step library's, the matmul AVX2 FMA code
# in functions of its own, so it loads anywhere and says itself whether it runs.
FLOAT_SEQUENCE_SOURCE = os.path.join(_HERE, "lstm_sequence_float.cc")
FLOAT_SEQUENCE_LIBRARY = os.path.join(_HERE, "_lstm_sequence_float.so")
HEADERS = [
    os.path.join(_HERE, name)
    for name in (
        "lstm_rows.h",
        "lstm_sequence.h",
        "lstm_fma.h",
        "lstm_greedy.h",
        "lstm_beam.h",
    )
]
# The per-step library: `-mavx` like TensorFlow's wheel, so that Eigen's sigmoid and tanh
# round as tf.sigmoid and tf.tanh do. The sequence library targets the CPUs with AMX or
# AVX-512-BF16 (all have these AVX-512 subsets).
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
    """Compiles `source` (`lstm_kernels.cc`, `SEQUENCE_SOURCE` or `FLOAT_SEQUENCE_SOURCE`) into
    `output` (written beside, then renamed: a process loading it never sees half a file). Raises
    `RuntimeError` with the compiler's message."""
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
    for path in (source, *HEADERS):
        if os.path.exists(path) and os.path.getmtime(library) < os.path.getmtime(path):
            return f"{library} is older than {path} (make install rebuilds it)"
    return None


def load(library: str = LIBRARY, source: str | None = None):
    """The op module (`.s2s_lstm_gates`, `.s2s_lstm_gates_grad`, `.s2s_amx_usable`; of the
    sequence libraries `.s2s_lstm_sequence[_float]`, `.s2s_lstm_sequence[_float]_grad`), or None
    with the reason kept for `status()`. Loaded once per process and path."""
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


_usable_cache: dict = {}


def _usable(key: str, op) -> bool:
    """A library's own answer (`op`, a scalar bool op) to whether this CPU runs some code of it;
    once per process and `key` (the library's path, and the question where it answers several)."""
    if key not in _usable_cache:
        with tf.init_scope():  # a Python bool even while a function is traced
            _usable_cache[key] = bool(op().numpy())
    return _usable_cache[key]


def amx(library: str = LIBRARY) -> bool:
    """Whether the CPU has AMX tiles that the operating system lets this process use (asked of
    the per-step library, which runs anywhere; once per process)."""
    module = load(library)
    return module is not None and _usable(library, module.s2s_amx_usable)


def avx512_bf16(library: str = LIBRARY) -> bool:
    """Whether the CPU has AVX-512-BF16 that the operating system lets this process use (asked
    of the per-step library; once per process)."""
    module = load(library)
    return module is not None and _usable(library + ":avx512_bf16", module.s2s_avx512_bf16_usable)


SequenceOps = collections.namedtuple("SequenceOps", "forward backward units_multiple engine")


def sequence_ops(dtype=tf.bfloat16) -> SequenceOps | None:
    """The whole-sequence ops for the compute dtype `dtype` where they run here, else None (the
    reason kept for `status()`): bf16 on AMX tiles where they run (`amx()`), else in AVX-512-BF16
    where the CPU has it (`avx512_bf16()`; that library is AVX-512 code throughout, never loaded
    elsewhere); float32 where the CPU has AVX2 and FMA."""
    dtype = tf.as_dtype(dtype)
    if dtype == tf.bfloat16:
        on_amx = amx()
        module = load(SEQUENCE_LIBRARY, SEQUENCE_SOURCE) if on_amx or avx512_bf16() else None
        if module is None:
            return None
        if on_amx:
            return SequenceOps(module.s2s_lstm_sequence, module.s2s_lstm_sequence_grad, 32, "AMX")
        forward, backward = module.s2s_lstm_sequence_avx512, module.s2s_lstm_sequence_avx512_grad
        return SequenceOps(forward, backward, 16, "AVX-512-BF16")
    if dtype == tf.float32:
        module = load(FLOAT_SEQUENCE_LIBRARY, FLOAT_SEQUENCE_SOURCE)
        if module is None or not _usable(FLOAT_SEQUENCE_LIBRARY, module.s2s_fma_usable):
            return None
        return SequenceOps(
            module.s2s_lstm_sequence_float, module.s2s_lstm_sequence_float_grad, 16, "AVX2 FMA"
        )
    return None


DecodingOps = collections.namedtuple(
    "DecodingOps", "greedy beam_search units_multiple depth_multiple engine"
)


def decoding_ops(dtype=tf.float32) -> DecodingOps | None:
    """The decoding ops (greedy search's and beam search's whole loops over an LSTM stack, one op
    each: `lstm_greedy.h`, `lstm_beam.h`) for a decoder computing in `dtype`, where they run
    here, else None: float32 on AVX2 FMA (`S2sLstmGreedy`, `S2sLstmBeamSearch`; units a multiple
    of 4), bf16 on AMX tiles (`S2sLstmGreedyAmx`, `S2sLstmBeamSearchAmx`; the embedding size and
    units multiples of 32) or else AVX-512-BF16 (`S2sLstmGreedyAvx512`, `S2sLstmBeamSearchAvx512`;
    units a multiple of 4, the embedding size even). `units_multiple` and `depth_multiple`: what
    every layer's units and input size must be multiples of (the first a multiple of the
    second)."""
    dtype = tf.as_dtype(dtype)
    if dtype == tf.float32:
        module = load(FLOAT_SEQUENCE_LIBRARY, FLOAT_SEQUENCE_SOURCE)
        if module is None or not _usable(FLOAT_SEQUENCE_LIBRARY, module.s2s_fma_usable):
            return None
        return DecodingOps(module.s2s_lstm_greedy, module.s2s_lstm_beam_search, 4, 1, "AVX2 FMA")
    if dtype == tf.bfloat16 and sequence_ops(dtype) is not None:
        module = load(SEQUENCE_LIBRARY, SEQUENCE_SOURCE)
        if amx():
            greedy, beam = module.s2s_lstm_greedy_amx, module.s2s_lstm_beam_search_amx
            return DecodingOps(greedy, beam, 32, 32, "AMX")
        greedy, beam = module.s2s_lstm_greedy_avx512, module.s2s_lstm_beam_search_avx512
        return DecodingOps(greedy, beam, 4, 2, "AVX-512-BF16")
    return None


def register(op_names=()) -> None:
    """Loads every library of kernels that runs on this CPU, registering their ops in this
    process: what loading an export traced within `lstm.fused_inference` needs. Raises
    `RuntimeError` naming those of `op_names` (the ops such an export uses) that are still
    unknown, and why."""
    from tensorflow.python.framework import op_def_registry

    load()
    sequence_ops(tf.bfloat16)
    sequence_ops(tf.float32)
    missing = [name for name in op_names if op_def_registry.get(name) is None]
    if missing:
        raise RuntimeError(
            f"the model runs the LSTM kernels {', '.join(missing)}, which this process cannot "
            f"load ({status()}): export it on this machine again, or without fused kernels"
        )


def status(library: str = LIBRARY) -> str:
    """ "fused", then the whole-sequence ops that run here ("fused, whole sequences on AMX (bf16)
    and AVX2 FMA (float32)", or AVX-512-BF16 instead of AMX), or "tensorflow ops: <why>", for
    benchmark reports and `s2s train`'s log; where a whole-sequence library should run and does
    not load, why."""
    module = load(library)
    if module is None:
        return f"tensorflow ops: {_loaded[library][1]}"
    if library != LIBRARY:  # (the sequence libraries pair with the default)
        return "fused"
    running, missing = [], []
    for dtype, sequence_library, wanted in (
        (tf.bfloat16, SEQUENCE_LIBRARY, amx() or avx512_bf16()),
        (tf.float32, FLOAT_SEQUENCE_LIBRARY, True),
    ):
        ops = sequence_ops(dtype)
        if ops is not None:
            running.append(f"{ops.engine} ({dtype.name})")
        elif wanted and _loaded.get(sequence_library, (None, None))[1]:
            missing.append(f"{dtype.name}: {_loaded[sequence_library][1]}")
    text = "fused"
    if running:
        text += ", whole sequences on " + " and ".join(running)
    if missing:
        text += "; whole sequences not in " + "; ".join(missing)
    return text
