"""Schema ``cnnbench/1`` (docs/report-schema.md): the keys every report holds, the check of a report against them
and the loading of a stored report, as JSON (:func:`load_report`) or typed (:func:`read_report`)."""

from __future__ import annotations

import json
import os
import reprlib
import sys
from pathlib import Path
from typing import Any

from cnnbench.engine.measurement import BENCH_STATUSES, METRIC_COUNTS
from cnnbench.results.records import SCHEMA, STATUSES, Report

REPORT_FILE = "report.json"

# Keys every cnnbench/1 report holds (SPEC §8); more may be added, none renamed without bumping SCHEMA.
REQUIRED_KEYS = {
    "report": ("schema", "run_id", "started", "finished", "environment", "targets", "scenarios", "recommendation"),
    "environment": (
        "cnnbench", "jax", "flax", "optax", "backend", "device_kind", "device_count", "cpu", "git_commit", "suite_hash",
    ),
    "target": ("name", "quadrant", "n_train", "n_test", "n_classes", "similarity"),
    "scenario": ("id", "arch", "strategy", "quadrant", "head", "seed", "status", "metrics"),
    "metrics": (
        "test_accuracy", "transfer_gain", "train_images_per_s", "infer_images_per_s", "compile_s", "train_s",
        "params_trainable", "params_total", "gflops",
    ),
    "recommendation": ("arch", "quadrant", "head", "recommended", "winner", "recommended_won"),
    # the optional ``gate`` section (cnnbench.results.gate.summarize), complete whenever it is present
    "gate": ("baseline", "same_suite", "tolerances", "throughput_comparable", "throughput_note", "counts", "groups",
             "throughput", "regressed", "throughput_regressed", "new", "missing", "not_run", "not_selected"),
    "gate_group": ("group", "arch", "strategy", "quadrant", "head", "verdict", "message", "accuracy"),
    "gate_program": ("program", "arch", "strategy", "head", "verdict", "message", "n_baseline", "n_new",
                     "allowed_ratio", "train_baseline", "train_new", "train_ratio", "infer_baseline", "infer_new",
                     "infer_ratio"),
    # the optional ``hardware`` section: a hardware suite's rows (cnnbench.engine.measurement.BenchRecord)
    "hardware": ("id", "arch", "batch", "precision", "mode", "status", "images_per_s", "step_ms", "compile_s",
                 "memory_bytes", "gmacs_per_image", "tflops", "utilisation"),
    # the optional ``profile`` section: where the run's time went (cnnbench.profiling)
    "profile": ("wall_s", "processes", "process_s", "other_s", "phases"),
    "phase": ("name", "seconds", "calls"),
}  # fmt: skip
METRIC_KEYS = (*REQUIRED_KEYS["metrics"], "val_accuracy", "time_to_final_s", "peak_memory_bytes")
assert set(METRIC_COUNTS) <= set(METRIC_KEYS)

__all__ = [
    "METRIC_KEYS",
    "REPORT_FILE",
    "REQUIRED_KEYS",
    "listing",
    "load_report",
    "read_report",
    "report_file",
    "validate",
]


_REPR = reprlib.Repr()  # values quoted in problems: cut short, and never recursing deeper than a few levels
_REPR.maxstring = _REPR.maxother = 60
_REPR.maxlevel = 3


def _shown(value: Any) -> str:
    """``repr(value)``, shortened: a hostile report cannot make a problem message huge or deeply recursive."""
    return _REPR.repr(value)


def validate(report: Any) -> list[str]:
    """What is wrong with ``report`` as a ``cnnbench/1`` report: missing keys at any level (the optional ``gate``
    section complete when present), metrics that are not numbers or null, unknown statuses; empty when it is
    well formed."""
    if not isinstance(report, dict):
        return [f"the top level is a JSON {type(report).__name__}, not an object"]
    if report.get("schema") != SCHEMA:
        return [f"schema is {_shown(report.get('schema'))}; expected {SCHEMA!r}"]
    problems = _missing(report, "report", "the report")
    if "environment" in report:
        problems += _missing(report["environment"], "environment", "environment")
    for kind, section in (("target", "targets"), ("scenario", "scenarios"), ("recommendation", "recommendation")):
        problems += _missing_in_list(report.get(section), kind, section)
    for i, scenario in enumerate(report.get("scenarios") or []):
        if isinstance(scenario, dict):
            problems += _scenario_problems(scenario, _where("scenarios", i, scenario))
    if report.get("gate") is not None:
        section = report["gate"]
        problems += _missing(section, "gate", "gate")
        for kind, key in (("gate_group", "groups"), ("gate_program", "throughput")):
            problems += _missing_in_list(section.get(key) if isinstance(section, dict) else None, kind, f"gate.{key}")
    if "hardware" in report:
        rows = report["hardware"]
        problems += _missing_in_list(rows, "hardware", "hardware")
        for i, row in enumerate(rows if isinstance(rows, list) else []):
            if isinstance(row, dict) and row.get("status", BENCH_STATUSES[0]) not in BENCH_STATUSES:
                where = _where("hardware", i, row)
                problems.append(
                    f"{where} has status {_shown(row['status'])}; expected one of {', '.join(BENCH_STATUSES)}"
                )
    if "profile" in report:
        section = report["profile"]
        problems += _missing(section, "profile", "profile")
        problems += _missing_in_list(section.get("phases") if isinstance(section, dict) else None, "phase",
                                     "profile.phases")  # fmt: skip
    return problems


