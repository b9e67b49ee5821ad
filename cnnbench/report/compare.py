"""``cnnbench compare``: two or more run reports side by side — environments, test accuracy per aligned scenario
group, throughput ratios, the recommendation verdicts and the biggest differences — as markdown or an HTML page.

:func:`compare` builds the comparison as plain data, :func:`document` lays it out
(:mod:`cnnbench.report.layout`), and :func:`render_markdown` and :func:`render_html` hand that layout to the one
markdown and the one HTML renderer (:mod:`cnnbench.report.markdown`, :mod:`cnnbench.report.html`). The first
report, A, is the reference every difference and ratio is taken against.

**Alignment.** A group is the scenarios of one (arch, strategy, quadrant, head) over seeds, labelled like a
scenario id without the seed (``resnet18-s2-q3-gap``). When every report ran exactly one arch and those archs are
not all the same (a resnet18 run against a mobilenetv2 run), the arch is left out of the key (``s2-q3-gap``) and
named in the column labels instead, so the archs are compared with each other. A group missing from a report
shows ``-`` there and is listed.

**Layer-transfer points** (scenarios whose ``layer_transfer`` is not null) are groups of their own, labelled like
their scenario ids (``resnet18-s2-q2-gap-freeze3``), never pooled with ``s2``: each freezes a different number of
stages, so it is a training setup of its own whose accuracy and speed can change between two runs like any
strategy's, and leaving them out would hide those changes.

**JSON** (``cnnbench compare --json``, :meth:`Comparison.to_json`; schema ``cnnbench-compare/1``). Fractions stay
fractions (0.82, not 82 %); null is a value a report does not have. Every per-report list holds one item per run in
order (A first); every per-later-report list one per run after A.

- ``runs``: ``{label, source, run_id, finished, suite, suite_hash, fingerprint, archs, environment}`` each;
  ``columns``: their column labels; ``by_arch``, ``same_suite``, ``same_fingerprint``, ``differing_keys`` (the
  fingerprint's keys whose values differ), ``shared`` (groups in every report).
- ``accuracy``: per group ``{key, cells, diffs, noise}``; a key is ``{label, arch, strategy, quadrant, head,
  freeze}`` (null: left out by the alignment); a cell ``{mean, std, n_seeds, seeds, values, n_runs, statuses}`` or
  null where the group did not run; ``diffs`` a later mean minus A's, ``noise`` what that difference is judged
  against.
- ``partial``: ``{in, groups}``: the labels of the runs that have these groups (not every run), and their keys.
- ``throughput``: per quantity ``{quantity, higher_is_better, rows}``, a row ``{key, values, ratios}`` (a later
  value over A's).
- ``verdicts``: ``{key, recommended, cells, same_winner}``, a cell the report's ``recommendation`` row or null.
- ``accuracy_changes``, ``throughput_changes``: the biggest, ``{key, quantity, column, before, after, change}``.
- ``hardware``: per bench point ``{id, values, statuses, ratios}`` (images/s).

``cnnbench compare --json`` adds ``gate``: null, or with ``--fail-on-regression`` each later run's verdicts against
A by its label, in the shape of a report's ``gate`` section (docs/report-schema.md).
"""

from __future__ import annotations

import math
import os
import string
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from functools import partial
from typing import Any, TypeVar

from cnnbench.engine.environment import FINGERPRINT_KEYS, fingerprint
from cnnbench.report import fmt, html, markdown, views
from cnnbench.report.layout import Block, Cell, Document, Figure, Section, Table, items, para, spans
from cnnbench.results import aggregate
from cnnbench.results.records import CheckRow, Environment, GroupKey, Report, ScenarioRecord, to_json
from cnnbench.results.schema import read_report, report_file

SCHEMA = "cnnbench-compare/1"  # the JSON's shape (the module docstring); renamed fields need a new number
TOP = 5  # entries in each "biggest differences" list
RATIO_NOISE = 0.10  # timings on a shared machine wander by about 10 %: a ratio within it is not coloured
WIDTH = 100  # prose is wrapped to this many columns, so the markdown also reads in a terminal or CI log


