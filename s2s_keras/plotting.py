"""PNG pictures: the attention alignment of one decoding, a run's learning curves, a search's
trials."""

from __future__ import annotations

import csv
import os

import numpy as np

from s2s_keras.prediction import load_predictor


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only; no display on servers
    from matplotlib import pyplot

    return pyplot


def plot_attention(model_path: str, word: str, output: str, beam_size: int | None = None) -> dict:
    """Decodes `word` (beam search; `beam_size=None`: the model's default), then writes a heatmap
    of the attention weights: one row per output token (the end token last), one column per
    source token. Returns `{"output": text, "source_tokens": [...], "target_tokens": [...],
    "alignment": rows}`."""
    predictor = load_predictor(model_path)
    text = predictor([word], beam_size, 1)[0][0][0]
    scored = predictor.score([word], [text])
    if "alignment" not in scored:
        raise ValueError(
            f"{model_path}: the model has no attention (model.attention=none), "
            f"so there is no alignment to plot"
        )
    source = [t.decode("utf-8") for t in scored["source_tokens"][0] if t]
    target = [t.decode("utf-8") for t in scored["tokens"][0] if t]
    weights = scored["alignment"][0][: len(target), : len(source)]

    pyplot = _pyplot()
    figure, axes = pyplot.subplots(figsize=(1.0 + 0.45 * len(source), 1.0 + 0.4 * len(target)))
    image = axes.imshow(weights, cmap="Greys", vmin=0.0, vmax=1.0, aspect="auto")
    axes.set_xticks(range(len(source)), source)
    axes.set_yticks(range(len(target)), target)
    axes.set_xlabel("source")
    axes.set_ylabel("output")
    axes.set_title(f"{word} → {text}", fontsize=9)
    figure.colorbar(image, ax=axes, fraction=0.05)
    figure.tight_layout()
    _save(figure, output)
    pyplot.close(figure)
    return {
        "output": text,
        "source_tokens": source,
        "target_tokens": target,
        "alignment": np.round(weights, 4).tolist(),
    }


def plot_history(run_dir: str, output: str) -> dict:
    """Writes loss and masked accuracy per epoch (training and validation) from
    `run_dir/history.csv`. Returns the columns plotted."""
    path = os.path.join(run_dir, "history.csv")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found: is {run_dir!r} an `s2s train` run dir?")
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        raise ValueError(f"{path}: no epochs recorded yet")
    columns = {
        name: [float(row[name]) for row in rows]
        for name in rows[0]
        if name != "epoch" and _complete(rows, name)
    }
    epochs = [int(row["epoch"]) + 1 for row in rows]

    pyplot = _pyplot()
    figure, axes = pyplot.subplots(1, 2, figsize=(10, 4))
    for axis, metric in zip(axes, ("loss", "masked_accuracy")):
        for prefix, style in (("", "-o"), ("val_", "--s")):
            if prefix + metric in columns:
                axis.plot(
                    epochs, columns[prefix + metric], style, label=(prefix or "train_") + metric
                )
        axis.set_xlabel("epoch")
        axis.set_title(metric)
        axis.grid(alpha=0.3)
        axis.legend()
    figure.suptitle(os.path.basename(os.path.abspath(run_dir)))
    figure.tight_layout()
    _save(figure, output)
    pyplot.close(figure)
    return {"epochs": epochs, **columns}


def plot_trials(scores, objective: str, output: str) -> None:
    """The objective of each tuner trial (in trial order) and the best one so far."""
    pyplot = _pyplot()
    figure, axes = pyplot.subplots(figsize=(6, 3.5))
    trials = range(1, len(scores) + 1)
    axes.plot(trials, scores, "o-", label=objective)
    axes.plot(trials, [min(scores[: i + 1]) for i in range(len(scores))], "--", label="best so far")
    axes.set_xlabel("trial")
    axes.set_ylabel(objective)
    axes.legend()
    figure.tight_layout()
    _save(figure, output)
    pyplot.close(figure)


def _complete(rows, name) -> bool:
    """A column is plotted when every epoch has a number in it."""
    return all(row.get(name) not in (None, "") for row in rows)


def _save(figure, output: str) -> None:
    directory = os.path.dirname(os.path.abspath(output))
    os.makedirs(directory, exist_ok=True)
    figure.savefig(output, dpi=120)
