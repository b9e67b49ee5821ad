"""What every rendering of a run report shares: the report indexed the way its tables read it (:class:`View`),
the tables and sentences that ``report.md``, the terminal summary and ``report.html`` all show, built once here
so the three cannot disagree. Rendering only: every figure comes from the results layer
(:mod:`cnnbench.results.aggregate` and the typed rows of :mod:`cnnbench.results.records`)."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

from cnnbench.config.quadrants import RECOMMENDED
from cnnbench.engine.measurement import TargetRecord
from cnnbench.report import fmt
from cnnbench.report.layout import Cell, Section, Span, Table, code, italic, para, spans, table
from cnnbench.results import aggregate, layer_transfer, recommend
from cnnbench.results.build import CHANCE_SIGMAS
from cnnbench.results.records import (
    BestRow,
    CheckRow,
    Environment,
    GroupKey,
    LayerPoint,
    ProgramVerdict,
    Report,
    RunProfile,
    ScenarioRecord,
    StatusSummary,
)

QUADRANT_ORDER = tuple(RECOMMENDED)


class View:
    """The report indexed the way the tables read it: groups by arch × head, seeds aggregated per cell."""

    def __init__(self, report: Report) -> None:
        scenarios = report.strategy_scenarios
        self.stats = aggregate.over_seeds(scenarios)
        self.scratch = aggregate.scratch_means(self.stats)
        self.check: list[CheckRow] = list(report.recommendation)
        self.records: dict[GroupKey, list[ScenarioRecord]] = {}
        for scenario in scenarios:
            self.records.setdefault(scenario.key, []).append(scenario)
        self.groups = fmt.unique((s.arch, s.head) for s in scenarios)
        self.winners = {r.cell: r.winner for r in self.check}
        self.at_chance = [a for a in report.aggregates if a.at_chance]
        self._scratch_at_chance = {a.key.cell for a in self.at_chance if a.strategy == "scratch"}

    def strategies(self, arch: str, head: str) -> list[str]:
        names = (k.strategy for k in self.records if (k.arch, k.head) == (arch, head) and k.strategy is not None)
        return fmt.ordered(names, recommend.STRATEGY_ORDER)

    def quadrants(self, arch: str, head: str) -> list[str]:
        names = (k.quadrant for k in self.records if (k.arch, k.head) == (arch, head) and k.quadrant is not None)
        return fmt.ordered(names, QUADRANT_ORDER)

    def is_winner(self, key: GroupKey) -> bool:
        return self.winners.get(key.cell) == key.strategy

    def accuracy(self, key: GroupKey) -> Cell:
        """Mean ± std in % (std only over >1 seed; ``(k/n)`` when some seeds failed), class ``best`` for the
        winner; the statuses when no seed has an accuracy and ``-`` when the scenario was not run, both ``muted``."""
        records, stats = self.records.get(key, []), self.stats.get(key)
        if stats is None:
            return Cell("/".join(sorted({r.status for r in records})) or "-", "muted")
        text = fmt.pct(stats.mean) + (" ± " + fmt.pct(stats.std) if stats.n_seeds > 1 else "")
        if stats.n_seeds < len(records):
            text += f" ({stats.n_seeds}/{len(records)})"
        return Cell(text, "best" if self.is_winner(key) else None)

    def gain(self, key: GroupKey) -> float | None:
        """The mean accuracy of ``key`` minus its cell's ``scratch`` mean (a fraction); None without both."""
        return aggregate.transfer_gain(self.stats.get(key), self.scratch.get(key.cell))

    def gain_cell(self, key: GroupKey) -> str:
        """The gain in points over scratch, marked ``†`` where scratch stayed at chance; ``-`` without both."""
        gain = self.gain(key)
        if gain is None:
            return "-"
        return f"{100 * gain:+.1f}" + ("†" if key.cell in self._scratch_at_chance else "")

    def train_rate(self, key: GroupKey) -> float | None:
        """The group's median train images/s over its seeds (as everywhere a rate is summed up)."""
        return aggregate.median_rate(self.records.get(key, []), "train_images_per_s")

    def chance_note(self, limit: int = 12) -> str | None:
        """A sentence naming the cells whose mean accuracy stayed at chance (at most ``limit``), or None."""
        if not self.at_chance:
            return None
        names = [f"{a.arch} {a.strategy} {a.quadrant} {a.head}" for a in self.at_chance]
        more = f" and {len(names) - limit} more" if len(names) > limit else ""
        return (f"At chance ({len(names)} of {len(self.stats)} cells, mean accuracy within {CHANCE_SIGMAS:g} standard "
                f"errors of 1/classes): {', '.join(names[:limit])}{more}. A gain over a scratch at chance (†) measures "
                "a baseline that did not learn, not transfer.")  # fmt: skip


