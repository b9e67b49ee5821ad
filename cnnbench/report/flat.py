"""A run's rows flat, one per scenario (or per bench point of a hardware suite), ready for pandas and dashboards
(SPEC §8): each run's ``results.csv``, and ``cnnbench export``'s CSV or JSON Lines of many runs. Each row repeats
the run's identity — run id, suite and its hash, commit, fingerprint, backend, device kind — so the rows of many
runs concatenate into one table. Transfer and hardware runs have different columns: they are tables of their own.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

from cnnbench.config.hardware import HARDWARE
from cnnbench.config.suite import TRANSFER
from cnnbench.engine.measurement import BenchRecord, Metrics
from cnnbench.results.records import Report, ScenarioRecord, to_json

RUN_COLUMNS = ("run_id", "suite", "suite_hash", "git_commit", "fingerprint", "backend", "device_kind", "device_count")
SCENARIO_COLUMNS = ("id", "arch", "strategy", "quadrant", "head", "seed", "layer_transfer", "target", "precision",
                    "status")  # fmt: skip
BENCH_COLUMNS = ("id", "arch", "batch", "precision", "mode", "status", "images_per_s", "images_per_s_low",
                 "images_per_s_high", "step_ms", "step_ms_stddev", "rounds", "compile_s", "memory_bytes",
                 "device_peak_bytes", "gmacs_per_image", "tflops", "utilisation", "img_size", "in_chans", "params",
                 "error")  # fmt: skip
COLUMNS = {
    TRANSFER: (*RUN_COLUMNS, *SCENARIO_COLUMNS, *(f.name for f in fields(Metrics)), "error"),
    HARDWARE: (*RUN_COLUMNS, *BENCH_COLUMNS),
}


@dataclass(frozen=True)
class Rows:
    """Flat rows of one kind of run (``transfer`` or ``hardware``): the columns every row has, and the rows as
    JSON data (None where a figure is unknown)."""

    kind: str
    rows: tuple[dict[str, Any], ...]

    @property
    def columns(self) -> tuple[str, ...]:
        return COLUMNS[self.kind]

    def csv(self) -> str:
        """The rows as CSV text with a header; empty cells where a figure is unknown."""
        out = io.StringIO()
        writer = csv.DictWriter(out, self.columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows)
        return out.getvalue()

    def jsonl(self) -> str:
        """The rows as JSON Lines: one object a line with the CSV's keys, in its order; null where it is empty."""
        return "".join(json.dumps(row) + "\n" for row in self.rows)


def kind(report: Report) -> str:
    """``hardware`` for a hardware suite's run (bench points), else ``transfer`` (scenarios)."""
    return HARDWARE if report.hardware or (report.suite or {}).get("kind") == HARDWARE else TRANSFER


def flat_rows(report: Report) -> Rows:
    """The report's rows, each with the run's identity."""
    env = report.environment
    run = {"run_id": report.run_id, "suite": (report.suite or {}).get("name"), "suite_hash": env.suite_hash,
           "git_commit": env.git_commit, "fingerprint": env.fingerprint, "backend": env.backend,
           "device_kind": env.device_kind, "device_count": env.device_count}  # fmt: skip
    of = kind(report)
    cells = [_bench_row(r) for r in report.hardware] if of == HARDWARE else map(_scenario_row, report.scenarios)
    merged = ({**run, **row} for row in cells)
    return Rows(of, tuple({c: to_json(row.get(c)) for c in COLUMNS[of]} for row in merged))


def joined(reports: Sequence[tuple[str, Report]]) -> Rows:
    """The rows of every ``(source, report)`` in order, as one table; raises ValueError naming the sources when
    transfer and hardware runs are mixed, whose columns differ."""
    if not reports:
        raise ValueError("no report to export")
    tables = [(source, flat_rows(report)) for source, report in reports]
    kinds = {table.kind: [s for s, t in tables if t.kind == table.kind] for _, table in tables}
    if len(kinds) > 1:
        listed = "; ".join(f"{k} runs: {', '.join(sources)}" for k, sources in kinds.items())
        raise ValueError(f"transfer and hardware runs have different columns and cannot share a table ({listed}); "
                         "export each kind on its own")  # fmt: skip
    return Rows(tables[0][1].kind, tuple(row for _, table in tables for row in table.rows))


def results_csv(report: Report) -> str:
    """The report's ``results.csv``."""
    return flat_rows(report).csv()


def _scenario_row(record: ScenarioRecord) -> dict[str, Any]:
    row = {name: getattr(record, name) for name in SCENARIO_COLUMNS}
    return {**row, **record.metrics.to_json(), "error": record.error}


def _bench_row(record: BenchRecord) -> dict[str, Any]:
    return {name: getattr(record, name) for name in BENCH_COLUMNS}