# ---------------------------------------------------------------------------------------------------- load


@dataclass(frozen=True)
class Run:
    """One loaded report and the label (A, B, …) it is shown under."""

    label: str
    source: str
    report: Report

    @property
    def env(self) -> Environment:
        return self.report.environment

    @property
    def archs(self) -> list[str]:
        return fmt.unique(s.arch for s in self.report.scenarios)

    @property
    def fingerprint(self) -> str:
        """The stored fingerprint, or the one its environment hashes to (reports older than the key)."""
        return self.env.fingerprint or fingerprint(self.env.data)

    def to_json(self) -> dict[str, Any]:
        report = self.report
        return to_json({"label": self.label, "source": self.source, "run_id": report.run_id,
                        "finished": report.finished, "suite": (report.suite or {}).get("name"),
                        "suite_hash": self.env.suite_hash, "fingerprint": self.fingerprint, "archs": self.archs,
                        "environment": self.env})  # fmt: skip


def load_runs(paths: Sequence[str | os.PathLike[str]]) -> list[Run]:
    """Each path (a report.json, or a run directory such as ``reports/latest`` holding one) loaded and checked as
    a ``cnnbench/1`` report, labelled A, B, C… in order; raises ValueError naming the path and the problem."""
    return [Run(_label(i), str(path), read_report(report_file(path))) for i, path in enumerate(paths)]


def _label(index: int) -> str:
    letter = string.ascii_uppercase[index % 26]
    return letter if index < 26 else f"{letter}{index // 26}"


# ---------------------------------------------------------------------------------------------------- data


Key = GroupKey  # an aligned group; a field is None where the alignment leaves it out


def key_json(key: Key) -> dict[str, Any]:
    """An aligned group's key as JSON: its label and its fields."""
    return {"label": key.label(), **asdict(key)}


@dataclass(frozen=True)
class Accuracy:
    """Test accuracy of one group in one report: its figures over the seeds that gave one
    (:func:`cnnbench.results.aggregate.over_seeds`; None when none did), how many scenarios ran, and their
    statuses."""

    stats: aggregate.SeedStats | None
    n_runs: int
    statuses: tuple[str, ...]

    @property
    def mean(self) -> float | None:
        return None if self.stats is None else self.stats.mean

    @property
    def std(self) -> float:
        return 0.0 if self.stats is None else self.stats.std

    @property
    def n_seeds(self) -> int:
        return 0 if self.stats is None else self.stats.n_seeds

    def to_json(self) -> dict[str, Any]:
        stats = self.stats.to_json() if self.stats else {"mean": None, "std": None, "n_seeds": 0, "seeds": [],
                                                         "values": []}  # fmt: skip
        return to_json({**stats, "n_runs": self.n_runs, "statuses": self.statuses})


@dataclass(frozen=True)
class AccuracyRow:
    """A group's accuracy per report (None: not run there) and, per later report, its mean minus A's (a
    fraction) and the noise that difference is judged against (the tie rule of :mod:`cnnbench.results.recommend`)."""

    key: Key
    cells: list[Accuracy | None]
    diffs: list[float | None]
    noise: list[float | None]

    def to_json(self) -> dict[str, Any]:
        return to_json({"key": key_json(self.key), "cells": self.cells, "diffs": self.diffs, "noise": self.noise})


@dataclass(frozen=True)
class Quantity:
    """A throughput metric compared as a ratio: its title, how a group's scenarios are summed up into it (None
    without a value), its direction and its number format."""

    title: str
    summed_up: Callable[[Sequence[ScenarioRecord]], float | None]
    higher_is_better: bool
    fmt: Callable[[float | None], str]


def _total_compile_s(records: Sequence[ScenarioRecord]) -> float | None:
    values = [r.metrics.compile_s for r in records if r.metrics.compile_s is not None]
    return math.fsum(values) if values else None


