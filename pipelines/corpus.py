"""What every recipe returns: (source, target) string pairs per split, plus what was skipped."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import typing

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

    def merge(self, other: "SkipReport", keep: int = 5) -> None:
        self.count += other.count
        self.examples.extend(other.examples[: max(0, keep - len(self.examples))])

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


class PairStream:
    """The training split of a streamed corpus (`data.streaming`): read from its files on every
    pass, never held in memory. Iterating yields its (source, target) pairs in file order.

    Memory is one line at a time. Malformed lines are reported on the first complete pass (an
    error naming file and line, or counted into `skipped`); later passes drop the same lines
    without counting them again. `len()` is known after one complete pass (made on demand).

    Args:
        iterate: `iterate(skip_report) -> iterator` of every usable pair of the files, in order.
        split_of: `split_of(source) -> "train" | "valid" | "test"`; only "train" pairs are yielded.
        skipped: the corpus' `SkipReport`.
        name: what to call the files in an error ("no usable training pairs").
    """

    def __init__(
        self, iterate: typing.Callable, split_of: typing.Callable, skipped: SkipReport, name: str
    ):
        self._iterate, self._split_of, self._skipped, self.name = iterate, split_of, skipped, name
        self.count: int | None = None  # training pairs, after the first complete pass

    def __iter__(self) -> typing.Iterator:
        return self._pass()

    def __len__(self) -> int:
        if self.count is None:
            for _ in self:
                pass
        return self.count

    def __bool__(self) -> bool:
        return True  # an empty stream is an error on its first pass, not a falsy corpus

    def held_out(self) -> dict:
        """One complete pass that keeps the pairs `split_of` sends to valid and test."""
        held = {"valid": [], "test": []}
        for _ in self._pass(held):
            pass
        return held

    def _pass(self, held: dict | None = None) -> typing.Iterator:
        report, count = SkipReport(), 0
        for pair in self._iterate(report):
            split = self._split_of(pair[0])
            if split != "train":
                if held is not None:
                    held[split].append(pair)
                continue
            count += 1
            yield pair
        # Only reached when the pass was read to its end.
        if not count:
            raise DataError(self.name, 0, "no usable training pairs")
        if self.count is None:
            self.count = count
            self._skipped.merge(report)


@dataclasses.dataclass
class Corpus:
    """Pairs per split. A source repeated with different targets has several references.
    `train` is a list, or a `PairStream` when the corpus is streamed (`data.streaming`)."""

    train: list | PairStream
    valid: list
    test: list
    skipped: SkipReport = dataclasses.field(default_factory=SkipReport)

    @property
    def streamed(self) -> bool:
        return isinstance(self.train, PairStream)

    def duplicate_pairs(self) -> int | None:
        """Exact (source, target) repeats over all splits: kept (they weigh the pair more in
        training), counted so that a user sees them. None for a streamed corpus: counting them
        would need every pair in memory."""
        if self.streamed:
            return None
        pairs = self.train + self.valid + self.test
        return len(pairs) - len(set(pairs))

    def describe(self) -> str:
        """The split sizes, duplicates and skipped lines, in one line for the training log."""
        duplicates = self.duplicate_pairs()
        duplicates = (
            "exact duplicate pairs not counted when streaming"
            if duplicates is None
            else f"{duplicates} exact duplicate pairs kept"
        )
        streamed = " (streamed)" if self.streamed else ""
        return (
            f"train {len(self.train)}{streamed} valid {len(self.valid)} test {len(self.test)} "
            f"pairs ({duplicates}); {self.skipped}"
        )

    def split(self, name: str) -> list:
        """A split as a list (a streamed training split is read into memory here)."""
        if name == "all":
            return list(self.train) + self.valid + self.test
        if name not in SPLITS:
            raise ValueError(f"--split: expected one of {SPLITS + ('all',)}, got {name!r}")
        return list(getattr(self, name))


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


def assemble(
    read,
    train,
    valid,
    test,
    seed: int,
    valid_fraction: float,
    test_fraction: float,
    skipped: SkipReport,
    max_pairs: int = 0,
    iterate=None,
    name: str = "",
) -> Corpus:
    """A corpus from `read(what, max_pairs) -> pairs`: `train` is read (up to `max_pairs`), and
    `valid`/`test` too when given — else they are cut from train by `assign_split`.

    Streamed (`iterate(what, skip_report) -> iterator of pairs` given): the training split is a
    `PairStream` over `train`, split by the same `assign_split` (so the same pairs land in each
    split as when read into memory); valid/test are read into memory, from their own files or,
    when cut from train, by one streaming pass that keeps only them."""
    valid_fraction, test_fraction = (
        (0.0 if valid else valid_fraction),
        (0.0 if test else test_fraction),
    )
    if iterate is None:
        splits = split_pairs(read(train, max_pairs), seed, valid_fraction, test_fraction)
    else:

        def split_of(source):
            return assign_split(source, seed, valid_fraction, test_fraction)

        stream = PairStream(
            lambda report: itertools.islice(iterate(train, report), max_pairs or None),
            split_of,
            skipped,
            name,
        )
        held = stream.held_out() if valid_fraction or test_fraction else {"valid": [], "test": []}
        splits = {"train": stream, **held}
    for split, what in (("valid", valid), ("test", test)):
        if what:
            splits[split] = read(what, 0)
    return Corpus(**splits, skipped=skipped)
