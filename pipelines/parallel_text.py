"""Any TSV file of `source<TAB>target` lines (one pair per line, UTF-8).

Repeated sources are multiple references. Malformed lines (wrong column count, an empty side,
invalid UTF-8) raise `DataError` naming file and line, or with `on_bad_line="skip"` are counted
in the corpus' `SkipReport`. Without separate valid/test files, the pairs are split by a hash of
the source (see `pipelines.corpus.assign_split`).

Example:
    >>> corpus = load("pairs.tsv", valid_path="valid.tsv")   # doctest: +SKIP
"""

from __future__ import annotations

import os

from pipelines.corpus import Corpus, DataError, SkipReport, report_bad_line, split_pairs


def read_pairs(path: str, on_bad_line: str = "error", skipped: SkipReport | None = None,
               max_pairs: int = 0) -> list:
    if not os.path.isfile(path):
        raise DataError(path, 0, "file not found")
    pairs = []
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                pair = _parse_line(path, number, raw)
            except DataError as error:
                report_bad_line(error, on_bad_line, skipped)
                continue
            pairs.append(pair)
            if max_pairs and len(pairs) >= max_pairs:
                break
    if not pairs:
        raise DataError(path, 0, "no usable pairs in file")
    return pairs


def _parse_line(path: str, number: int, raw: bytes) -> tuple:
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise DataError(path, number, f"invalid UTF-8 at byte {error.start}") from None
    if number == 1:
        line = line.removeprefix("\ufeff")
    line = line.rstrip("\r\n")
    columns = line.split("\t")
    if len(columns) != 2:
        raise DataError(path, number, f"expected 2 tab-separated columns, got {len(columns)}")
    source, target = columns[0].strip(), columns[1].strip()
    if not source or not target:
        side = "source" if not source else "target"
        raise DataError(path, number, f"empty {side}")
    return source, target


def load(path: str, valid_path: str | None = None, test_path: str | None = None, seed: int = 1234,
         valid_fraction: float = 0.05, test_fraction: float = 0.05, on_bad_line: str = "error",
         max_pairs: int = 0) -> Corpus:
    skipped = SkipReport()
    pairs = read_pairs(path, on_bad_line, skipped, max_pairs)
    splits = split_pairs(pairs, seed,
                         0.0 if valid_path else valid_fraction, 0.0 if test_path else test_fraction)
    if valid_path:
        splits["valid"] = read_pairs(valid_path, on_bad_line, skipped)
    if test_path:
        splits["test"] = read_pairs(test_path, on_bad_line, skipped)
    return Corpus(**splits, skipped=skipped)
