"""The figures of the HTML report, drawn with matplotlib into PNG bytes.

Every function builds a ``matplotlib.figure.Figure`` and prints it through the Agg canvas, so nothing here
selects a backend or touches pyplot's global state. Inputs are typed views of a report (the per-seed
aggregates of ``results.aggregate.over_seeds``, scenario records, layer-transfer points), and every figure stays
readable from one arch, head and seed up to the ``standard`` suite's 9 archs × 4 strategies × 4 quadrants × 3 heads
× 3 seeds.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from matplotlib import colormaps
from matplotlib.artist import Artist
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from cnnbench.config.quadrants import QUADRANT_LABELS, RECOMMENDED
from cnnbench.engine.measurement import BenchRecord
from cnnbench.report import fmt
from cnnbench.report.views import QUADRANT_ORDER, ParetoPoint, gain_grid
from cnnbench.results import layer_transfer, recommend
from cnnbench.results.aggregate import SeedStats
from cnnbench.results.records import GroupKey, LayerPoint, ScenarioRecord

DPI = 100
SHORT_CURVE = 5  # a curve of at most this many evaluations also gets point markers (a single one has no line)
GAIN_CLIP = 25.0  # points: the heatmap's colour saturates beyond, so that gains of a few points still show a hue
STRATEGY_COLOURS = {"s1": "#1f77b4", "s2": "#ff7f0e", "s3": "#2ca02c", "scratch": "#7f7f7f"}
EXTRA_COLOURS = ("#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22")
STRATEGY_MARKERS = {"s1": "o", "s2": "s", "s3": "^", "scratch": "X"}
EXTRA_MARKERS = ("D", "P", "*", "v", "h")
HEAD_FILLS = ("full", "none", "bottom", "left", "top")
ARCH_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22",
                "#7f7f7f")  # fmt: skip

Stats = Mapping[GroupKey, SeedStats]


def _t(key: GroupKey) -> tuple[str, str, str, str]:
    """A group key as the (arch, strategy, quadrant, head) tuple the grids below index by; a part left out of the
    key reads as ``""``."""
    return key.arch or "", key.strategy or "", key.quadrant or "", key.head or ""


def accuracy_bars(arch: str, stats: Stats) -> bytes:
    """Grouped bars of one arch's mean test accuracy (%): one panel per head, quadrants along x, one bar per
    strategy with the std over seeds as error bar; the recommended strategy of each quadrant is outlined and
    marked ▼, so the seed notes' advice can be read against the measurement."""
    cells = {_t(key): entry for key, entry in stats.items() if key.arch == arch}
    strategies, quadrants, heads = _levels(cells, 1), _levels(cells, 2), _levels(cells, 3)
    fig = Figure(figsize=(min(4.2 * len(heads), 13), 3.6), dpi=DPI, layout="constrained")
    axes = fig.subplots(1, len(heads), sharey=True, squeeze=False)[0]
    width = 0.8 / len(strategies)
    for ax, head in zip(axes, heads, strict=True):
        for i, strategy in enumerate(strategies):
            for x, quadrant in enumerate(quadrants):
                entry = cells.get((arch, strategy, quadrant, head))
                if entry is None:
                    continue
                mean, std = 100 * entry.mean, 100 * entry.std
                recommended = RECOMMENDED.get(quadrant) == strategy
                position = x - 0.4 + width * (i + 0.5)
                ax.bar(position, mean, width, yerr=std or None, capsize=2, color=_colour(strategy),
                       edgecolor="black" if recommended else "none", linewidth=1.4 if recommended else 0,
                       error_kw={"elinewidth": 0.8})  # fmt: skip
                if recommended:
                    ax.plot(position, min(mean + std + 3, 104), marker="v", color="black", markersize=5)
        ax.set_xticks(range(len(quadrants)), quadrants)
        ax.set_title(f"{arch} · {head} head", fontsize=10)
        ax.set_ylim(0, 108)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("test accuracy (%)")
    handles: list[Artist] = [Patch(color=_colour(s), label=s) for s in strategies]
    handles.append(Line2D([], [], marker="v", color="black", linestyle="none", label="recommended"))
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=8, frameon=False)
    return to_png(fig)