# Rates are medians over a group's scenarios, as everywhere (aggregate.median_rate); compile time is their total,
# because a compiled program is reused by the scenarios after the first one that needs it, and those report 0.
QUANTITIES = (
    Quantity("train img/s", partial(aggregate.median_rate, metric="train_images_per_s"), True, fmt.rate),
    Quantity("infer img/s", partial(aggregate.median_rate, metric="infer_images_per_s"), True, fmt.rate),
    Quantity("compile s (total)", _total_compile_s, False, lambda v: "-" if v is None else f"{v:.1f}"),
)


@dataclass(frozen=True)
class RatioRow:
    """A group's metric per report, summed up over its scenarios (None: no value there), and each later report's
    ratio to A's."""

    key: Key
    values: list[float | None]
    ratios: list[float | None]

    def to_json(self) -> dict[str, Any]:
        return to_json({"key": key_json(self.key), "values": self.values, "ratios": self.ratios})


@dataclass(frozen=True)
class VerdictRow:
    """One (arch, quadrant, head) of the recommendation check: the recommended strategy, each report's check row
    (None: not checked there) and whether every report has one with the same winner."""

    key: Key
    recommended: str | None
    cells: list[CheckRow | None]
    same_winner: bool

    def to_json(self) -> dict[str, Any]:
        return to_json({"key": key_json(self.key), "recommended": self.recommended, "cells": self.cells,
                        "same_winner": self.same_winner})  # fmt: skip


@dataclass(frozen=True)
class Change:
    """One of the biggest differences: a group's value in A and in a later report, and the change (accuracy
    points as a fraction, or a throughput ratio)."""

    key: Key
    quantity: Quantity | None  # None: test accuracy
    column: str
    before: float
    after: float
    change: float

    def to_json(self) -> dict[str, Any]:
        quantity = "test accuracy" if self.quantity is None else self.quantity.title
        return to_json({"key": key_json(self.key), "quantity": quantity, "column": self.column,
                        "before": self.before, "after": self.after, "change": self.change})  # fmt: skip


@dataclass(frozen=True)
class HardwareRow:
    """One bench point of the hardware tables (``arch-bN-precision-mode``): its images/s and status per report
    (None: not in that report) and each later report's images/s ratio to A's."""

    id: str
    values: list[float | None]
    statuses: list[str | None]
    ratios: list[float | None]

    def to_json(self) -> dict[str, Any]:
        return to_json(asdict(self))


@dataclass(frozen=True)
class Comparison:
    """Everything ``cnnbench compare`` shows, as data; the first run is the reference."""

    runs: list[Run]
    columns: list[str]
    by_arch: bool
    same_suite: bool
    differing_keys: list[str]
    shared: int
    accuracy: list[AccuracyRow]
    partial: list[tuple[tuple[str, ...], list[Key]]]
    throughput: list[tuple[Quantity, list[RatioRow]]]
    verdicts: list[VerdictRow]
    accuracy_changes: list[Change]
    throughput_changes: list[Change]
    hardware: list[HardwareRow]

    @property
    def same_fingerprint(self) -> bool:
        return len({run.fingerprint for run in self.runs}) == 1

    def to_json(self) -> dict[str, Any]:
        """The comparison as JSON data, in the shape the module docstring gives."""
        return to_json({
            "schema": SCHEMA, "runs": self.runs, "columns": self.columns, "by_arch": self.by_arch,
            "same_suite": self.same_suite, "same_fingerprint": self.same_fingerprint,
            "differing_keys": self.differing_keys, "shared": self.shared, "accuracy": self.accuracy,
            "partial": [{"in": labels, "groups": [key_json(k) for k in keys]} for labels, keys in self.partial],
            "throughput": [{"quantity": q.title, "higher_is_better": q.higher_is_better, "rows": rows}
                           for q, rows in self.throughput],
            "verdicts": self.verdicts, "accuracy_changes": self.accuracy_changes,
            "throughput_changes": self.throughput_changes, "hardware": self.hardware,
        })  # fmt: skip