def ending(report: Report) -> str:
    """How the run ended, for the first line of its reports: finished, interrupted (and why), or still running."""
    if report.finished is None:
        return "still running"
    if report.interrupted:
        return f"interrupted ({report.interrupted}) at {report.finished}, before all its selected items had run"
    return f"finished {report.finished}"


def environment_line(env: Environment) -> str:
    """One line naming the software versions, backend, devices and their memory, precision, CPU and commit of a
    report's environment."""
    versions = f"cnnbench {env.cnnbench} · jax {env.jax} · flax {env.flax} · optax {env.optax}"
    memory = env.value("device_memory_bytes")
    where = " of host memory" if env.value("device_memory_source") == "host" else " each"
    size = f" ({memory / 2**30:.1f} GiB{where})" if memory else ""
    devices = f"{env.backend} backend, {env.device_count}× {env.device_kind}{size}"
    return f"{versions} · {devices} · {env.value('precision') or 'fp32'} · CPU {env.cpu} · commit {commit(env)}"


def environment_table(env: Environment) -> Table:
    """Every key of the environment record and its value (JSON where not a string)."""
    rows = [[key, value if isinstance(value, str) else json.dumps(value)] for key, value in env.data.items()]
    return table(["key", "value"], rows)


def commit(env: Environment) -> str:
    """The first 10 hex digits of the commit, ``(dirty)`` when the tree had changes; ``no git`` outside a repo."""
    return (env.git_commit or "no git")[:10] + (" (dirty)" if env.git_dirty else "")


def status_counts(summary: StatusSummary) -> str:
    return ", ".join(f"{count} {status}" for status, count in summary.by_status.items())


TIE_RULE = (f"The recommended strategy ties when the winner beats it by no more than the noise: the larger of the two "
            f"sample stds over seeds and {100 * aggregate.TIE_FLOOR:.0f} accuracy point.")  # fmt: skip


def check_table(check: Sequence[CheckRow]) -> Table:
    """The recommendation check: per arch, head and quadrant the recommended strategy, the winner, both accuracies
    over seeds, the margin and the verdict (the last column)."""
    header = ["arch", "head", "quadrant", "recommended", "winner", "winner %", "recommended %", "margin pts", "verdict"]
    rows = [
        [r.arch, r.head, r.quadrant, r.recommended or "-", r.winner,
         fmt.pct_sd(r.winner_mean, r.winner_std or 0.0, r.winner_n_seeds or 0),
         fmt.pct_sd(r.recommended_mean, r.recommended_std or 0.0, r.recommended_n_seeds or 0),
         fmt.num(None if r.margin is None else 100 * r.margin, ".1f"), r.verdict or "-"]
        for r in check
    ]  # fmt: skip
    return Table(header, [[Cell(text) for text in row] for row in rows], range(5, 8))


def verdict_lines(check: Sequence[CheckRow]) -> list[str]:
    counts = {verdict: sum(r.verdict == verdict for r in check) for verdict in recommend.VERDICTS}
    held = counts["won"] + counts["tied within noise"]
    detail = ", ".join(f"{n} {verdict}" for verdict, n in counts.items())
    return [f"recommendation held in {held} of {len(check)} checks: {detail}"]


def best_line(row: BestRow, targets: Sequence[TargetRecord]) -> str:
    """e.g. ``best on q3 (textures) with resnet18: s2 × gap 71.3% ±1.2 (3 seeds), +2.4 pts over s1 × gap``."""
    target = next((t.name for t in targets if t.quadrant == row.quadrant), "?")
    spread = f" ±{100 * row.std:.1f} ({row.n_seeds} seeds)" if row.n_seeds > 1 else " (1 seed)"
    ahead = "" if row.margin is None else f", {100 * row.margin:+.1f} pts over {row.runner_up}"
    return (
        f"best on {row.quadrant} ({target}) with {row.arch}: {row.strategy} × {row.head} "
        f"{100 * row.mean:.1f}%{spread}{ahead}"
    )


