"""A decoding setting chosen on the validation split, then scored on the test split next to its
value 0 (the test split never chooses): what `length_penalty.py` and `rescore.py` report."""

from __future__ import annotations

import sys


def chosen_on_valid(name: str, values: list, scored) -> dict:
    """`scored(value, split)` is `s2s evaluate`'s result with the setting at `value`; returns the
    report's `valid` (each value), `best_{name}_on_valid` (lowest WER, the smaller value on a
    tie), `test` (the chosen value and 0) and `test_wer_change` (chosen minus 0)."""

    def logged(value: float, split: str) -> dict:
        result = scored(value, split)
        print(f"[{name}] {value} {split}: wer {result['wer']:.4f}", file=sys.stderr)
        return result

    valid = {value: logged(value, "valid") for value in values}
    best = min(values, key=lambda value: (valid[value]["wer"], value))
    test = {value: logged(value, "test") for value in sorted({0.0, best})}
    return {
        "valid": {str(value): result for value, result in valid.items()},
        f"best_{name}_on_valid": best,
        "test": {str(value): result for value, result in test.items()},
        "test_wer_change": test[best]["wer"] - test[0.0]["wer"],
    }