def compare(runs: Sequence[Run], top: int = TOP) -> Comparison:
    """The aligned comparison of ``runs`` (at least two) against the first: accuracy per group, throughput per
    arch × strategy × head, verdicts per arch × quadrant × head, and the ``top`` biggest changes."""
    archs = [run.archs for run in runs]
    by_arch = not (all(len(a) == 1 for a in archs) and len({a[0] for a in archs}) > 1)
    columns = [run.label if by_arch else f"{run.label} {a[0]}" for run, a in zip(runs, archs, strict=True)]
    groups = [_groups(run.report.scenarios, by_arch) for run in runs]
    keys = fmt.unique(key for g in groups for key in g)
    accuracy = [_accuracy_row([_accuracy(g.get(key, [])) for g in groups], key) for key in keys]
    partial: dict[tuple[str, ...], list[Key]] = {}
    for key in keys:
        present = tuple(run.label for run, g in zip(runs, groups, strict=True) if key in g)
        if len(present) < len(runs):
            partial.setdefault(present, []).append(key)
    setups = [_without_quadrant(g) for g in groups]
    throughput = [(q, _ratio_rows(setups, q)) for q in QUANTITIES]
    return Comparison(
        runs=list(runs),
        columns=columns,
        by_arch=by_arch,
        same_suite=len({run.env.suite_hash for run in runs}) == 1,
        differing_keys=[k for k in FINGERPRINT_KEYS if len({str(run.env.value(k)) for run in runs}) > 1],
        shared=len(keys) - sum(len(k) for k in partial.values()),
        accuracy=accuracy,
        partial=list(partial.items()),
        throughput=throughput,
        verdicts=_verdict_rows(runs, by_arch),
        accuracy_changes=_accuracy_changes(accuracy, columns, top),
        throughput_changes=_throughput_changes(throughput[:2], columns, top),
        hardware=_hardware_rows(runs),
    )


def _hardware_rows(runs: Sequence[Run]) -> list[HardwareRow]:
    """The reports' hardware tables lined up by bench point, in the order the points first appear."""
    tables = [{row.id: row for row in run.report.hardware} for run in runs]
    rows = []
    for point in fmt.unique(point for table in tables for point in table):
        cells = [table.get(point) for table in tables]
        values = [None if cell is None else cell.images_per_s for cell in cells]
        ratios = [v / values[0] if v and values[0] else None for v in values[1:]]
        rows.append(HardwareRow(point, values, [None if c is None else c.status for c in cells], ratios))
    return rows


def _groups(scenarios: Iterable[ScenarioRecord], by_arch: bool) -> dict[Key, list[ScenarioRecord]]:
    """A report's scenarios by aligned key, in the order the keys first appear."""
    groups: dict[Key, list[ScenarioRecord]] = {}
    for s in scenarios:
        key = s.key if by_arch else replace(s.key, arch=None)
        groups.setdefault(key, []).append(s)
    return groups


T = TypeVar("T")


def _without_quadrant(groups: Mapping[Key, list[T]]) -> dict[Key, list[T]]:
    """The groups merged over quadrants: the arch × strategy × head that throughput is compared by."""
    merged: dict[Key, list[T]] = {}
    for key, records in groups.items():
        merged.setdefault(key.program, []).extend(records)
    return merged


def _accuracy(records: list[ScenarioRecord]) -> Accuracy | None:
    if not records:
        return None
    # one entry at most: a group's records share their key
    stats = next(iter(aggregate.over_seeds(records).values()), None)
    statuses = tuple(sorted({r.status for r in records}))
    return Accuracy(stats, len(records), statuses)


def _accuracy_row(cells: list[Accuracy | None], key: Key) -> AccuracyRow:
    ref = cells[0]
    diffs: list[float | None] = []
    noise: list[float | None] = []
    for cell in cells[1:]:
        if ref is None or ref.stats is None or cell is None or cell.stats is None:
            diffs.append(None)
            noise.append(None)
        else:
            diffs.append(cell.stats.mean - ref.stats.mean)
            noise.append(aggregate.tie_noise(ref.stats, cell.stats))
    return AccuracyRow(key, cells, diffs, noise)


