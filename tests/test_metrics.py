import numpy as np
import pytest

from s2s_keras.metrics import MaskedAccuracy, edit_distance, error_rates


def test_edit_distance():
    assert edit_distance("kitten", "sitting") == 3
    assert edit_distance([], ["a", "b"]) == 2
    assert edit_distance(["a"], ["a"]) == 0


def test_multi_reference_wer_and_per():
    references = {
        "read": [["R", "EH", "D"], ["R", "IY", "D"]],  # hypothesis matches the 2nd reference
        "the": [["DH", "AH"], ["DH", "IY"]],  # 1 substitution from either (length 2)
        "cat": [["K", "AE", "T"]],  # 1 deletion (length 3)
    }
    hypotheses = {"read": ["R", "IY", "D"], "the": ["DH", "EH"], "cat": ["K", "AE"]}
    result = error_rates(hypotheses, references)
    assert result["num_words"] == 3
    assert result["wer"] == pytest.approx(2 / 3)
    # PER: (0 + 1 + 1) errors over the closest references' lengths (3 + 2 + 3).
    assert result["per"] == pytest.approx(2 / 8)


def test_per_uses_closest_reference_length():
    result = error_rates({"x": ["A", "B"]}, {"x": [["A", "B", "C", "D"], ["A", "C"]]})
    assert result["per"] == pytest.approx(1 / 2) and result["wer"] == 1.0


def test_missing_hypothesis_is_an_error():
    with pytest.raises(ValueError, match="no hypothesis"):
        error_rates({}, {"x": [["A"]]})


def test_masked_accuracy_ignores_padding():
    metric = MaskedAccuracy()
    y_true = np.array([[4, 5, 0, 0]])
    logits = np.zeros((1, 4, 6), "float32")
    logits[0, 0, 4] = logits[0, 1, 3] = 1.0  # first right, second wrong
    logits[0, 2, 0] = logits[0, 3, 0] = 1.0  # "correct" on padding must not count
    metric.update_state(y_true, logits)
    assert float(metric.result()) == pytest.approx(0.5)
