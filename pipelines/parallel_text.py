"""User corpora: TSV files, two aligned plain-text files, or JSON lines — each optionally gzip'd
(`.gz`) and optionally several files (a glob pattern: shards are read in sorted order).

- `tsv`: `source<TAB>target` per line.
- `parallel`: line i of the source file pairs with line i of the target file; the files must have
  the same number of lines (else an error naming both files and where they diverge).
- `jsonl`: one JSON object per line with string fields (default `source` and `target`).

Repeated sources are multiple references; exact duplicate pairs are kept and counted. Malformed
lines — wrong column count, an empty side, invalid UTF-8, a NUL byte, a line longer than
`max_line_length` characters, invalid JSON or a missing/non-string field — raise `DataError`
naming file and line, or with `on_bad_line="skip"` are counted in the corpus' `SkipReport`.
A UTF-8 BOM and CRLF line ends are accepted. Without separate valid/test files, the pairs are
split by a hash of the source (see `s2s_keras.pipelines.corpus.assign_split`).

Example:
    >>> corpus = load("tsv", ["pairs.tsv.gz"], valid=["valid.tsv"])   # doctest: +SKIP
"""

from __future__ import annotations

import glob
import gzip
import itertools
import json
import os
import typing

from s2s_keras.config import DataConfig
from s2s_keras.pipelines.corpus import Corpus, DataError, SkipReport, assemble, report_bad_line

_DATA = DataConfig  # defaults live in the config

FORMATS = ("tsv", "parallel", "jsonl")
MAX_LINE_LENGTH = _DATA.max_line_length


def expand(pattern: str) -> list:
    """A path or a glob pattern → existing files, sorted; an error when nothing matches. A file
    that exists under the very name is that file, also when the name holds `*`, `?` or `[`
    (otherwise escape them as a glob does: `[[]` for `[`, `[*]` for `*`)."""
    if os.path.exists(pattern):
        if not os.path.isfile(pattern):
            raise DataError(
                pattern,
                0,
                "not a regular file (a directory, or a device such as "
                "/dev/null); give a file of pairs",
            )
        return [pattern]
    if glob.has_magic(pattern):
        paths = sorted(glob.glob(pattern))
        if not paths:
            raise DataError(
                pattern,
                0,
                "no file matches this pattern (a literal [, * or ? in a "
                "file name is written [[], [*], [?])",
            )
        return paths
    raise DataError(pattern, 0, "file not found")


def lines(path: str, max_line_length: int = MAX_LINE_LENGTH) -> typing.Iterator:
    """`(line number, text or DataError)` for each line of a (possibly gzip'd) UTF-8 file."""
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as handle:
            for number, raw in enumerate(handle, start=1):
                yield number, _decode(path, number, raw, max_line_length)
    except (OSError, EOFError) as error:  # a truncated or non-gzip .gz file
        raise DataError(path, 0, f"cannot read: {error}") from None


def _decode(path: str, number: int, raw: bytes, max_line_length: int):
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        return DataError(path, number, f"invalid UTF-8 at byte {error.start}")
    if number == 1:
        line = line.removeprefix("\ufeff")
    line = line.rstrip("\r\n")
    if "\x00" in line:
        return DataError(path, number, f"NUL byte at character {line.index(chr(0)) + 1}")
    if len(line) > max_line_length:
        return DataError(
            path,
            number,
            f"line of {len(line)} characters, longer than the limit "
            f"{max_line_length} (data.max_line_length)",
        )
    return line


def read_pairs(
    kind: str,
    paths: typing.Sequence[str],
    on_bad_line: str = _DATA.on_bad_line,
    skipped: SkipReport | None = None,
    max_pairs: int = 0,
    fields=("source", "target"),
    max_line_length: int = MAX_LINE_LENGTH,
) -> list:
    """Pairs of one split. `paths`: for `tsv`/`jsonl` files (or patterns) read one after the
    other; for `parallel` exactly two (source file/pattern, target file/pattern)."""
    pairs = list(
        itertools.islice(
            iterate_pairs(kind, paths, on_bad_line, skipped, fields, max_line_length),
            max_pairs or None,
        )
    )
    if not pairs:
        raise DataError(", ".join(paths), 0, "no usable pairs")
    return pairs


