"""``results.csv``: a run's rows flat, one per scenario (or per bench point of a hardware suite), ready for pandas
and dashboards (SPEC §8). Each row repeats the run's identity — run id, suite and its hash, commit, fingerprint,
backend, device kind — so the files of many runs concatenate into one table."""

from __future__ import annotations

import csv
import io
from dataclasses import fields
from typing import Any

from cnnbench.engine.measurement import BenchRecord, Metrics
from cnnbench.results.records import Report, ScenarioRecord

RUN_COLUMNS = ("run_id", "suite", "suite_hash", "git_commit", "fingerprint", "backend", "device_kind", "device_count")
SCENARIO_COLUMNS = ("id", "arch", "strategy", "quadrant", "head", "seed", "layer_transfer", "target", "precision",
                    "status")  # fmt: skip
BENCH_COLUMNS = ("id", "arch", "batch", "precision", "mode", "status", "images_per_s", "images_per_s_low",
                 "images_per_s_high", "step_ms", "step_ms_stddev", "rounds", "compile_s", "memory_bytes",
                 "device_peak_bytes", "gmacs_per_image", "tflops", "utilisation", "img_size", "in_chans", "params",
                 "error")  # fmt: skip


def results_csv(report: Report) -> str:
    """The report's rows as CSV text with a header; empty cells where a figure is unknown."""
    env = report.environment
    run = {"run_id": report.run_id, "suite": (report.suite or {}).get("name"), "suite_hash": env.suite_hash,
           "git_commit": env.git_commit, "fingerprint": env.fingerprint, "backend": env.backend,
           "device_kind": env.device_kind, "device_count": env.device_count}  # fmt: skip
    if report.hardware:
        columns = [*RUN_COLUMNS, *BENCH_COLUMNS]
        rows = [{**run, **_bench_row(r)} for r in report.hardware]
    else:
        columns = [*RUN_COLUMNS, *SCENARIO_COLUMNS, *(f.name for f in fields(Metrics)), "error"]
        rows = [{**run, **_scenario_row(s)} for s in report.scenarios]
    out = io.StringIO()
    writer = csv.DictWriter(out, columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def _scenario_row(record: ScenarioRecord) -> dict[str, Any]:
    row = {name: getattr(record, name) for name in SCENARIO_COLUMNS}
    return {**row, **record.metrics.to_json(), "error": record.error}


def _bench_row(record: BenchRecord) -> dict[str, Any]:
    return {name: getattr(record, name) for name in BENCH_COLUMNS}
