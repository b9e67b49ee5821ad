"""The report of a hardware suite's run (``hardware[]`` rows, SPEC §6): the table of img/s, ms per step, compile
time, memory, GMACs and utilisation per arch × batch × precision × mode, the roofline the utilisation is measured
against, and throughput against batch per arch. :func:`markdown_document`, :func:`terminal_document` and
:func:`html_document` lay it out for ``report.md``, the end of a pytest run and ``report.html``; the run report's
modules hand a report with hardware rows here."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from cnnbench.engine.measurement import BenchRecord
from cnnbench.report import fmt, views
from cnnbench.report.layout import Block, Document, Figure, Paragraph, Section, Table, bold, code, para, spans, table
from cnnbench.results.records import Environment, Report

HARDWARE_NOTE = (
    "Each arch at its canonical config (input size, channels, width, 1,000 classes), timed in steady state after "
    "compiling and a warm-up. img/s at the median step over the rounds, [slowest–fastest round]; memory: XLA's "
    "analysis of the compiled program; GMACs per image counted from the model's jaxpr; TFLOP/s: model FLOPs "
    "(2 per MAC, a train step 3× the forward) per second; util: that over the run's measured peak (roofline)."
)


def memory(value: int | None) -> str:
    """Bytes as MiB or GiB."""
    if value is None:
        return "-"
    return f"{value / 2**30:.2f} GiB" if value >= 2**30 else f"{value / 2**20:.1f} MiB"


def _spread(row: BenchRecord) -> str:
    if row.images_per_s_low is None or row.images_per_s_high is None:
        return "-"
    return f"{fmt.rate(row.images_per_s_low)}–{fmt.rate(row.images_per_s_high)}"


def _util(row: BenchRecord) -> str:
    return "-" if row.utilisation is None else f"{100 * row.utilisation:.1f}"


def hardware_table(rows: Sequence[BenchRecord], wide: bool = True) -> Table:
    """The hardware table, one row per bench point (``wide``: every column; else the terminal's)."""
    if not wide:
        header = ["arch", "batch", "prec", "mode", "img/s", "ms/step", "memory", "TFLOP/s", "util %", "status"]
        cells = [[r.arch, str(r.batch), r.precision, r.mode, fmt.rate(r.images_per_s), fmt.num(r.step_ms, ".1f"),
                  memory(r.memory_bytes), fmt.num(r.tflops, ".3g"), _util(r), r.status] for r in rows]  # fmt: skip
        return table(header, cells, range(4, 9))
    header = ["arch", "batch", "precision", "mode", "img/s", "[slowest–fastest]", "ms/step", "compile s",
              "memory (XLA)", "device peak", "GMACs/img", "TFLOP/s", "util %", "status"]  # fmt: skip
    cells = [[r.arch, str(r.batch), r.precision, r.mode, fmt.rate(r.images_per_s), _spread(r),
              fmt.num(r.step_ms, ".2f"), fmt.num(r.compile_s, ".1f"), memory(r.memory_bytes),
              memory(r.device_peak_bytes), fmt.num(r.gmacs_per_image, ".4g"), fmt.num(r.tflops, ".3g"), _util(r),
              r.status if r.error is None else f"{r.status}: {fmt.one_line(r.error, 120)}"]
             for r in rows]  # fmt: skip
    return table(header, cells, range(4, 13))


def roofline_line(env: Environment) -> str:
    """The measured peaks the utilisation divides by, and the datasheet's where the device is known."""
    roofline: Mapping[str, Any] = env.value("roofline") or {}
    if not roofline:
        return "No roofline probe in this report: utilisation is not known."
    parts = []
    for precision in roofline.get("matmul_tflops") or {}:
        matmul = (roofline.get("matmul_tflops") or {}).get(precision)
        conv = (roofline.get("conv_tflops") or {}).get(precision)
        parts.append(f"{precision}: matmul {fmt.num(matmul, '.3g')}, conv {fmt.num(conv, '.3g')}")
    sheet = roofline.get("datasheet_tflops")
    known = (f"; datasheet {', '.join(f'{p} {v:g}' for p, v in sheet.items())}" if sheet
             else "; no datasheet figure for this device")  # fmt: skip
    return f"Roofline probe (measured TFLOP/s) on {roofline.get('device_kind', '?')}: {'; '.join(parts)}{known}."


def _counts(rows: Sequence[BenchRecord]) -> str:
    statuses = fmt.unique(r.status for r in rows)
    return ", ".join(f"{sum(r.status == s for r in rows)} {s}" for s in statuses)


def _intro(report: Report) -> list[Block]:
    env, suite = report.environment, views.suite_name(report)
    return [
        para(f"Started {report.started}, {views.ending(report)}; hardware suite ",
             code(suite or "?"), ", hash ", code(env.suite_hash), "."),
        para(f"Environment: {views.environment_line(env)}."),
        para(bold(f"{len(report.hardware)} bench points:"), f" {_counts(report.hardware)}."),
        para(roofline_line(env)),
    ]  # fmt: skip


def markdown_document(report: Report) -> Document:
    """``report.md`` of a hardware run: the header, the roofline, the hardware table and where the time went."""
    return Document(spans(["cnnbench hardware report ", code(report.run_id)]), _intro(report),
                    [Section("Hardware", [para(HARDWARE_NOTE), hardware_table(report.hardware)]),
                     *views.profile_sections(report)])  # fmt: skip


def terminal_document(report: Report) -> Document:
    """The end of a pytest run of a hardware suite: the roofline, the short hardware table and where the time
    went."""
    title = f"cnnbench {report.run_id}: {len(report.hardware)} bench points — {_counts(report.hardware)}"
    return Document(spans([title]), [para(roofline_line(report.environment))],
                    [Section("", [hardware_table(report.hardware, wide=False)]),
                     *views.profile_sections(report)])  # fmt: skip


def html_document(report: Report) -> Document:
    """``report.html`` of a hardware run: the header, throughput against batch per arch, the table and the
    environment."""
    rows = report.hardware

    def draw() -> bytes:
        from cnnbench.report import plots  # matplotlib loads when the HTML draws a figure, never for markdown

        return plots.throughput_by_batch(rows)

    timed = [r for r in rows if r.images_per_s]
    plot: Block | Paragraph = (
        Figure(draw, "images per second against batch size, per arch", "One panel per mode; a line per arch and "
               "precision (solid fp32, dashed bf16). Both axes are logarithmic.")
        if timed else para("No bench point was timed.", cls="muted")
    )  # fmt: skip
    sections = [
        Section("Hardware", [plot, para(HARDWARE_NOTE), hardware_table(rows)], "hardware"),
        Section("Environment", [views.environment_table(report.environment)], "environment"),
    ]
    return Document(spans(["cnnbench hardware report ", code(report.run_id)]), _intro(report), sections, nav=True,
                    page_title=f"cnnbench hardware report {report.run_id}")  # fmt: skip