def _ratio_rows(setups: list[dict[Key, list[ScenarioRecord]]], quantity: Quantity) -> list[RatioRow]:
    rows = []
    for key in fmt.unique(key for s in setups for key in s):
        values = [quantity.summed_up(s.get(key, [])) for s in setups]
        ref = values[0]
        ratios = [v / ref if ref and v and ref > 0 and v > 0 else None for v in values[1:]]  # no ratio to or of 0
        rows.append(RatioRow(key, values, ratios))
    return rows


def _verdict_rows(runs: Sequence[Run], by_arch: bool) -> list[VerdictRow]:
    checks = [
        {Key(r.arch if by_arch else None, None, r.quadrant, r.head): r for r in run.report.recommendation}
        for run in runs
    ]
    rows = []
    for key in fmt.unique(key for check in checks for key in check):
        cells = [check.get(key) for check in checks]
        recommended = next(c.recommended for c in cells if c is not None)
        same = all(c is not None for c in cells) and len({c.winner for c in cells if c is not None}) == 1
        rows.append(VerdictRow(key, recommended, cells, same))
    return rows


def _mean(cell: Accuracy | None) -> float | None:
    return None if cell is None else cell.mean


def _accuracy_changes(rows: list[AccuracyRow], columns: list[str], top: int) -> list[Change]:
    changes = [
        Change(row.key, None, columns[j], before, after, diff)
        for row in rows for j, diff in enumerate(row.diffs, 1)
        if diff is not None and (before := _mean(row.cells[0])) is not None
        and (after := _mean(row.cells[j])) is not None
    ]  # fmt: skip
    return sorted(changes, key=lambda c: -abs(c.change))[:top]


def _throughput_changes(tables: list[tuple[Quantity, list[RatioRow]]], columns: list[str], top: int) -> list[Change]:
    changes = [
        Change(row.key, quantity, columns[j], before, after, ratio)
        for quantity, rows in tables for row in rows for j, ratio in enumerate(row.ratios, 1)
        if ratio is not None and (before := row.values[0]) is not None and (after := row.values[j]) is not None
    ]  # fmt: skip
    return sorted(changes, key=lambda c: -abs(math.log(c.change)))[:top]


# -------------------------------------------------------------------------------------------------- layout


def title(comparison: Comparison) -> str:
    """The comparison's heading: ``cnnbench compare: A vs B``, or ``A lenet5 vs B resnet18`` when the archs are
    what is compared."""
    return "cnnbench compare: " + " vs ".join(comparison.columns)


def document(comparison: Comparison) -> Document:
    """The comparison laid out for every renderer: under the title, the header table (runs, environments) and its
    notes; then, when any scenario group is shared, accuracy, throughput, verdicts and the biggest differences.
    Markdown wraps its prose to :data:`WIDTH` columns."""
    sections = []
    if comparison.shared:
        sections = [_accuracy_section(comparison), _throughput_section(comparison), _verdict_section(comparison),
                    _biggest_section(comparison)]  # fmt: skip
    if comparison.hardware:
        sections.append(_hardware_section(comparison))
    return Document(spans([title(comparison)]), _header(comparison), sections, width=WIDTH)


