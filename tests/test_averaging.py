import json

import numpy as np
import pytest
from conftest import write_reversal_pairs

from s2s_keras import averaging
from s2s_keras.config import ConfigError, preset
from s2s_keras.run_state import RunState


def test_epoch_weights_keep_the_last_n_and_average_is_their_mean(tmp_path, tiny_model):
    callback = averaging.EpochWeights(str(tmp_path), keep=2)
    callback.set_model(tiny_model)
    original = tiny_model.get_weights()
    for epoch in range(3):  # weights w + epoch at the end of each epoch
        tiny_model.set_weights(
            [w + epoch if np.issubdtype(w.dtype, np.floating) else w for w in original]
        )
        callback.on_epoch_end(epoch)
    paths = averaging.epoch_files(str(tmp_path))
    assert [p.rsplit("/", 1)[1] for p in paths] == ["epoch-0002.npz", "epoch-0003.npz"]
    mean = averaging.average(tiny_model, paths)
    for value, weight in zip(mean, original):
        if np.issubdtype(weight.dtype, np.floating):
            np.testing.assert_allclose(value, weight + 1.5, rtol=1e-6)
        else:
            np.testing.assert_array_equal(value, weight)  # seed states: the last file's


def test_average_names_a_file_of_another_model(tmp_path, tiny_model):
    path = tmp_path / "epoch-0001.npz"
    np.savez(path, w0=np.zeros(3))
    with pytest.raises(ValueError, match="epoch-0001.npz: holds another model's weights"):
        averaging.average(tiny_model, [str(path)])


def test_keep_better_keeps_the_best_epoch_when_the_average_is_worse(tmp_path, tiny_model):
    callback = averaging.EpochWeights(str(tmp_path), keep=3)
    callback.set_model(tiny_model)
    callback.on_epoch_end(0)
    best = [w + 1.0 if np.issubdtype(w.dtype, np.floating) else w for w in tiny_model.get_weights()]
    tiny_model.set_weights(best)

    def state(best, direction):
        run_state = RunState(str(tmp_path), "val_loss", 3, 0, direction)
        run_state.state["best"] = best
        return run_state

    worse = averaging.keep_better(tiny_model, 3, lambda: 2.0, state(1.0, "min"))
    assert worse == {"epochs": [1], "value": 2.0, "best_epoch_value": 1.0, "kept": False}
    np.testing.assert_array_equal(tiny_model.get_weights()[0], best[0])
    better = averaging.keep_better(tiny_model, 3, lambda: 0.5, state(1.0, "min"))
    assert better["kept"]
    np.testing.assert_allclose(tiny_model.get_weights()[0], best[0] - 1.0, atol=1e-6)
    higher = averaging.keep_better(tiny_model, 3, lambda: 0.9, state(0.8, "max"))
    assert higher["kept"]


def write_pairs(tmp_path, count: int = 200) -> str:
    return write_reversal_pairs(tmp_path, count, max_length=5)


def test_training_averages_the_last_epochs_picked_by_validation_wer(tmp_path):
    from s2s_keras.run_dir import load_model
    from s2s_keras.training import train

    config = preset("tiny").override(
        [
            f"data.source=tsv:{write_pairs(tmp_path)}",
            "train.epochs=3",
            "train.batch_size=16",
            "train.best_metric=val_wer",
            "train.average_last=2",
        ]
    )
    run_dir = tmp_path / "run"
    model = train(config, str(run_dir), verbose=0)
    summary = json.loads((run_dir / "summary.json").read_text())
    wers = summary["history"]["val_wer"]
    assert len(wers) == 3
    averaged = summary["averaged"]
    assert averaged["epochs"] == [2, 3] and averaged["best_epoch_value"] == min(wers)
    assert 0.0 <= averaged["value"] <= 1.0
    paths = averaging.epoch_files(str(run_dir))
    expected = (
        averaging.average(model, paths)
        if averaged["kept"]
        else load_model(str(run_dir / "checkpoints" / "best.keras")).get_weights()
    )
    for value, weight in zip(load_model(str(run_dir / "model.keras")).get_weights(), expected):
        np.testing.assert_allclose(value, weight, rtol=1e-6)


def test_best_metric_must_be_an_objective_of_the_task():
    with pytest.raises(ConfigError, match="train.best_metric: expected one of .*val_wer"):
        preset("tiny").override(["train.best_metric=bleu"])
    with pytest.raises(ConfigError, match="train.best_metric"):
        preset("tiny").override(["task=lm", "train.best_metric=val_wer"])
