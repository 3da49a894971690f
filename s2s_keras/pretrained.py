"""Models shipped inside the package, named `pretrained:NAME` wherever a run dir or a model is
expected: `s2s predict --model pretrained:g2p hello`, `s2s evaluate --run-dir pretrained:g2p`,
`s2s export --run-dir pretrained:g2p ...`, `train.init_from=pretrained:g2p`, and `G2p()`.

Each is a finished run directory, `s2s_keras/pretrained/NAME/`: the run's `config.json` and
`summary.json`, `model.keras` (the weights without optimizer state, computing in float32 so that
its outputs do not depend on a CPU's bf16 support) and `card.json` (where the data and weights
come from, the licence, how it was trained and what it scores), and possibly `rescore/`: a run
that reranks its beam (`run_dir.rescore_dirs`). `pack` writes one from a finished run
(`benchmarks/pretrained.py` runs it and measures the scores).
"""

from __future__ import annotations

import json
import os
import shutil

PREFIX = "pretrained:"
DIRECTORY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pretrained")
CARD_FILE = "card.json"


def names() -> list:
    """The shipped models' names."""
    if not os.path.isdir(DIRECTORY):
        return []
    return sorted(
        name
        for name in os.listdir(DIRECTORY)
        if os.path.isfile(os.path.join(DIRECTORY, name, CARD_FILE))
    )


def resolve(path: str) -> str:
    """`pretrained:NAME` → its directory; any other path as it is.

    Raises:
        FileNotFoundError: an unknown NAME (the error lists the shipped ones).
    """
    if not isinstance(path, str) or not path.startswith(PREFIX):
        return path
    name = path[len(PREFIX) :]
    if name not in names():
        shipped = ", ".join(PREFIX + known for known in names()) or "none"
        raise FileNotFoundError(f"{path}: no such pretrained model (shipped: {shipped})")
    return os.path.join(DIRECTORY, name)


def card(name: str) -> dict:
    """The model card of `pretrained:NAME` (`card.json`)."""
    with open(os.path.join(resolve(PREFIX + name), CARD_FILE), encoding="utf-8") as handle:
        return json.load(handle)


def pack(
    run_dir: str,
    directory: str,
    card: dict | None,
    precision: str = "float32",
    rescore: str | None = None,
    rescore_weight: float | None = None,
) -> None:
    """Writes the finished run `run_dir` into `directory` as a pretrained model: its config and
    summary, its weights in a model of `precision` without optimizer state, and `card` (None:
    none). `rescore`: a finished run packed the same way into `directory/rescore/`, which then
    reranks the model's beam with `rescore_weight` (None: the run's `decode.rescore_weight`)."""
    from s2s_keras import run_dir as run_files
    from s2s_keras.models import with_precision

    config, model = run_files.load_run(run_dir)
    shipped = with_precision(model, precision)
    if os.path.isdir(directory):
        shutil.rmtree(directory)  # nothing of an earlier pack (a rescorer) stays behind
    os.makedirs(directory)
    shipped.save(os.path.join(directory, run_files.MODEL_FILE))
    if rescore_weight is not None:
        config = config.override([f"decode.rescore_weight={rescore_weight}"])
    run_files.write_config(directory, config)
    shutil.copyfile(
        os.path.join(run_dir, run_files.SUMMARY_FILE),
        os.path.join(directory, run_files.SUMMARY_FILE),
    )
    if rescore is not None:
        pack(rescore, os.path.join(directory, run_files.RESCORE_DIR), None, precision)
    if card is not None:
        with open(os.path.join(directory, CARD_FILE), "w", encoding="utf-8") as handle:
            json.dump(card, handle, indent=2)
            handle.write("\n")


def sample(pairs, size: int = 500) -> list:
    """A fixed sample of `pairs`: `size` distinct sources spread evenly over their sorted order,
    each with all its pairs (every reference counts) — what a card's `sample` scores are on."""
    sources = sorted({source for source, _ in pairs})
    step = max(1, len(sources) // size)
    chosen = set(sources[::step][:size])
    return [(source, target) for source, target in pairs if source in chosen]
