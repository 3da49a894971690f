"""TensorFlow's oneDNN ops on every x86 CPU, where the user has not chosen.

TensorFlow's x86 wheels turn their oneDNN ops (`_MklMatMul` and the graph rewrites around them)
on by default only on CPUs with AVX-512 VNNI, AVX-512 BF16 or AMX; elsewhere — AVX2 CPUs such
as AMD EPYC before Zen 4 — a float32 matmul runs Eigen's kernels, and this package's models
train about 1.3× slower (`benchmarks/onednn_ab.py`, `onednn-ab-avx2.json`). The switch,
`TF_ENABLE_ONEDNN_OPTS`, is read once, when TensorFlow is imported: `s2s_keras` sets it first
thing, so it holds for the `s2s` command and for programs that import `s2s_keras` before
TensorFlow. A value already in the environment (`0` or `1`) is kept.
"""

from __future__ import annotations

import os
import platform
import sys

VARIABLE = "TF_ENABLE_ONEDNN_OPTS"


def set_onednn_default() -> bool:
    """Sets `TF_ENABLE_ONEDNN_OPTS=1` on x86 when it is unset and TensorFlow is not imported yet.
    Returns whether it set it."""
    if VARIABLE in os.environ or "tensorflow" in sys.modules:
        return False
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    os.environ[VARIABLE] = "1"
    return True


def onednn_enabled() -> bool:
    """Whether this process's TensorFlow runs its oneDNN ops (imports TensorFlow)."""
    from tensorflow.python.util import _pywrap_util_port

    return bool(_pywrap_util_port.IsMklEnabled())