def _header(c: Comparison) -> list[Block]:
    rows: list[tuple[str, Callable[[Run], str]]] = [
        ("run id", lambda r: r.report.run_id + ("" if r.report.finished else " (running)")),
        ("suite", lambda r: f"{(r.report.suite or {}).get('name', '?')} {r.env.suite_hash}"),
        ("archs", lambda r: ", ".join(r.archs) or "-"),
        ("backend", lambda r: str(r.env.backend)),
        ("devices", lambda r: f"{r.env.device_count}× {r.env.device_kind}"),
        ("CPU", lambda r: str(r.env.cpu)),
        ("jax", lambda r: str(r.env.jax)),
        ("commit", lambda r: views.commit(r.env)),
        ("fingerprint", lambda r: r.fingerprint),
        ("scenarios", _status_counts),
        ("compile s", _compile_total),
    ]  # fmt: skip
    cells = []
    for name, value in rows:
        texts = [value(run) for run in c.runs]
        cells.append([Cell(name), *(Cell(t, "winner" if t != texts[0] else None) for t in texts)])
    sources = [f"{run.label}: {run.source}" for run in c.runs]
    notes = [_suite_note(c), _fingerprint_note(c), _alignment_note(c), _shared_note(c)]
    return [Table(["", *c.columns], cells), items([*sources, *notes])]


def _compile_total(run: Run) -> str:
    return f"{_total_compile_s(run.report.scenarios) or 0.0:.1f}"


def _status_counts(run: Run) -> str:
    rows = run.report.hardware or run.report.scenarios
    counts = Counter(row.status for row in rows)
    noun = " bench points" if run.report.hardware else ""
    return f"{len(rows)}{noun}: " + ", ".join(f"{n} {status}" for status, n in counts.items())


def _suite_note(c: Comparison) -> str:
    if c.same_suite:
        return f"Same suite in every report (hash {c.runs[0].env.suite_hash})."
    hashes = ", ".join(f"{run.label} {run.env.suite_hash}" for run in c.runs)
    return f"Not the same suite: the suite hashes differ ({hashes}); only groups that match are compared."


def _fingerprint_note(c: Comparison) -> str:
    if c.same_fingerprint:
        return (f"Same hardware and software fingerprint ({c.runs[0].fingerprint}): throughput ratios come from what "
                f"ran, not from the machine.")  # fmt: skip
    keys = f" ({', '.join(c.differing_keys)} differ)" if c.differing_keys else ""
    return (f"The hardware/software fingerprints differ{keys}: throughput ratios compare the machines and software "
            f"as much as the code.")  # fmt: skip


def _alignment_note(c: Comparison) -> str:
    if c.by_arch:
        return ("Groups are aligned by arch, strategy, quadrant and head, labelled like scenario ids without the "
                "seed; layer-transfer points are groups of their own (-freeze{k}).")  # fmt: skip
    return (f"Each report ran one arch ({', '.join(c.columns)}): groups are aligned by strategy, quadrant and head "
            f"instead, so the archs are compared with each other.")  # fmt: skip


def _shared_note(c: Comparison) -> str:
    if c.hardware and not c.accuracy:
        shared = sum(all(v is not None for v in row.statuses) for row in c.hardware)
        return f"{shared} of {len(c.hardware)} bench points are in every report."
    if not c.shared:
        return "No scenario is shared: these reports have no group in common, so there is nothing to compare."
    return f"{c.shared} of {len(c.accuracy)} groups are in every report."


def _accuracy_section(c: Comparison) -> Section:
    header = ["group", *c.columns, *(f"{run.label}−{c.runs[0].label}" for run in c.runs[1:])]
    cells = []
    for row in c.accuracy:
        diffs = [_diff_cell(d, n) for d, n in zip(row.diffs, row.noise, strict=True)]
        cells.append([Cell(row.key.label()), *(Cell(_accuracy_text(a)) for a in row.cells), *diffs])
    text = para(
        "Mean ± sample std over seeds in %, with the number of seeds ((k/n): only k of n seeds gave an accuracy; a "
        "status: none did; -: not run). The last columns are the difference of the means in accuracy points, "
        f"coloured in the HTML page beyond the noise (the larger std, at least {100 * aggregate.TIE_FLOOR:.0f} "
        "point).",
    )
    partial = [f"only in {', '.join(labels)} ({len(keys)}): {', '.join(k.label() for k in keys)}"
               for labels, keys in c.partial]  # fmt: skip
    blocks: list[Block] = [text, Table(header, cells, range(1, len(header)))]
    return Section("Test accuracy (%)", blocks + ([items(partial)] if partial else []))