def _missing(obj: Any, kind: str, where: str) -> list[str]:
    if not isinstance(obj, dict):
        return [f"{where} is not an object"]
    return [f"{where} lacks {key!r}" for key in REQUIRED_KEYS[kind] if key not in obj]


def _missing_in_list(items: Any, kind: str, section: str) -> list[str]:
    if items is None:
        return []  # already reported as a missing top-level key
    if not isinstance(items, list):
        return [f"{section} is not a list"]
    return [problem for i, item in enumerate(items) for problem in _missing(item, kind, _where(section, i, item))]


def _where(section: str, index: int, item: Any) -> str:
    """``scenarios[3] (resnet18-s2-q3-gap)``: an item's place, and its id when it has one."""
    has_id = isinstance(item, dict) and "id" in item
    return f"{section}[{index}]" + (f" ({str(item['id'])[:80]})" if has_id else "")


def _scenario_problems(scenario: dict[str, Any], where: str) -> list[str]:
    problems = []
    if "metrics" in scenario:
        problems += _missing(scenario["metrics"], "metrics", f"{where}.metrics")
        if isinstance(scenario["metrics"], dict):
            problems += [
                f"{where}.metrics.{key[:60]} is {_shown(value)}, not a number or null"
                for key, value in scenario["metrics"].items()
                if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)))
            ]
    if "status" in scenario and scenario["status"] not in STATUSES:
        problems.append(f"{where} has status {_shown(scenario['status'])}; expected one of {', '.join(STATUSES)}")
    return problems


def load_report(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The report stored at ``path`` as JSON data, checked against schema ``cnnbench/1``; raises ValueError naming
    the file and what is wrong (unreadable, not JSON, wrong schema, missing keys)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read report {path}: {exc}") from exc
    try:
        report = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"{path} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); "
            f"regenerate it or point to another report.json"
        ) from exc
    except RecursionError:
        raise ValueError(_too_deep(path)) from None
    except ValueError as exc:  # e.g. an integer of more digits than Python converts (sys.set_int_max_str_digits)
        raise ValueError(f"{path} is not usable JSON ({exc}); regenerate it or point to another report.json") from exc
    try:
        problems = validate(report)
    except RecursionError:  # a value nested too deeply to describe (repr) in a problem
        raise ValueError(_too_deep(path)) from None
    if problems:
        raise ValueError(f"{path} is not a {SCHEMA} report: {listing(problems)}")
    return report


def _too_deep(path: Path) -> str:
    return (f"{path} is not a usable report: its JSON is nested too deeply (over Python's recursion limit of "
            f"{sys.getrecursionlimit()}); a cnnbench report is a few levels deep: regenerate it or point to another "
            "report.json")  # fmt: skip


def read_report(path: str | os.PathLike[str]) -> Report:
    """The report stored at ``path``, checked (as :func:`load_report`) and typed."""
    return Report.from_json(load_report(path))


def report_file(path: str | os.PathLike[str]) -> Path:
    """``path`` itself, or the ``report.json`` of the run directory ``path`` (such as ``reports/latest``); raises
    ValueError for a directory without one."""
    file = Path(path)
    if file.is_dir():
        file = file / REPORT_FILE
        if not file.is_file():
            raise ValueError(f"{path} is a directory without a {REPORT_FILE}; pass a run directory such as "
                             "reports/latest or a report file")  # fmt: skip
    return file


def listing(problems: list[str], limit: int = 5) -> str:
    more = f"; and {len(problems) - limit} more" if len(problems) > limit else ""
    return "; ".join(problems[:limit]) + more
