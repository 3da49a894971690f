"""Config validation: the error every bad value raises, the rules config fields declare
(`config.py`'s `_RULES`: a field → `(test(value) -> bool, what was expected)`), and the parsing
of `--set` values against a field's type."""

from __future__ import annotations

import dataclasses


class ConfigError(ValueError):
    """A config field received a value it cannot take; the message names the field."""


def check(condition: bool, name: str, value, expected: str) -> None:
    """Raises `ConfigError("<name>: expected <expected>, got <value>")` unless `condition`."""
    if not condition:
        raise ConfigError(f"{name}: expected {expected}, got {value!r}")


def one_of(options: tuple) -> tuple:
    return (lambda value: value in options), f"one of {options}"


def integer(low: int, note: str = "") -> tuple:
    return (lambda value: isinstance(value, int) and value >= low), f"an integer >= {low}{note}"


def number(low: float, strict: bool = False) -> tuple:
    if strict:
        return (lambda value: value > low), f"a number > {low:g}"
    return (lambda value: value >= low), f"a number >= {low:g}"


def between(low: float, high: float) -> tuple:
    return (lambda value: low <= value <= high), f"a number in [{low:g}, {high:g}]"


def fraction(high: float, kind: str) -> tuple:
    return (lambda value: 0.0 <= value < high), f"a {kind} in [0, {high:g})"


def apply_rules(section: str, instance, rules: dict) -> None:
    """Each field's own rule: `rules` maps a field to `(test(value) -> bool, expected)`."""
    for name, (test, expected) in rules.items():
        value = getattr(instance, name)
        check(test(value), f"{section}.{name}", value, expected)


def parse_field(raw: str, f: dataclasses.Field, key: str):
    """A `--set` value `raw` as the type of dataclass field `f` (`key` names it in errors)."""
    kind = (
        f.type
        if isinstance(f.type, type)
        else {"int": int, "float": float, "bool": bool, "str": str}[f.type]
    )
    try:
        if kind is bool:
            lowered = raw.lower()
            if lowered not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(raw)
            return lowered in ("true", "1", "yes")
        if kind is int:
            return int(raw)
        if kind is float:
            return float(raw)
        return raw
    except ValueError:
        raise ConfigError(f"{key}: expected {kind.__name__}, got {raw!r}") from None
