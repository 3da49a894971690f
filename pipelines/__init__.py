"""Dataset recipes: each turns raw data into a `Corpus` of (source, target) string pairs.

`load_corpus(data_config)` dispatches on `data_config.source`:
  - `cmudict`                                   the embedded CMU Pronouncing Dictionary
  - `tsv:PATH[,valid=PATH][,test=PATH]`         a source<TAB>target file
"""

from __future__ import annotations

from pipelines import cmudict, parallel_text
from pipelines.corpus import Corpus, DataError, SkipReport

__all__ = ["Corpus", "DataError", "SkipReport", "load_corpus", "parse_spec"]


def parse_spec(spec: str) -> tuple:
    """`tsv:a.tsv,valid=b.tsv` -> ("tsv", "a.tsv", {"valid": "b.tsv"})."""
    kind, _, rest = spec.partition(":")
    if kind == "cmudict" and not rest:
        return "cmudict", None, {}
    if kind == "tsv" and rest:
        path, *options = rest.split(",")
        extras = {}
        for option in options:
            key, sep, value = option.partition("=")
            if not sep or key not in ("valid", "test") or not value:
                raise ValueError(f"--data {spec!r}: expected tsv:PATH[,valid=PATH][,test=PATH], "
                                 f"got option {option!r}")
            extras[key] = value
        return "tsv", path, extras
    raise ValueError(f"--data {spec!r}: expected 'cmudict' or 'tsv:PATH[,valid=PATH][,test=PATH]'")


def load_corpus(data) -> Corpus:
    """`data` is a `s2s_keras.config.DataConfig`."""
    kind, path, extras = parse_spec(data.source)
    common = dict(seed=data.seed, valid_fraction=data.valid_fraction,
                  test_fraction=data.test_fraction, on_bad_line=data.on_bad_line,
                  max_pairs=data.max_pairs)
    if kind == "cmudict":
        return cmudict.load(keep_stress=data.keep_stress, **common)
    return parallel_text.load(path, valid_path=extras.get("valid"), test_path=extras.get("test"),
                              **common)
