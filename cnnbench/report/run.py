"""The run report as text (SPEC §8): :func:`render_markdown` (``report.md``, the tables a person reads in a CI log or
a PR) and :func:`terminal_summary` (the compact version printed at the end of a pytest run). Both lay out a typed
:class:`~cnnbench.results.records.Report` (or its ``cnnbench/1`` JSON form) with
:mod:`cnnbench.report.run_text` and render it with :mod:`cnnbench.report.markdown` or
:mod:`cnnbench.report.terminal`; ``report.html`` is :func:`cnnbench.report.html.render_html`, the files are written
by :mod:`cnnbench.report.io`. A report is built by :func:`cnnbench.results.build.build_report` and
loaded by :func:`cnnbench.results.schema.load_report`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cnnbench.report import markdown, terminal
from cnnbench.report.run_text import markdown_document, terminal_document
from cnnbench.results.records import Report, as_report


def render_markdown(report: Report | Mapping[str, Any]) -> str:
    """The report as GitHub markdown: header, targets, accuracy and transfer-gain tables per arch and head, the
    recommendation check, throughput, the layer-transfer curve, the quality gate and the scenarios that did not
    pass."""
    return markdown.render(markdown_document(as_report(report)))


def terminal_summary(report: Report | Mapping[str, Any], width: int = 100) -> list[str]:
    """Compact lines for the end of a pytest run, none longer than ``width`` (but for a word, such as a file path,
    too long to fit): per arch × head the strategy × quadrant accuracy table, which strategy won where and whether
    the recommendation held, the quality gate's verdicts, status counts and the scenarios that did not pass. The
    caller adds where the report was written."""
    return terminal.render(terminal_document(as_report(report)), width)