def iterate_pairs(
    kind: str,
    paths: typing.Sequence[str],
    on_bad_line: str = _DATA.on_bad_line,
    skipped: SkipReport | None = None,
    fields=("source", "target"),
    max_line_length: int = MAX_LINE_LENGTH,
) -> typing.Iterator:
    """`read_pairs`, one pair at a time (a streamed corpus holds no more than one line)."""
    if kind not in FORMATS:
        raise ValueError(f"unknown corpus format {kind!r}; known: {FORMATS}")
    if kind == "parallel":
        records = _aligned(expand(paths[0]), expand(paths[1]), max_line_length)
    else:
        records = (
            (path, number, line)
            for pattern in paths
            for path in expand(pattern)
            for number, line in lines(path, max_line_length)
        )
    parse = {
        "tsv": _tsv,
        "jsonl": lambda p, n, line: _json(p, n, line, fields),
        "parallel": _sides,
    }[kind]
    for path, number, line in records:
        try:
            if isinstance(line, DataError):
                raise line
            pair = parse(path, number, line)
        except DataError as error:
            report_bad_line(error, on_bad_line, skipped)
            continue
        yield pair


def _aligned(source_paths, target_paths, max_line_length):
    """Line i of the sources with line i of the targets; a length mismatch is always an error
    (skipping cannot fix a misalignment)."""

    def numbered(paths):
        for path in paths:
            for number, line in lines(path, max_line_length):
                yield path, number, line

    sources, targets = numbered(source_paths), numbered(target_paths)
    end = object()
    while True:
        source, target = next(sources, end), next(targets, end)
        if source is end and target is end:
            return
        if source is end or target is end:
            longer, shorter = (
                (target_paths, source_paths) if source is end else (source_paths, target_paths)
            )
            path, number, _ = target if source is end else source
            raise DataError(
                path,
                number,
                f"the files are not aligned: {', '.join(longer)} has more lines "
                f"than {', '.join(shorter)}",
            )
        error = next((side[2] for side in (source, target) if isinstance(side[2], DataError)), None)
        yield source[0], source[1], error or (source[2], target[2], target[0], target[1])


def _tsv(path: str, number: int, line: str) -> tuple:
    columns = line.split("\t")
    if len(columns) != 2:
        raise DataError(path, number, f"expected 2 tab-separated columns, got {len(columns)}")
    return _checked(path, number, columns[0], columns[1])


def _sides(path: str, number: int, record: tuple) -> tuple:
    source, target, target_path, target_number = record
    if not target.strip():
        raise DataError(target_path, target_number, "empty target")
    return _checked(path, number, source, target)


def _json(path: str, number: int, line: str, fields) -> tuple:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise DataError(
            path, number, f"invalid JSON ({error.msg} at character {error.pos + 1})"
        ) from None
    if not isinstance(record, dict):
        raise DataError(path, number, f"expected a JSON object, got {type(record).__name__}")
    values = []
    for name in fields:
        if name not in record:
            raise DataError(path, number, f"missing field {name!r}")
        if not isinstance(record[name], str):
            raise DataError(
                path, number, f"field {name!r} is {type(record[name]).__name__}, expected a string"
            )
        values.append(record[name])
    return _checked(path, number, *values)


def _checked(path: str, number: int, source: str, target: str) -> tuple:
    source, target = source.strip(), target.strip()
    if not source or not target:
        raise DataError(path, number, f"empty {'source' if not source else 'target'}")
    return source, target


def load(
    kind: str,
    paths: typing.Sequence[str],
    valid: typing.Sequence[str] | None = None,
    test: typing.Sequence[str] | None = None,
    seed: int = _DATA.seed,
    valid_fraction: float = _DATA.valid_fraction,
    test_fraction: float = _DATA.test_fraction,
    on_bad_line: str = _DATA.on_bad_line,
    max_pairs: int = _DATA.max_pairs,
    fields=("source", "target"),
    max_line_length: int = MAX_LINE_LENGTH,
    streaming: bool = _DATA.streaming,
) -> Corpus:
    """`streaming`: the training split is a `corpus.PairStream` re-read from the files on every
    pass (see `assemble`), not a list."""
    skipped = SkipReport()

    def read(which, limit):
        return read_pairs(kind, which, on_bad_line, skipped, limit, fields, max_line_length)

    def iterate(which, report):
        return iterate_pairs(kind, which, on_bad_line, report, fields, max_line_length)

    return assemble(
        read,
        paths,
        valid,
        test,
        seed,
        valid_fraction,
        test_fraction,
        skipped,
        max_pairs,
        iterate=iterate if streaming else None,
        name=", ".join(paths),
    )
