"""How values look in a report's tables: one place for the number formats and the markdown table that
``report.md``, the terminal summary, ``report.html`` and ``cnnbench compare`` share."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

Row = list[str]


def md_table(header: Row, rows: list[Row], right: Iterable[int] = ()) -> list[str]:
    """A GitHub markdown table padded to aligned columns, so it also reads well as plain text in a CI log."""
    right = set(right)
    grid = [[one_line(c).replace("|", "\\|") for c in row] for row in (header, *rows)]
    widths = [max(3, *(len(row[i]) for row in grid)) for i in range(len(header))]

    def line(row: Row) -> str:
        padded = (c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
        return "| " + " | ".join(padded) + " |"

    rule = "|" + "|".join(("-" * (w + 1) + ":") if i in right else "-" * (w + 2) for i, w in enumerate(widths)) + "|"
    return [line(grid[0]), rule, *(line(row) for row in grid[1:])]


def one_line(value: Any, limit: int | None = None) -> str:
    """``value`` as text on one line, cut to ``limit`` characters."""
    text = " ".join(str(value).split())
    return text if limit is None or len(text) <= limit else text[: limit - 1] + "…"


def fit(line: str, width: int) -> str:
    return line if len(line) <= width else line[: width - 1] + "…"


def unique(items: Iterable[Any]) -> list[Any]:
    return list(dict.fromkeys(items))


def ordered(names: Iterable[str], canonical: Sequence[str]) -> list[str]:
    """Unique ``names``, those in ``canonical`` first in its order, the rest in the order seen."""
    seen = unique(names)
    return [n for n in canonical if n in seen] + [n for n in seen if n not in canonical]


def pct(fraction: float) -> str:
    return f"{100 * fraction:.1f}"


def pct_sd(mean: float | None, std: float, n_seeds: int) -> str:
    """Mean ± std in %, the std only when there is more than one seed."""
    if mean is None:
        return "-"
    return f"{pct(mean)} ± {pct(std)}" if n_seeds > 1 else pct(mean)


def num(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def integer(value: Any) -> str:
    return "-" if value is None else f"{value:,}"


def rate(value: float | None) -> str:
    """Images per second: whole numbers with separators from 100 up, one decimal below."""
    return "-" if value is None else f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def int_range(values: list[float]) -> str:
    if not values:
        return "-"
    low, high = int(min(values)), int(max(values))
    return f"{low:,}" if low == high else f"{low:,}–{high:,}"


def compact(value: Any) -> str:
    """A short one-line rendering of a target's conversion record (``key=value, …``)."""
    if not value:
        return "-"
    text = ", ".join(f"{k}={v}" for k, v in value.items()) if isinstance(value, Mapping) else str(value)
    return one_line(text, 80)
