"""Writing the run report: ``report.json``, ``report.md``, ``results.csv`` and, when the run finishes,
``report.html`` and the layer-transfer plot, each through :func:`cnnbench.fileio.atomic_write`, into the run's
folder, which ``latest`` then points to.

A run's folder is claimed exclusively (:func:`claim_run_dir`), so two runs started in the same second never share
one. ``latest`` is a relative symbolic link to the newest run folder written, swapped atomically: a reader sees one
run's complete set of files, never a mix of two runs' (where symbolic links are not allowed, a copy of the run
folder is renamed into place instead).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
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


def claim_run_dir(root: str | os.PathLike[str], run_id: str) -> Path:
    """Create the run folder ``root/<run_id>`` exclusively, or, when another run holds that name already (two runs
    started in the same second), ``<run_id>-2``, ``-3``, …; returns the folder, whose name is the run's id."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    base = _run_dir_name(run_id)
    for n in range(1, 10_000):
        run_dir = root / (base if n == 1 else f"{base}-{n}")
        try:
            run_dir.mkdir()
        except FileExistsError:
            continue
        return run_dir
    raise FileExistsError(f"{root} holds 10,000 runs named {base}-*; remove old ones")


def write_report(report: Report | Mapping[str, Any], root: str | os.PathLike[str], plots: bool = True) -> Path:
    """Write ``report.json``, ``report.md`` and ``results.csv`` (and, with ``plots``, ``report.html`` and the
    layer-transfer PNG) into ``root/<run_id>/`` (claimed by :func:`claim_run_dir` when the run began), each file
    replaced atomically, then point ``root/latest`` at it. Without plots it is cheap enough to call after every
    scenario. The data files are written before the page is rendered, so a failure to render it loses none of them.
    Returns the run folder."""
    report = as_report(report)
    run_dir = Path(root) / _run_dir_name(report.run_id)
    _write_files(run_dir, _contents(report, plots=False))
    point_latest(run_dir)
    if plots:
        _write_files(run_dir, _contents(report, plots=True, data=False))
        point_latest(run_dir)  # a copy (no symbolic links here) gets the page too
    return run_dir


def point_latest(run_dir: Path) -> None:
    """Make ``latest`` beside ``run_dir`` show it: a relative symbolic link swapped in with one rename, or where
    links are not allowed a copy of the folder; a ``latest/`` folder (cnnbench 0.1 wrote one) is replaced."""
    latest = run_dir.parent / LATEST
    if latest.is_symlink() and os.readlink(latest) == run_dir.name:
        return
    fresh = run_dir.parent / f".{LATEST}.{secrets.token_hex(4)}"
    try:
        os.symlink(run_dir.name, fresh, target_is_directory=True)
    except OSError:  # no symbolic links here (Windows without the privilege): a copy, renamed into place
        shutil.copytree(run_dir, fresh)
    if (latest.is_symlink() or latest.exists()) and not (latest.is_symlink() and fresh.is_symlink()):
        stale = run_dir.parent / f".{LATEST}.old.{secrets.token_hex(4)}"
        os.rename(latest, stale)  # only a link replaces a link in one rename: a folder is moved aside, then removed
        os.replace(fresh, latest)
        if stale.is_symlink():
            stale.unlink()
        else:
            shutil.rmtree(stale, ignore_errors=True)
        return
    os.replace(fresh, latest)


def write_report_into(report: Report | Mapping[str, Any], directory: str | os.PathLike[str]) -> Path:
    """Write every file of the report (json, md, csv, html and plots) straight into ``directory`` (``cnnbench
    merge -o`` and ``cnnbench gate -o``: no run folder, no ``latest/``); returns ``directory``."""
    directory = Path(directory)
    contents = _contents(as_report(report), plots=True)
    _write_files(directory, contents)
    if layer_transfer.PLOT not in contents:
        (directory / layer_transfer.PLOT).unlink(missing_ok=True)
    return directory


def _contents(report: Report, plots: bool, data: bool = True) -> dict[str, str | bytes]:
    contents: dict[str, str | bytes] = {}
    if data:
        contents |= {"report.json": report_json(report), "report.md": render_markdown(report),
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
