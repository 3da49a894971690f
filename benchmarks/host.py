"""What every benchmark JSON records about the machine its numbers come from (`"host"`), and
when and how they were measured (`"measured"`): numbers are compared only within one host."""

from __future__ import annotations

import datetime
import os
import platform
import sys


def host() -> dict:
    """The CPU model, its AMX / AVX-512-BF16 flags, the cores, Python. Read here, not with
    `s2s_keras.distribute.cpu_info`: the benchmarks that time `s2s` commands do not import
    TensorFlow themselves."""
    flags, model = set(), ""
    with open("/proc/cpuinfo") as handle:
        for line in handle:
            if line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
            if line.startswith("model name") and not model:
                model = line.split(":", 1)[1].strip()
    return {
        "cpu": model,
        "amx": "amx_tile" in flags,
        "avx512_bf16": "avx512_bf16" in flags,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
    }


def measured() -> dict:
    """The command line (as typed, relative to the project) and the UTC date."""
    return {
        "command": " ".join([os.path.relpath(sys.argv[0]), *sys.argv[1:]]),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"),
    }
