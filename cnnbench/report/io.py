"""Writing the run report: ``report.json``, ``report.md``, ``results.csv`` and, when the run finishes,
``report.html`` and the layer-transfer plot, each through :func:`cnnbench.fileio.atomic_write`, into the run's
folder and ``latest/``."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cnnbench.fileio import atomic_write
from cnnbench.report.flat import results_csv
from cnnbench.report.run import render_markdown
from cnnbench.results import layer_transfer
from cnnbench.results.records import Report, as_report

LATEST = "latest"


def report_json(report: Report | Mapping[str, Any]) -> str:
    """The report as the text of ``report.json`` (strict JSON, one key per line at the top)."""
    data = report.to_json() if isinstance(report, Report) else report
    return json.dumps(data, indent=1, allow_nan=False) + "\n"


def write_report(report: Report | Mapping[str, Any], root: str | os.PathLike[str], plots: bool = True) -> Path:
    """Write ``report.json``, ``report.md`` and ``results.csv`` (and, with ``plots``, ``report.html`` and the
    layer-transfer PNG) to ``root/<run_id>/`` and refresh ``root/latest/``, each file replaced atomically. Without
    plots it is cheap enough to call after every scenario. Returns the run directory."""
    report = as_report(report)
    root = Path(root)
    run_dir = root / _run_dir_name(report.run_id)
    contents = _contents(report, plots)
    for directory in (run_dir, root / LATEST):
        _write_files(directory, contents)
    if plots and layer_transfer.PLOT not in contents:  # latest/ must not keep an earlier run's curve
        (root / LATEST / layer_transfer.PLOT).unlink(missing_ok=True)
    return run_dir


def write_report_into(report: Report | Mapping[str, Any], directory: str | os.PathLike[str]) -> Path:
    """Write every file of the report (json, md, csv, html and plots) straight into ``directory`` (``cnnbench
    merge -o`` and ``cnnbench gate -o``: no run folder, no ``latest/``); returns ``directory``."""
    directory = Path(directory)
    contents = _contents(as_report(report), plots=True)
    _write_files(directory, contents)
    if layer_transfer.PLOT not in contents:
        (directory / layer_transfer.PLOT).unlink(missing_ok=True)
    return directory


def _contents(report: Report, plots: bool) -> dict[str, str | bytes]:
    contents: dict[str, str | bytes] = {"report.json": report_json(report), "report.md": render_markdown(report),
                                        "results.csv": results_csv(report)}  # fmt: skip
    if plots:  # html and the plots load matplotlib, which the per-scenario rewrite must not: imported when used
        from cnnbench.report.html import render_html
        from cnnbench.report.plots import layer_transfer_curve

        contents["report.html"] = render_html(report)
        if report.layer_transfer:
            contents[layer_transfer.PLOT] = layer_transfer_curve(report.layer_transfer)
    return contents


def _write_files(directory: Path, contents: Mapping[str, str | bytes]) -> None:
    for name, data in contents.items():
        atomic_write(directory / name, data)


def _run_dir_name(run_id: str) -> str:
    if not run_id or run_id in (".", "..", LATEST) or "/" in run_id or os.sep in run_id:
        raise ValueError(f"run id {run_id!r} cannot name a report directory; use a plain name such as a timestamp")
    return run_id
