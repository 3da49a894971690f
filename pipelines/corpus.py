"""What every recipe returns: (source, target) string pairs per split, plus what was skipped."""

from __future__ import annotations

import dataclasses
import hashlib

SPLITS = ("train", "valid", "test")


class DataError(ValueError):
    """Malformed input data; the message names the file and the 1-based line."""

    def __init__(self, path: str, line: int, problem: str):
        super().__init__(f"{path}:{line}: {problem}")
        self.path, self.line, self.problem = path, line, problem


@dataclasses.dataclass
class SkipReport:
    """Lines dropped under `--on-bad-line skip`: counted and shown, never silent."""

    count: int = 0
    examples: list = dataclasses.field(default_factory=list)  # "path:line: problem", first few

    def add(self, error: DataError, keep: int = 5) -> None:
        self.count += 1
        if len(self.examples) < keep:
            self.examples.append(str(error))

    def __str__(self) -> str:
        if not self.count:
            return "no malformed lines"
        more = "" if self.count <= len(self.examples) else f" (first {len(self.examples)} shown)"
        return f"skipped {self.count} malformed line(s){more}:\n  " + "\n  ".join(self.examples)


def report_bad_line(error: DataError, on_bad_line: str, skipped: SkipReport | None) -> None:
    """Raises `error` (`on_bad_line="error"`) or counts it in `skipped` (`"skip"`)."""
    if on_bad_line == "skip" and skipped is not None:
        skipped.add(error)
        return
    raise error


@dataclasses.dataclass
class Corpus:
    """Pairs per split. A source repeated with different targets has several references."""

    train: list
    valid: list
    test: list
    skipped: SkipReport = dataclasses.field(default_factory=SkipReport)

    def duplicate_pairs(self) -> int:
        """Exact (source, target) repeats over all splits: kept (they weigh the pair more in
        training), counted so that a user sees them."""
        pairs = self.train + self.valid + self.test
        return len(pairs) - len(set(pairs))

    def split(self, name: str) -> list:
        if name == "all":
            return self.train + self.valid + self.test
        if name not in SPLITS:
            raise ValueError(f"--split: expected one of {SPLITS + ('all',)}, got {name!r}")
        return getattr(self, name)


def assign_split(source: str, seed: int, valid_fraction: float, test_fraction: float) -> str:
    """Deterministic split of a source string (all its targets follow it): a hash, not an RNG,
    so the split survives reordering the file and adding lines."""
    digest = hashlib.sha256(f"{seed}\t{source}".encode("utf-8")).digest()
    position = int.from_bytes(digest[:8], "big") / 2.0**64
    if position < test_fraction:
        return "test"
    if position < test_fraction + valid_fraction:
        return "valid"
    return "train"


def split_pairs(pairs, seed: int, valid_fraction: float, test_fraction: float) -> dict:
    splits = {name: [] for name in SPLITS}
    for pair in pairs:
        splits[assign_split(pair[0], seed, valid_fraction, test_fraction)].append(pair)
    return splits


def assemble(read, train, valid, test, seed: int, valid_fraction: float, test_fraction: float,
             skipped: SkipReport, max_pairs: int = 0) -> Corpus:
    """A corpus from `read(what, max_pairs) -> pairs`: `train` is read (up to `max_pairs`), and
    `valid`/`test` too when given — else they are cut from train by `assign_split`."""
    splits = split_pairs(read(train, max_pairs), seed, 0.0 if valid else valid_fraction,
                         0.0 if test else test_fraction)
    for name, what in (("valid", valid), ("test", test)):
        if what:
            splits[name] = read(what, 0)
    return Corpus(**splits, skipped=skipped)
