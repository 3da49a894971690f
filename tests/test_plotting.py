import os

import numpy as np
import pytest
from conftest import REPO, run_cli

from s2s_keras.plotting import plot_attention, plot_history


def test_attention_plot_of_a_keras_file(tmp_path):
    import keras

    from s2s_keras import Seq2Seq

    keras.utils.set_random_seed(2)
    model = Seq2Seq(
        list("abcdef"),
        ["X", "Y", "Z", "W"],
        embedding_size=8,
        hidden_units=8,
        num_layers=1,
        attention="luong_general",
        bidirectional=True,
        bridge="dense",
    )
    model.save(tmp_path / "m.keras")
    result = plot_attention(
        str(tmp_path / "m.keras"), "Abc", str(tmp_path / "out" / "a.png"), beam_size=2
    )
    assert os.path.getsize(tmp_path / "out" / "a.png") > 1000
    assert result["source_tokens"] == ["a", "b", "c"]
    assert result["target_tokens"][-1] == "</s>"
    np.testing.assert_allclose(np.sum(result["alignment"], axis=1), 1.0, atol=1e-3)

    plain = Seq2Seq(list("abc"), ["X"], embedding_size=4, hidden_units=4, num_layers=1)
    plain.save(tmp_path / "plain.keras")
    with pytest.raises(ValueError, match="has no attention"):
        plot_attention(str(tmp_path / "plain.keras"), "abc", str(tmp_path / "b.png"))


def test_history_plot_and_cli_errors(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "history.csv").write_text(
        "epoch,loss,masked_accuracy,val_loss,val_masked_accuracy\n0,1.5,0.5,1.2,0.6\n1,0.9,0.7,1.0,0.65\n"
    )
    result = plot_history(str(run_dir), str(tmp_path / "h.png"))
    assert result["epochs"] == [1, 2] and result["val_loss"] == [1.2, 1.0]
    assert os.path.getsize(tmp_path / "h.png") > 1000
    missing = run_cli(
        "plot",
        "history",
        "--run-dir",
        str(tmp_path / "nope"),
        "--output",
        "x.png",
        cwd=REPO,
        check=False,
    )
    assert missing.returncode == 2 and "history.csv not found" in missing.stderr