def _accuracy_text(a: Accuracy | None) -> str:
    if a is None:
        return "-"
    if a.mean is None:
        return "/".join(a.statuses)
    seeds = f"({a.n_seeds})" if a.n_seeds == a.n_runs else f"({a.n_seeds}/{a.n_runs})"
    spread = f" ± {fmt.pct(a.std)}" if a.n_seeds > 1 else ""
    return f"{fmt.pct(a.mean)}{spread} {seeds}"


def _diff_cell(diff: float | None, noise: float | None) -> Cell:
    if diff is None or noise is None:
        return Cell("-", "muted")
    return Cell(f"{100 * diff:+.1f}", "muted" if abs(diff) <= noise else "good" if diff > 0 else "bad")


def _throughput_section(c: Comparison) -> Section:
    header = ["arch-strategy-head" if c.by_arch else "strategy-head", *c.columns,
              *(f"{run.label}/{c.runs[0].label}" for run in c.runs[1:])]  # fmt: skip
    tables = []
    for quantity, rows in c.throughput:
        cells = [
            [Cell(row.key.label()), *(Cell(quantity.fmt(v)) for v in row.values),
             *(_ratio_cell(r, quantity) for r in row.ratios)]
            for row in rows
        ]  # fmt: skip
        tables.append(Table(header, cells, range(1, len(header)), quantity.title))
    text = para(
        "Over each group's quadrants and seeds: the median rate, and the total compile time (a compiled program is "
        "reused by the later scenarios, which report 0). The last columns are the ratio to A (×2.00: twice A's "
        f"value), coloured in the HTML page beyond ±{100 * RATIO_NOISE:.0f} %."
    )
    caption = "Train and inference images/s per group (log scale), one dot per report."
    return Section("Throughput", [text, *tables, Figure(lambda: throughput_png(c), "Throughput", caption)])


def _hardware_section(c: Comparison) -> Section:
    header = ["bench point", *(f"{column} img/s" for column in c.columns),
              *(f"{run.label}/{c.runs[0].label}" for run in c.runs[1:])]  # fmt: skip
    images = QUANTITIES[0]  # images/s: higher is better
    cells = [
        [Cell(row.id), *(Cell(fmt.rate(v) if v else status or "-", None if v else "muted")
                         for v, status in zip(row.values, row.statuses, strict=True)),
         *(_ratio_cell(r, images) for r in row.ratios)]
        for row in c.hardware
    ]  # fmt: skip
    text = para(
        "The hardware tables side by side: each arch at its canonical config per batch, precision and mode, images/s "
        "at the median step (or why it was not timed: out of memory, error; -: not in that report). The last columns "
        f"are the ratio to A (×2.00: twice A's images/s), coloured in the HTML page beyond ±{100 * RATIO_NOISE:.0f} %."
    )
    return Section("Hardware", [text, Table(header, cells, range(1, len(header)))])


def _ratio_cell(ratio: float | None, quantity: Quantity) -> Cell:
    if ratio is None:
        return Cell("-", "muted")
    if abs(math.log(ratio)) <= math.log1p(RATIO_NOISE):
        return Cell(f"×{ratio:.2f}", "muted")
    return Cell(f"×{ratio:.2f}", "good" if (ratio > 1) == quantity.higher_is_better else "bad")


VERDICT_CLASSES = {"won": "good", "tied within noise": "good", "lost": "bad", "not run": "muted"}