def gain_heatmap(gains: Mapping[GroupKey, float | None]) -> bytes:
    """A diverging heatmap of the transfer gain over ``scratch`` in accuracy points: one row per arch × strategy,
    one column per quadrant × head, each cell annotated with its number (blank grey: no result or no scratch)."""
    rows, columns = gain_grid(gains)
    by_tuple = {_t(k): v for k, v in gains.items()}
    values = [[_points(by_tuple.get((a, s, q, h))) for q, h in columns] for a, s in rows]
    largest = max((abs(v) for row in values for v in row if not math.isnan(v)), default=1.0)
    limit = min(max(largest, 1.0), GAIN_CLIP)
    fig = Figure(figsize=(2.2 + 0.62 * len(columns), 1.3 + 0.3 * len(rows)), dpi=DPI, layout="constrained")
    ax = fig.subplots()
    cmap = colormaps["RdBu"].with_extremes(bad="#eeeeee")
    image = ax.imshow(values, cmap=cmap, norm=TwoSlopeNorm(0.0, -limit, limit), aspect="auto")
    for r, row in enumerate(values):
        for c, value in enumerate(row):
            if not math.isnan(value):
                ink = "white" if abs(value) > 0.6 * limit else "black"
                ax.text(c, r, f"{value:+.1f}", ha="center", va="center", fontsize=7.5, color=ink)
    ax.set_xticks(range(len(columns)), [f"{q}\n{h}" for q, h in columns], fontsize=8)
    ax.set_yticks(range(len(rows)), [f"{a} · {s}" for a, s in rows], fontsize=8)
    ax.xaxis.tick_top()
    for r in range(1, len(rows)):
        if rows[r][0] != rows[r - 1][0]:
            ax.axhline(r - 0.5, color="black", linewidth=1)
    for c in range(1, len(columns)):
        if columns[c][0] != columns[c - 1][0]:
            ax.axvline(c - 0.5, color="black", linewidth=1)
    fig.colorbar(image, ax=ax, label="gain over scratch (points)", extend="both" if largest > limit else "neither",
                 shrink=min(1.0, 4 / len(rows) + 0.3))  # fmt: skip
    return to_png(fig)


@dataclass(frozen=True)
class CostPoint:
    """One group on the accuracy-vs-throughput plot: its coordinates, train images/s and mean test accuracy (a
    fraction)."""

    arch: str
    strategy: str
    quadrant: str
    head: str
    train_images_per_s: float
    accuracy: float


def accuracy_vs_throughput(points: Sequence[CostPoint]) -> bytes:
    """Mean test accuracy (%) against training throughput (images/s, log scale), one panel per quadrant: colour is
    the arch, marker the strategy, fill the head."""
    keys = [(p.arch, p.strategy, p.quadrant, p.head) for p in points]
    archs, strategies, quadrants, heads = (_levels(keys, i) for i in range(4))
    columns = min(len(quadrants), 2)
    rows = math.ceil(len(quadrants) / columns)
    fig = Figure(figsize=(5.0 * columns + 1.8, 3.0 * rows), dpi=DPI, layout="constrained")
    axes = fig.subplots(rows, columns, sharex=True, squeeze=False).ravel()
    for ax, quadrant in zip(axes, quadrants, strict=False):
        for point in (p for p in points if p.quadrant == quadrant):
            ax.plot(point.train_images_per_s, 100 * point.accuracy, linestyle="none", markersize=7,
                    marker=_marker(point.strategy), color=ARCH_COLOURS[archs.index(point.arch) % 10],
                    fillstyle=HEAD_FILLS[heads.index(point.head) % len(HEAD_FILLS)], alpha=0.85)  # fmt: skip
        ax.set_xscale("log")
        ax.set_title(f"{quadrant} ({QUADRANT_LABELS.get(quadrant, '?')})", fontsize=10)
        ax.set_xlabel("train images/s (log)")
        ax.set_ylabel("test accuracy (%)")
        ax.grid(alpha=0.3, which="both")
        ax.tick_params(labelbottom=True)  # sharex would hide them above an empty panel
    for ax in axes[len(quadrants) :]:
        ax.set_visible(False)
    handles: list[Artist] = [Patch(color=ARCH_COLOURS[i % 10], label=a) for i, a in enumerate(archs)]
    handles += [_legend_marker(s, label=s) for s in strategies]
    handles += [_legend_marker("", fillstyle=HEAD_FILLS[i % len(HEAD_FILLS)], label=f"{h} head")
                for i, h in enumerate(heads)]  # fmt: skip
    fig.legend(handles=handles, loc="outside right center", fontsize=8, frameon=False)
    return to_png(fig)


