"""Settings fields: a suite table's keys, types, defaults and allowed values, stated once on its dataclass.

A settings dataclass's fields are the keys of one TOML table: the type hint gives the value's type, the default
the value a suite that leaves the key out gets, and :func:`setting` metadata the bounds, the allowed values and a
one-line description. The suite reader (:mod:`cnnbench.config.suite`) checks a table against them and the JSON
Schema (:mod:`cnnbench.config.schema`) states them, so the two cannot drift apart.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Sequence
from dataclasses import MISSING, Field, dataclass, field, fields
from typing import Any


@dataclass(frozen=True)
class Range:
    """An interval a number must lie in, named for messages ("a fraction in [0, 1)")."""

    low: float
    high: float
    low_open: bool = False
    high_open: bool = False
    noun: str = "a number"

    def __contains__(self, value: float) -> bool:
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return above and below

    def __str__(self) -> str:
        return f"{'(' if self.low_open else '['}{self.low:g}, {self.high:g}{')' if self.high_open else ']'}"


def setting(
    default: Any = MISSING,
    *,
    doc: str = "",
    minimum: float | None = None,
    within: Range | None = None,
    choices: Sequence[Any] | None = None,
) -> Any:
    """A dataclass field with what a suite may set it to: at least ``minimum``, ``within`` a range, one of
    ``choices``; ``doc`` describes it in the JSON Schema."""
    meta = {"doc": doc, "minimum": minimum, "within": within, "choices": tuple(choices) if choices else None}
    return field(default=default, metadata=meta)


def value_type(cls: type, name: str) -> type:
    """The Python type of field ``name``'s values (int, float, str or bool), an Optional's None left out."""
    hint = typing.get_type_hints(cls)[name]
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        (hint,) = [h for h in typing.get_args(hint) if h is not type(None)]
    return hint


def violation(f: Field, value: Any) -> str | None:
    """What is wrong with ``value`` for field ``f`` (already of the right type), or None."""
    meta = f.metadata
    minimum, within, choices = meta.get("minimum"), meta.get("within"), meta.get("choices")
    if minimum is not None and value < minimum:
        return f"must not be negative, got {value}" if minimum == 0 else f"must be at least {minimum}, got {value}"
    if within is not None and value not in within:
        return f"expected {within.noun} in {within}, got {value}"
    if choices is not None and value not in choices:
        return f"unknown value {value!r}; expected one of: {', '.join(map(str, choices))}"
    return None


def like(cls: type, name: str) -> Any:
    """A field with the same default and metadata as ``cls``'s field ``name``: for settings that mirror it."""
    (source,) = [f for f in fields(cls) if f.name == name]
    return field(default=source.default, metadata=source.metadata)