def _verdict_section(c: Comparison) -> Section:
    header = ["arch-quadrant-head" if c.by_arch else "quadrant-head", "rec.", *c.columns, "same winner"]
    cells = [
        [Cell(row.key.label()), Cell(row.recommended or "-"), *(_verdict_cell(cell) for cell in row.cells),
         Cell("yes") if row.same_winner else Cell("no", "winner")]
        for row in c.verdicts
    ]  # fmt: skip
    held = []
    for j, column in enumerate(c.columns):
        checked = [r for row in c.verdicts if (r := row.cells[j]) is not None]
        held.append(f"{column} {sum(bool(r.recommended_won) for r in checked)} of {len(checked)}")
    text = para(
        "Per report: the strategy that won, then the verdict on the seed notes' recommended strategy (won, tied "
        "within noise, lost, not run). The recommendation held in " + "; ".join(held) + " checks.",
    )
    return Section("Recommendation verdicts", [text, Table(header, cells)])


def _verdict_cell(row: CheckRow | None) -> Cell:
    if row is None:
        return Cell("-", "muted")
    verdict = row.verdict or ("won" if row.winner == row.recommended else
                              "tied within noise" if row.recommended_won else "lost")  # fmt: skip
    return Cell(f"{row.winner}: {verdict.replace(' within noise', '')}", VERDICT_CLASSES[verdict])


def _biggest_section(c: Comparison) -> Section:
    ref = c.columns[0]
    lines = [f"{ch.key.label()}: {ch.column} {100 * ch.change:+.1f} pts vs {ref} ({fmt.pct(ch.before)} → "
             f"{fmt.pct(ch.after)} %)" for ch in c.accuracy_changes]  # fmt: skip
    lines += [f"{ch.key.label()} {q.title}: {ch.column} ×{ch.change:.2f} vs {ref} ({q.fmt(ch.before)} → "
              f"{q.fmt(ch.after)})" for ch in c.throughput_changes if (q := ch.quantity) is not None]  # fmt: skip
    text = para(f"The {TOP} largest accuracy changes (points), then the {TOP} largest train/infer throughput ratios "
                f"(either way), against {ref}.")  # fmt: skip
    return Section("Biggest differences", [text, *([items(lines)] if lines else [])])


# ------------------------------------------------------------------------------------------------- render


def render_markdown(comparison: Comparison) -> str:
    """The comparison as GitHub markdown whose prose is wrapped to 100 columns, for a terminal, a CI log or a PR."""
    return markdown.render(document(comparison))


def render_html(comparison: Comparison) -> str:
    """The comparison as one self-contained HTML page: the markdown's sections, with differences and ratios
    coloured and the throughput drawn as a dot plot."""
    return html.render(document(comparison))


def throughput_png(comparison: Comparison) -> bytes:
    """A dot plot of train and inference images/s per group (log scale), one colour per report and a line across
    each group's spread, as PNG bytes; dots rather than bars, whose lengths a log axis would distort."""
    from matplotlib.figure import Figure  # matplotlib loads only when the HTML page draws this figure

    from cnnbench.report.plots import ARCH_COLOURS, DPI, to_png

    tables = comparison.throughput[:2]
    labels = [row.key.label() for row in tables[0][1]]
    fig = Figure(figsize=(10, 1.4 + 0.25 * len(labels)), dpi=DPI, layout="constrained")
    axes = fig.subplots(1, len(tables), sharey=True)
    for ax, (quantity, rows) in zip(axes, tables, strict=True):
        for i, row in enumerate(rows):
            spread = [v for v in row.values if v]
            if spread:
                ax.plot([min(spread), max(spread)], [i, i], color="#bbbbbb", linewidth=1, zorder=1)
        for j, column in enumerate(comparison.columns):
            dots = [(i, v) for i, row in enumerate(rows) if (v := row.values[j])]
            ax.plot([v for _, v in dots], [i for i, _ in dots], "o", label=column, zorder=2,
                    color=ARCH_COLOURS[j % len(ARCH_COLOURS)])  # fmt: skip
        ax.set_xscale("log")
        ax.set_xlabel(f"{quantity.title} (log)")
        ax.grid(alpha=0.3, axis="x", which="both")
    axes[0].set_yticks(range(len(labels)), labels, fontsize=8)
    axes[0].invert_yaxis()
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside upper center", ncols=len(comparison.runs),
               fontsize=8, frameon=False)  # fmt: skip
    return to_png(fig)