def learning_curves(arch: str, scenarios: Sequence[ScenarioRecord]) -> bytes:
    """One arch's validation accuracy (%) against the training step: rows are heads, columns quadrants, one colour
    per strategy and one thin line per seed; a dotted line marks where two-phase fine-tuning unfroze the base."""
    runs = [s for s in scenarios if s.arch == arch and curve_points(s)]
    keys = [_t(s.key) for s in runs]
    strategies, quadrants, heads = _levels(keys, 1), _levels(keys, 2), _levels(keys, 3)
    fig = Figure(figsize=(min(3.3 * len(quadrants) + 1.2, 14), 2.5 * len(heads) + 0.6), dpi=DPI,
                 layout="constrained")  # fmt: skip
    axes = fig.subplots(len(heads), len(quadrants), sharey=True, squeeze=False)
    two_phase = False
    for (r, head), (c, quadrant) in ((rh, cq) for rh in enumerate(heads) for cq in enumerate(quadrants)):
        ax, cell = axes[r][c], [s for s, k in zip(runs, keys, strict=True) if k[2:] == (quadrant, head)]
        for scenario in cell:
            steps, accuracies = zip(*curve_points(scenario), strict=True)
            ax.plot(steps, accuracies, color=_colour(scenario.strategy), linewidth=0.9, alpha=0.8,
                    marker="o" if len(steps) <= SHORT_CURVE else None, markersize=2.5)  # fmt: skip
        unfrozen = [p.step for s in cell for p in s.curve if p.phase == "head"]
        if unfrozen:
            two_phase = True
            ax.axvline(max(unfrozen), color="black", linestyle=":", linewidth=0.8)
        if not cell:
            ax.text(0.5, 0.5, "no curve", transform=ax.transAxes, ha="center", va="center", color="#888888")
        ax.set_title(f"{head} · {quadrant}", fontsize=9)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
        if c == 0:
            ax.set_ylabel("val accuracy (%)", fontsize=8)
        if r == len(heads) - 1:
            ax.set_xlabel("step", fontsize=8)
    handles: list[Any] = [Line2D([], [], color=_colour(s), label=s) for s in strategies]
    if two_phase:
        handles.append(Line2D([], [], color="black", linestyle=":", label="base unfrozen"))
    fig.suptitle(f"{arch}: validation accuracy during training (one line per seed)", fontsize=10)
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=8, frameon=False)
    return to_png(fig)


def curve_points(scenario: ScenarioRecord) -> list[tuple[float, float]]:
    """(step, val accuracy %) of a scenario's curve, points without a finite accuracy left out; empty when there is
    nothing to draw."""
    return [(p.step, 100 * p.val_accuracy) for p in scenario.curve if p.val_accuracy is not None]


def _levels(keys: Iterable[tuple[str, str, str, str]], index: int) -> list[str]:
    """The distinct values at ``index`` of (arch, strategy, quadrant, head) keys, strategies and quadrants in their
    canonical order, archs and heads in the order first seen."""
    canonical = {1: recommend.STRATEGY_ORDER, 2: QUADRANT_ORDER}.get(index, ())
    return fmt.ordered((key[index] for key in keys), canonical)


def _points(gain: float | None) -> float:
    return math.nan if gain is None else 100 * gain


def _colour(strategy: str) -> str:
    return _pick(strategy, STRATEGY_COLOURS, EXTRA_COLOURS)


def layer_transfer_curve(rows: Sequence[LayerPoint]) -> bytes:
    """Accuracy vs frozen stages per layer-transfer curve (``layer_transfer.points``), the spread over seeds as
    error bars and the same arch's ``scratch`` dashed."""
    fig = Figure(figsize=(6, 4), dpi=DPI)
    ax = fig.add_subplot()
    for (arch, quadrant, head), curve in layer_transfer.curves(rows).items():
        shown = [(p.frozen, 100 * p.mean, 100 * p.std) for p in curve if p.mean is not None]
        line = ax.errorbar([x for x, _, _ in shown], [y for _, y, _ in shown],
                           yerr=[e for _, _, e in shown], marker="o", capsize=3,
                           label=f"{arch} · {quadrant} · {head}")  # fmt: skip
        if curve[0].scratch is not None:
            ax.axhline(100 * curve[0].scratch, linestyle="--", color=line[0].get_color(), alpha=0.6,
                       label=f"{arch} scratch")  # fmt: skip
        ax.set_xticks([p.frozen for p in curve], [f"{p.frozen}\n{p.last_frozen or ''}" for p in curve],
                      fontsize=7)  # fmt: skip
    ax.set_xlabel("frozen stages (up to)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Layer transfer")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return to_png(fig)


