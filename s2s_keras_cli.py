"""`s2s`, the command: answers `s2s`, `s2s --help` and unknown commands at once, and runs every
command (`python -m s2s_keras.cli ARGS`, which imports TensorFlow) as a child process whose
standard error it forwards without TensorFlow's C++ start-up and info lines.

Those lines (CUDA probing on a machine without a GPU, oneDNN notes, dataset optimizer notes)
are written before absl's logging is initialized, so `TF_CPP_MIN_LOG_LEVEL` no longer hides
them; they include error-level lines that are not errors here (`failed call to cuInit`,
`oneDNN supports DT_INT64 only on platforms with AVX-512`, on a machine that has it). Every
other line — Python's warnings and tracebacks, ours, TensorFlow's other errors and fatal checks
— passes through.
`TF_CPP_MIN_LOG_LEVEL=0 s2s ...` shows everything.

This module lives outside the package: importing `s2s_keras` imports Keras (it registers the
model classes), which is what the help must not wait for.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys

DESCRIPTION = "RNN encoder-decoders for Keras 3."
# Each command and its one-line help (s2s_keras.cli builds each command's arguments).
COMMANDS = {
    "train": "train a model; writes a run directory",
    "tune": "hyperparameter search with Keras Tuner",
    "evaluate": "score a split, print JSON: WER/PER/BLEU/chrF (seq2seq), accuracy (classify), "
    "perplexity (lm)",
    "predict": "decode words given on the command line (classify: their labels; lm: continue "
    "them as prompts)",
    "plot": "write a PNG: attention alignment or learning curves",
    "export": "write a TF Serving SavedModel version + .keras",
    "distill": "decode a teacher's (or an ensemble's) training sources into a student's data",
}

# TensorFlow's C++ log lines: severity, MMDD, time (seconds since the epoch before absl is
# initialized), thread, file:line]. Info and warning lines are dropped; error lines only when
# they are known not to be errors on a CPU-only machine.
_LOG_LINE = re.compile(rb"^([IWEF])\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [\w./-]+:\d+\] ")
_NOT_ERRORS = (rb"failed call to cuInit", rb"oneDNN supports DT_")  # DT_INT64, DT_BOOL, ...
_START_UP = (
    rb"WARNING: All log messages before absl::InitializeLog() is called",
    rb"To enable the following instructions:",  # the second line of cpu_feature_guard's note
)


def shown(line: bytes) -> bool:
    """Whether a line of the command's standard error reaches the terminal."""
    if line.startswith(_START_UP):
        return False
    match = _LOG_LINE.match(line)
    if match is None:
        return True
    severity = match.group(1)
    if severity in (b"I", b"W"):
        return False
    return not (severity == b"E" and any(text in line for text in _NOT_ERRORS))


def top_level_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="s2s", description=DESCRIPTION)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, text in COMMANDS.items():
        commands.add_parser(name, help=text, add_help=False)
    return parser


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] not in COMMANDS:
        top_level_parser().parse_args(argv)  # prints the help or the usage error, and exits
    command = [sys.executable, "-m", "s2s_keras.cli", *argv]
    if os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "0":
        return subprocess.call(command)
    child = subprocess.Popen(command, stderr=subprocess.PIPE)
    # Ctrl-C reaches the child too (same process group): let it stop cleanly, then report.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda number, frame: child.send_signal(number))
    output = sys.stderr.buffer
    for line in iter(child.stderr.readline, b""):
        if shown(line):
            output.write(line)
            output.flush()
    code = child.wait()
    return 128 - code if code < 0 else code  # killed by signal N: the shell's 128 + N


if __name__ == "__main__":
    sys.exit(main())