@dataclass(frozen=True)
class ParetoPoint:
    """An arch's best group on a quadrant (``best[]``) at its cost: GFLOPs per image of the deployed model (the
    mean over the group's scenarios, as the throughput table gives it) and the mean test accuracy. ``front``: no
    other arch on the quadrant is at least as cheap and at least as accurate, and better in one of the two."""

    arch: str
    quadrant: str
    label: str  # the winning strategy × head
    gflops: float
    accuracy: float
    front: bool = False


def pareto(report: Report) -> list[ParetoPoint]:
    """Per quadrant, each arch's best accuracy against its cost per image, with the Pareto front marked: the archs
    a user with that data should choose between, cheapest first."""
    points = []
    for row in report.best:
        group = [
            s
            for s in report.strategy_scenarios
            if (s.arch, s.strategy, s.quadrant, s.head) == (row.arch, row.strategy, row.quadrant, row.head)
        ]
        cost = aggregate.mean_of(group, "gflops")
        if cost is not None:
            points.append(ParetoPoint(row.arch, row.quadrant, f"{row.strategy} × {row.head}", cost, row.mean))
    return [replace(p, front=not any(_dominates(q, p) for q in points if q.quadrant == p.quadrant))
            for p in sorted(points, key=lambda p: (p.quadrant, p.gflops))]  # fmt: skip


def _dominates(a: ParetoPoint, b: ParetoPoint) -> bool:
    return a.gflops <= b.gflops and a.accuracy >= b.accuracy and (a.gflops, a.accuracy) != (b.gflops, b.accuracy)


def _median_rate(records: list[ScenarioRecord], metric: str) -> str:
    return fmt.rate(aggregate.median_rate(records, metric))


def _mean(metric: str, spec: str) -> Callable[[list[ScenarioRecord]], str]:
    return lambda records: fmt.num(aggregate.mean_of(records, metric), spec)


def _range(metric: str) -> Callable[[list[ScenarioRecord]], str]:
    return lambda records: fmt.int_range([v for r in records if (v := getattr(r.metrics, metric)) is not None])


def _peak(records: list[ScenarioRecord]) -> str:
    peaks = [r.metrics.peak_memory_bytes for r in records if r.metrics.peak_memory_bytes is not None]
    return fmt.num(None if not peaks else max(peaks) / 2**20, ".0f")


THROUGHPUT_COLUMNS: list[tuple[str, Callable[[list[ScenarioRecord]], str]]] = [
    ("train img/s", lambda records: _median_rate(records, "train_images_per_s")),
    ("infer img/s", lambda records: _median_rate(records, "infer_images_per_s")),
    ("compile s", _mean("compile_s", ".2f")),
    ("train s", _mean("train_s", ".1f")),
    ("time to final s", _mean("time_to_final_s", ".1f")),
    ("params trainable", _range("params_trainable")),
    ("params total", _range("params_total")),
    ("GFLOPs", _mean("gflops", ".3g")),
    ("peak MiB", _peak),
]

THROUGHPUT_NOTE = ("Over the quadrants and seeds that ran: images/s the median (as the quality gate and cnnbench "
                   "compare take it), times and GFLOPs the mean (params: range over quadrants, whose class counts "
                   "differ; peak memory: the largest, where the backend reports it).")  # fmt: skip


def throughput_table(view: View) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the throughput and cost table: one row per arch × head × strategy, the metrics of
    THROUGHPUT_COLUMNS over the quadrants and seeds that ran."""
    by_setup: dict[tuple[str | None, str | None, str | None], list[ScenarioRecord]] = {}
    for key, records in view.records.items():
        by_setup.setdefault((key.arch, key.head, key.strategy), []).extend(records)
    rows = [[arch, head, strategy, *(show(by_setup[(arch, head, strategy)]) for _, show in THROUGHPUT_COLUMNS)]
            for arch, head in view.groups for strategy in view.strategies(arch, head)]  # fmt: skip
    return ["arch", "head", "strategy", *(title for title, _ in THROUGHPUT_COLUMNS)], rows


def gate_rates(row: ProgramVerdict, name: str) -> list[str]:
    """A throughput row's baseline and new ``name`` images/s and their ratio, formatted."""
    before, after, ratio = row.rates(name)
    return [fmt.rate(before), fmt.rate(after), fmt.num(ratio, ".2f")]