def _marker(strategy: str) -> str:
    return _pick(strategy, STRATEGY_MARKERS, EXTRA_MARKERS)


def _pick(name: str, known: Mapping[str, str], extra: Sequence[str]) -> str:
    """``known[name]``, else a stable choice from ``extra`` (the same name gets the same style in every figure)."""
    return known.get(name) or extra[sum(map(ord, name)) % len(extra)]


def _legend_marker(strategy: str, **style: Any) -> Line2D:
    return Line2D([], [], marker=_marker(strategy) if strategy else "o", color="#444444", linestyle="none", **style)


def to_png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    FigureCanvasAgg(fig).print_png(buffer)
    return buffer.getvalue()


def throughput_by_batch(rows: Sequence[BenchRecord]) -> bytes:
    """Images/s against batch size (log–log) from a hardware suite's rows (``BenchRecord``): one panel per mode,
    a line per arch (its colour) and precision (solid fp32, dashed otherwise); points that were not timed (out of
    memory, error) are left out, so a line ends where the batch stopped fitting."""
    timed = [r for r in rows if r.images_per_s]
    modes = fmt.ordered((r.mode for r in timed), ("train", "infer"))
    archs = fmt.unique(r.arch for r in timed)
    fig = Figure(figsize=(min(5.2 * len(modes), 13), 4.0), dpi=DPI, layout="constrained")
    axes = fig.subplots(1, len(modes), squeeze=False)[0]
    for ax, mode in zip(axes, modes, strict=True):
        for i, arch in enumerate(archs):
            for precision in fmt.unique(r.precision for r in timed):
                line = sorted((r.batch, r.images_per_s) for r in timed
                              if (r.arch, r.mode, r.precision) == (arch, mode, precision))  # fmt: skip
                if line:
                    ax.plot(*zip(*line, strict=True), marker="o", ms=3.5, color=ARCH_COLOURS[i % len(ARCH_COLOURS)],
                            ls="-" if precision == "fp32" else "--", label=f"{arch} {precision}")  # fmt: skip
        ax.set(xscale="log", yscale="log", xlabel="batch size", ylabel="images/s", title=mode)
        ax.grid(True, which="both", alpha=0.3)
    axes[-1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    return to_png(fig)


def accuracy_vs_cost(points: Sequence[ParetoPoint]) -> bytes:
    """Each arch's best mean test accuracy (%) against its GFLOPs per image (log), one panel per quadrant, the
    Pareto front joined by a step line: the archs worth choosing between for that data, from cheap to accurate."""
    quadrants = fmt.ordered((p.quadrant for p in points), QUADRANT_ORDER)
    archs = fmt.unique(p.arch for p in points)
    columns = min(len(quadrants), 2)
    rows = math.ceil(len(quadrants) / columns)
    fig = Figure(figsize=(5.0 * columns + 1.4, 3.0 * rows), dpi=DPI, layout="constrained")
    axes = fig.subplots(rows, columns, sharex=True, squeeze=False).ravel()
    for ax, quadrant in zip(axes, quadrants, strict=False):
        here = [p for p in points if p.quadrant == quadrant]
        front = sorted((p for p in here if p.front), key=lambda p: p.gflops)
        ax.step([p.gflops for p in front], [100 * p.accuracy for p in front], where="post", color="#444444",
                linewidth=1, alpha=0.6, zorder=1)  # fmt: skip
        for p in here:
            ax.plot(p.gflops, 100 * p.accuracy, "o", color=ARCH_COLOURS[archs.index(p.arch) % 10], markersize=7,
                    fillstyle="full" if p.front else "none", zorder=2)  # fmt: skip
            ax.annotate(f"{p.arch} ({p.label})", (p.gflops, 100 * p.accuracy), fontsize=7, xytext=(4, 3),
                        textcoords="offset points")  # fmt: skip
        ax.set_xscale("log")
        ax.set_title(f"{quadrant} ({QUADRANT_LABELS.get(quadrant, '?')})", fontsize=10)
        ax.set_xlabel("GFLOPs per image (log)")
        ax.set_ylabel("best test accuracy (%)")
        ax.grid(alpha=0.3, which="both")
        ax.tick_params(labelbottom=True)
    for ax in axes[len(quadrants) :]:
        ax.set_visible(False)
    return to_png(fig)
