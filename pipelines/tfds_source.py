"""`tfds:NAME[/CONFIG]`: any TensorFlow Datasets dataset with supervised keys (source, target),
e.g. `ted_hrlr_translate/pt_to_en` or `wmt14_translate/fr-en`.

TFDS downloads and prepares the data the first time (network needed then, into
`~/tensorflow_datasets` or `data_dir=`); nothing here downloads on its own. Splits: `train`, and
`validation`/`valid`/`dev` and `test` where the dataset has them, else cut from train by the same
hash split as every recipe. Empty sides are malformed examples, named `tfds:NAME/SPLIT:INDEX`.
"""

from __future__ import annotations

from s2s_keras.config import DataConfig
from s2s_keras.pipelines.corpus import Corpus, DataError, SkipReport, assemble, report_bad_line

_DATA = DataConfig  # defaults live in the config

_VALID_NAMES = ("validation", "valid", "dev")


def read_pairs(
    name: str,
    split: str,
    data_dir: str | None = None,
    on_bad_line: str = _DATA.on_bad_line,
    skipped: SkipReport | None = None,
    max_pairs: int = 0,
) -> list:
    import tensorflow_datasets as tfds

    try:
        dataset = tfds.load(name, split=split, as_supervised=True, data_dir=data_dir)
    except Exception as error:  # tfds raises many types: name, split, download, preparation
        raise ValueError(
            f"--data tfds:{name}: cannot load split {split!r} ({type(error).__name__}: {error})"
        ) from None
    where = f"tfds:{name}/{split}"
    pairs = []
    for index, (source, target) in enumerate(tfds.as_numpy(dataset), start=1):
        try:
            pair = tuple(_text(where, index, value) for value in (source, target))
            if not pair[0] or not pair[1]:
                raise DataError(where, index, f"empty {'source' if not pair[0] else 'target'}")
        except DataError as error:
            report_bad_line(error, on_bad_line, skipped)
            continue
        pairs.append(pair)
        if max_pairs and len(pairs) >= max_pairs:
            break
    if not pairs:
        raise DataError(where, 0, "no usable pairs")
    return pairs


def _text(where: str, index: int, value) -> str:
    if not isinstance(value, bytes):
        raise DataError(where, index, f"expected text features, got {type(value).__name__}")
    try:
        return value.decode("utf-8").strip()
    except UnicodeDecodeError as error:
        raise DataError(where, index, f"invalid UTF-8 at byte {error.start}") from None


def load(
    name: str,
    data_dir: str | None = None,
    seed: int = _DATA.seed,
    valid_fraction: float = _DATA.valid_fraction,
    test_fraction: float = _DATA.test_fraction,
    on_bad_line: str = _DATA.on_bad_line,
    max_pairs: int = _DATA.max_pairs,
) -> Corpus:
    import tensorflow_datasets as tfds

    try:
        info = tfds.builder(name, data_dir=data_dir).info
    except Exception as error:
        raise ValueError(
            f"--data tfds:{name}: unknown or unreadable dataset ({type(error).__name__}: {error})"
        ) from None
    if not info.supervised_keys:
        raise ValueError(f"--data tfds:{name}: the dataset has no supervised keys (source, target)")
    # Without prepared metadata (first use, or tfds.testing.mock_data) the usual names are tried.
    available = set(info.splits.keys()) or {"train", "validation", "test"}
    valid_split = next((name for name in _VALID_NAMES if name in available), None)
    test_split = "test" if "test" in available else None
    skipped = SkipReport()

    def read(split, limit):
        return read_pairs(name, split, data_dir, on_bad_line, skipped, limit)

    return assemble(
        read,
        "train",
        valid_split,
        test_split,
        seed,
        valid_fraction,
        test_fraction,
        skipped,
        max_pairs,
    )