def layer_accuracy(point: LayerPoint) -> str:
    """A layer-transfer point's accuracy in %, ``± std`` over more than one seed; ``-`` without one."""
    if point.mean is None:
        return "-"
    return f"{100 * point.mean:.1f}" + (f" ± {100 * point.std:.1f}" if point.n_seeds > 1 else "")


def layer_transfer_lines(rows: Sequence[LayerPoint], width: int = 100) -> list[str]:
    """Lines for the end of a pytest run, none wider than ``width``: per curve, accuracy % at each number of
    frozen stages and the scratch reference."""
    lines = []
    for (arch, quadrant, head), curve in layer_transfer.curves(rows).items():
        cells = " ".join(f"{p.frozen}:" + ("-" if p.mean is None else f"{100 * p.mean:.1f}") for p in curve)
        scratch = curve[0].scratch
        text = f"layer transfer {arch} {quadrant} {head}, % by frozen stages: {cells}" + (
            "" if scratch is None else f" | scratch {100 * scratch:.1f}"
        )
        lines += textwrap.wrap(text, width, subsequent_indent="  ")
    return lines


def gain_grid(keys: Iterable[GroupKey]) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """The rows (arch, strategy) and columns (quadrant, head) of the transfer-gain grid, in reading order, shared by
    the heatmap and the table of its numbers."""
    parts = [k.coordinates for k in keys]
    archs = fmt.unique(p[0] for p in parts)
    strategies = fmt.ordered((p[1] for p in parts), recommend.STRATEGY_ORDER)
    quadrants = fmt.ordered((p[2] for p in parts), QUADRANT_ORDER)
    heads = fmt.unique(p[3] for p in parts)
    rows = [(a, s) for a in archs for s in strategies if any(p[:2] == (a, s) for p in parts)]
    columns = [(q, h) for q in quadrants for h in heads if any(p[2:] == (q, h) for p in parts)]
    return rows, columns


TARGETS_NOTE: tuple[Span, ...] = spans([
    "Similarity: the share of the pretrained base's nearest-class-mean gain over a random-init base on source images "
    "that it keeps on the target (mean over archs; ", code("docs/quadrants.md"), "); ", italic("measured"),
    " is the quadrant that size and similarity put the target in.",
])  # fmt: skip


def weights_line(report: Report) -> str | None:
    """Which archs started from imported weights (``suite.weights``), or None when every arch's base is cnnbench's."""
    weights = (report.suite or {}).get("weights") or {}
    if not weights:
        return None
    listed = ", ".join(f"{arch} ({tag})" for arch, tag in weights.items())
    return (f"Imported weights (docs/weights.md): the pretrained strategies of {listed} start from them, not from a "
            "glyph-pretrained base; their targets are normalised as the weights expect.")  # fmt: skip


def suite_name(report: Report) -> str | None:
    """The suite's name as the report records it, or None for a report without one."""
    return str(report.suite.get("name", "?")) if report.suite else None


def throughput(view: View) -> Table:
    """The throughput and cost table (:func:`throughput_table`) as a layout table."""
    header, rows = throughput_table(view)
    return table(header, rows, range(3, len(header)))


def profile_sections(report: Report) -> list[Section]:
    """The report's "Where the time went" section, or none for a report without a profile (one written before
    cnnbench kept it)."""
    return [_profile_section(report.profile)] if report.profile else []


def _profile_section(profile: RunProfile) -> Section:
    """Where the run's time went: each phase's own seconds, its share of the processes' time and its calls, then
    what the phases leave (``other``)."""
    total = profile.process_s or 1.0
    rows = [[p.name, f"{p.seconds:,.1f}", fmt.pct(p.seconds / total), str(p.calls)] for p in profile.phases]
    rows.append(["other", f"{profile.other_s:,.1f}", fmt.pct(profile.other_s / total), ""])
    over = "" if profile.processes == 1 else f", {profile.process_s:,.0f} s summed over {profile.processes} processes"
    intro = para(f"{profile.wall_s:,.0f} s wall{over}. Each phase's own seconds: a phase inside another is not "
                 "counted twice; compiling includes tracing, and programs loaded from the persistent cache are "
                 "counted apart.")  # fmt: skip
    header = ["phase", "seconds", "share %", "calls"]
    return Section("Where the time went", [intro, table(header, rows, right=(1, 2, 3))])
