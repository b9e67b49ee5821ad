"""The run report's HTML page laid out (:mod:`cnnbench.report.layout`) from a typed
:class:`~cnnbench.results.records.Report`: :func:`html_document`, the sections of ``report.html`` with a plot beside
each table. Nothing here imports matplotlib: a figure is drawn by :mod:`cnnbench.report.plots` only when the HTML
renderer asks for it; the tables and sentences it shares with ``report.md`` come from :mod:`cnnbench.report.views`."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from cnnbench.config.quadrants import QUADRANT_LABELS, REASONS, RECOMMENDED
from cnnbench.engine.measurement import TargetRecord
from cnnbench.report import fmt, hardware, views
from cnnbench.report.layout import (
    Block,
    Cell,
    Document,
    Figure,
    Paragraph,
    Section,
    Span,
    Table,
    badge,
    bold,
    code,
    heading,
    italic,
    para,
    spans,
    table,
)
from cnnbench.report.run_text import layer_figure
from cnnbench.report.views import (
    QUADRANT_ORDER,
    THROUGHPUT_NOTE,
    TIE_RULE,
    View,
    check_table,
    environment_line,
    gate_rates,
    verdict_lines,
)
from cnnbench.results import recommend
from cnnbench.results.records import (
    BestRow,
    CheckRow,
    Environment,
    GateSummary,
    GroupKey,
    GroupVerdict,
    LayerPoint,
    ProgramVerdict,
    Report,
    ScenarioRecord,
    StatusSummary,
)

VERDICT_CLASSES = {"won": "good", "tied within noise": "good", "lost": "bad", "not run": "muted"}
GATE_CLASSES = {"passed": "good", "regressed": "bad", "no result": "muted", "missing": "muted", "not run": "muted"}


def html_document(report: Report) -> Document:
    """``report.html``: a header with the status counts, then the quality gate when the run was gated, targets, the
    recommendation check, accuracy, transfer gain, throughput, learning curves, the layer-transfer curve, the
    scenarios that did not pass and the full environment, a figure beside each table."""
    if report.hardware:
        return hardware.html_document(report)
    view = View(report)
    archs = fmt.unique(arch for arch, _ in view.groups)
    sections = [
        *([Section("Quality gate", _gate(report.gate, report.environment), "gate")] if report.gate else []),
        Section("Targets", _targets(report.targets), "targets"),
        Section("Recommendation check", _recommendation(report, view), "recommendation"),
        Section("Test accuracy by strategy × quadrant × head", _accuracy(view, archs), "accuracy"),
        Section("Transfer gain over scratch", _gain(view), "gain"),
        Section("Accuracy vs throughput, and cost", _throughput_html(report, view), "throughput"),
        Section("Learning curves", _curves(report, archs), "curves"),
        *([Section("Layer transfer", _layer_transfer(report.layer_transfer), "layer-transfer")]
          if report.layer_transfer else []),
        Section("Scenarios that did not pass", _failures(report.scenarios), "failures"),
        Section("Environment", [views.environment_table(report.environment)], "environment"),
    ]  # fmt: skip
    return Document(spans(["cnnbench report ", code(report.run_id)]), _header(report), sections, nav=True,
                    page_title=f"cnnbench report {report.run_id}")  # fmt: skip


def _header(report: Report) -> list[Block]:
    summary, env, suite = StatusSummary.of(report.scenarios), report.environment, views.suite_name(report)
    badges: list[Span | str] = []
    for status, count in summary.by_status.items():
        badges += [badge(f"{count} {status}", "good" if status == "passed" else "bad" if count else "muted"), " "]
    return [
        para("Suite ", bold(suite or "?"), " (hash ", code(env.suite_hash), f") · started {report.started} · "
             f"{views.ending(report)}"),
        para(environment_line(env)),
        *([para(line)] if (line := views.weights_line(report)) else []),
        para(bold(f"{summary.scenarios} scenarios:"), " ", *badges[:-1]),
    ]  # fmt: skip


def _targets(targets: Sequence[TargetRecord]) -> list[Block]:
    header = ["target", "quadrant", "train", "val", "test", "classes", "similarity", "measured", "warning"]
    rows, classes = [], []
    for t in targets:
        measured = t.measured_quadrant
        rows.append([
            t.name, f"{t.quadrant} ({QUADRANT_LABELS.get(t.quadrant, '?')})",
            *(fmt.integer(n) for n in (t.n_train, t.n_val, t.n_test, t.n_classes)),
            fmt.num(t.similarity, "+.2f"), measured or "—", t.warning or "",
        ])  # fmt: skip
        contradicted = measured is not None and measured != t.quadrant
        classes.append([*[None] * 7, "bad" if contradicted else None, "bad" if t.warning else None])
    return [Paragraph(views.TARGETS_NOTE), table(header, rows, range(2, 7), classes)]


def _recommendation(report: Report, view: View) -> list[Block]:
    advice = [[q, QUADRANT_LABELS[q], s, REASONS[q]] for q, s in RECOMMENDED.items()]
    check = check_table(view.check)
    check = Table(check.header, [[*row[:-1], Cell(row[-1].text, VERDICT_CLASSES.get(row[-1].text))]
                                 for row in check.cells], check.right)  # fmt: skip
    held = verdict_lines(view.check)[0]
    best = report.best or tuple(recommend.best(report.strategy_scenarios))
    return [
        para("What the seed notes recommend per quadrant, and why:"),
        table(["quadrant", "data", "recommended", "why"], advice),
        para(TIE_RULE),
        para(bold(held[0].upper() + held[1:] + "."), " At a glance (recommended strategy's verdict; the winner and its "
             "lead in points where it was not the recommended one):"),
        _verdict_matrix(view),
        heading("Every check"),
        check,
        heading("Best strategy × head per arch and quadrant"),
        _best(best, report.targets) if best else para("No scenario has a test accuracy yet.", cls="muted"),
    ]  # fmt: skip


def _verdict_matrix(view: View) -> Table:
    checks = {(r.arch, r.head, r.quadrant): r for r in view.check}
    quadrants = fmt.ordered((q for _, _, q in checks), QUADRANT_ORDER)
    cells = []
    for arch, head in view.groups:
        found = [checks.get((arch, head, q)) for q in quadrants]
        cells.append([Cell(arch), Cell(head), *(Cell("-") if r is None else _verdict_cell(r) for r in found)])
    return Table(["arch", "head", *(f"{q} (rec. {RECOMMENDED.get(q, '-')})" for q in quadrants)], cells)


def _verdict_cell(row: CheckRow) -> Cell:
    """``won``, ``tied: s1 +0.6``, ``lost: s2 +5.0`` or ``not run: s2 best``, coloured by the verdict."""
    verdict = row.verdict or "not run"
    cls, word = VERDICT_CLASSES.get(verdict), "tied" if verdict == "tied within noise" else verdict
    if verdict == "won":
        return Cell(word, cls)
    if row.margin is None:
        return Cell(f"{word}: {row.winner} best", cls)
    return Cell(f"{word}: {row.winner} +{100 * row.margin:.1f}", cls)


def _best(rows: Sequence[BestRow], targets: Sequence[TargetRecord]) -> Table:
    names = {t.quadrant: t.name for t in reversed(targets)}
    header = ["arch", "quadrant", "target", "best strategy × head", "accuracy %", "seeds", "runner-up", "margin pts"]
    body = [
        [r.arch, r.quadrant, names.get(r.quadrant, "?"), f"{r.strategy} × {r.head}",
         fmt.pct_sd(r.mean, r.std, r.n_seeds), str(r.n_seeds), r.runner_up or "-",
         fmt.num(None if r.margin is None else 100 * r.margin, "+.1f")]
        for r in rows
    ]  # fmt: skip
    return table(header, body, (4, 5, 7))


def _accuracy(view: View, archs: Sequence[str]) -> list[Block]:
    blocks: list[Block] = [
        para("Mean ± sample std over seeds in % (a single seed shows its value); ", bold("bold"), " is the best mean "
             "of its quadrant and head; ", code("(k/n)"), ": only k of n seeds produced an accuracy. In the plots the "
             "recommended strategy of each quadrant is outlined and marked ▼.")
    ]  # fmt: skip
    for arch in archs:
        heads = [h for a, h in view.groups if a == arch]
        quadrants = fmt.ordered((q for h in heads for q in view.quadrants(arch, h)), QUADRANT_ORDER)
        cells = [[Cell(head), Cell(strategy), *(view.accuracy(GroupKey(arch, strategy, q, head)) for q in quadrants)]
                 for head in heads for strategy in view.strategies(arch, head)]  # fmt: skip
        header = ["head", "strategy", *(f"{q} (rec. {RECOMMENDED.get(q, '-')})" for q in quadrants)]
        blocks.append(heading(arch))
        if any(key.arch == arch for key in view.stats):
            blocks.append(Figure(_accuracy_png(view, arch), f"test accuracy of {arch}"))
        blocks.append(Table(header, cells, range(2, len(header))))
    return blocks


def _accuracy_png(view: View, arch: str) -> Callable[[], bytes]:
    def draw() -> bytes:
        from cnnbench.report import plots  # matplotlib loads when the HTML draws a figure, never for markdown

        return plots.accuracy_bars(arch, view.stats)

    return draw


def _gain(view: View) -> list[Block]:
    if not view.scratch:
        return [para("No ", code("scratch"), " result, so the transfer gain was not measured.", cls="muted")]
    gains = {key: view.gain(key) for key in view.stats if key.strategy != "scratch"}
    if not gains:
        return [para("Only ", code("scratch"), " ran: no transfer strategy to compare.", cls="muted")]
    rows, columns = views.gain_grid(gains)
    texts = [[view.gain_cell(GroupKey(a, s, q, h)) for q, h in columns] for a, s in rows]
    cells = [[Cell(a), Cell(s), *(Cell(t, {"+": "good", "-": "bad"}.get(t[0]) if t != "-" else None) for t in row)]
             for (a, s), row in zip(rows, texts, strict=True)]  # fmt: skip

    def draw() -> bytes:
        from cnnbench.report import plots  # matplotlib loads when the HTML draws a figure, never for markdown

        return plots.gain_heatmap(gains)

    note = view.chance_note(limit=len(view.at_chance))
    return [
        para("Mean test accuracy of the strategy minus the mean of ", code("scratch"), " on the same arch, quadrant "
             "and head, in accuracy points: blue cells gain from the pretrained weights, red ones lose; grey: no "
             "result."),
        Figure(draw, "transfer gain over scratch per arch, strategy, quadrant and head"),
        Table(["arch", "strategy", *(f"{q} · {h}" for q, h in columns)], cells, range(2, len(columns) + 2),
              folded="The numbers"),
        *([para(note)] if note else []),
    ]  # fmt: skip


def _throughput_html(report: Report, view: View) -> list[Block]:
    points = [(key, view.train_rate(key), view.stats.get(key)) for key in view.records]
    shown = [(*key.coordinates, rate, stats.mean) for key, rate, stats in points if rate and stats]

    def draw() -> bytes:
        from cnnbench.report import plots  # matplotlib loads when the HTML draws a figure, never for markdown

        return plots.accuracy_vs_throughput([plots.CostPoint(*point) for point in shown])

    plot: Block = (Figure(draw, "test accuracy against training throughput", "Per arch × strategy × quadrant × head, "
                          "the mean accuracy and the median train images/s over seeds; the faster and the higher, the "
                          "better.")
                   if shown else para("No scenario has both a throughput and an accuracy.", cls="muted"))  # fmt: skip
    front = views.pareto(report)

    def draw_front() -> bytes:
        from cnnbench.report import plots  # matplotlib: see draw()

        return plots.accuracy_vs_cost(front)

    caption = ("Per quadrant, each arch's best strategy × head (mean over seeds) against the GFLOPs per image of its "
               "deployed model; filled dots and the step line are the Pareto front, the archs that no other arch "
               "beats on both cost and accuracy.")  # fmt: skip
    pareto: list[Block] = [Figure(draw_front, "best accuracy against cost per image", caption)] if front else []
    return [plot, *pareto, para(THROUGHPUT_NOTE), views.throughput(view)]


def _curves(report: Report, archs: Sequence[str]) -> list[Block]:
    scenarios = report.strategy_scenarios
    with_curve = [a for a in archs if any(s.arch == a and any(p.val_accuracy is not None for p in s.curve)
                                          for s in scenarios)]  # fmt: skip
    blocks: list[Block] = [
        para("Validation accuracy at each evaluation during training: rows are heads, columns quadrants, one colour "
             "per strategy and one thin line per seed.")
    ]  # fmt: skip
    blocks += [Figure(_curves_png(arch, scenarios), f"learning curves of {arch}") for arch in with_curve]
    missing = [arch for arch in archs if arch not in with_curve]
    if missing:
        blocks.append(para(f"No curve recorded for {', '.join(missing)}.", cls="muted"))
    return blocks


def _curves_png(arch: str, scenarios: Sequence[ScenarioRecord]) -> Callable[[], bytes]:
    def draw() -> bytes:
        from cnnbench.report import plots  # matplotlib loads when the HTML draws a figure, never for markdown

        return plots.learning_curves(arch, scenarios)

    return draw


def _layer_transfer(rows: Sequence[LayerPoint]) -> list[Block]:
    body = [
        [r.arch, r.quadrant, r.head, str(r.frozen), r.last_frozen or "—",
         fmt.pct_sd(r.mean, r.std, r.n_seeds), "-" if r.scratch is None else fmt.pct(r.scratch)]
        for r in rows
    ]  # fmt: skip
    return [
        para("Test accuracy (%) with the first ", italic("k"), " stages of the pretrained base frozen and the rest "
             "fine-tuned (Yosinski et al. 2014); ", italic("k"), " = 0 fine-tunes everything, dashed: ",
             code("scratch"), "."),
        layer_figure(rows),
        table(["arch", "quadrant", "head", "frozen stages", "up to", "accuracy %", "scratch %"], body, (3, 5, 6)),
    ]  # fmt: skip


def _gate(gate: GateSummary, env: Environment) -> list[Block]:
    baseline, tolerances, groups = gate.baseline, gate.tolerances, gate.groups
    regressed = [*gate.regressed, *gate.throughput_regressed]
    outcome = badge(f"{len(regressed)} regressed", "bad") if regressed else badge("nothing regressed", "good")
    tally = ", ".join(f"{n} {verdict}" for verdict, n in gate.counts.items())
    note = gate.throughput_note or ("throughput gated" if gate.throughput_comparable else "throughput not comparable")
    note = note[:1].upper() + note[1:]
    blocks: list[Block] = [
        para(outcome, " Against baseline ", code(baseline.get("run_id")), " (", code(baseline.get("path")),
             f"): {tally} of {len(groups)} groups. Baseline groups no longer in the suite: {len(gate.missing)}; "
             f"selected but not run: {len(gate.not_run)}; not selected: {gate.not_selected}."),
        para(f"Tolerances: accuracy drop {_tolerance(tolerances.get('accuracy_drop'), 100, ' pts')}, noise "
             f"{_tolerance(tolerances.get('noise_sigmas'), 1, ' σ')}, throughput drop "
             f"{_tolerance(tolerances.get('throughput_drop'), 100, ' %')}. {note}."),
        para("Baseline suite hash ", *_against(baseline.get("suite_hash"), env.suite_hash), ", fingerprint ",
             *_against(baseline.get("fingerprint"), env.fingerprint), "."),
    ]  # fmt: skip
    by_id = {g.group: g for g in groups}
    attention: list[tuple[str, str, GroupVerdict | None]] = [
        (g, by_id[g].verdict, by_id[g]) for g in fmt.unique([*gate.regressed, *gate.new]) if g in by_id
    ]
    attention += [(g, verdict, None) for ids, verdict in ((gate.missing, "missing"), (gate.not_run, "not run"))
                  for g in ids]  # fmt: skip
    if attention:
        blocks += [heading("Regressed, new, missing and not-run groups"), _gate_table(attention)]
    blocks += [heading(f"All {len(groups)} groups"), _gate_table([(g.group, g.verdict, g) for g in groups])]
    if gate.throughput:
        blocks += [heading("Throughput by arch × strategy × head (median over quadrants and seeds)"),
                   _throughput_gate_table(gate.throughput)]  # fmt: skip
    return blocks


def _against(theirs: object, ours: object) -> list[Span | str]:
    """The baseline's value and how it compares with this run's, e.g. ``9f2c1a`` ``(same as this run)``."""
    if theirs is None or ours is None:
        same = "unknown"
    else:
        same = "same as this run" if theirs == ours else f"this run: {ours}"
    return [code(theirs), f" ({same})"]


def _tolerance(value: object, scale: float, unit: str) -> str:
    return f"{scale * value:g}{unit}" if isinstance(value, (int, float)) else "-"


def _gate_table(groups: Sequence[tuple[str, str, GroupVerdict | None]]) -> Table:
    header = ["group", "verdict", "baseline %", "new %", "drop pts", "allowed pts", "message"]
    cells = []
    for name, verdict, row in groups:
        acc = None if row is None else row.accuracy
        drop_bad = acc is not None and acc.drop > acc.allowed
        cells.append([
            Cell(name), Cell(verdict, GATE_CLASSES.get(verdict)),
            Cell("-" if acc is None else _seeds(acc.baseline_mean, acc.baseline_std, acc.baseline_n)),
            Cell("-" if acc is None else _seeds(acc.new_mean, acc.new_std, acc.new_n)),
            Cell(fmt.num(None if acc is None else 100 * acc.drop, ".1f"), "bad" if drop_bad else None),
            Cell(fmt.num(None if acc is None else 100 * acc.allowed, ".1f")),
            Cell(fmt.one_line("" if row is None else row.message or "", 300)),
        ])  # fmt: skip
    return Table(header, cells, range(2, 6))


def _throughput_gate_table(programs: Sequence[ProgramVerdict]) -> Table:
    header = ["program", "verdict", "scenarios", "train img/s", "new", "train ×", "infer img/s", "new", "infer ×",
              "allowed ×"]  # fmt: skip
    cells = []
    for p in programs:
        slow = ["bad" if (ratio or 1.0) < p.allowed_ratio else None for ratio in (p.train_ratio, p.infer_ratio)]
        train, infer = gate_rates(p, "train"), gate_rates(p, "infer")
        cells.append([Cell(p.program), Cell(p.verdict, GATE_CLASSES.get(p.verdict)),
                      Cell(f"{p.n_baseline} → {p.n_new}"), Cell(train[0]), Cell(train[1]), Cell(train[2], slow[0]),
                      Cell(infer[0]), Cell(infer[1]), Cell(infer[2], slow[1]),
                      Cell(fmt.num(p.allowed_ratio, ".2f"))])  # fmt: skip
    return Table(header, cells, range(2, 10))


def _seeds(mean: float | None, std: float | None, n: int | None) -> str:
    """Mean ± std in % with the seed count, e.g. ``91.2 ± 0.4 (3)``; ``-`` without a mean."""
    if mean is None:
        return "-"
    return fmt.pct_sd(mean, std or 0.0, n or 1) + ("" if n is None else f" ({n})")


def _failures(scenarios: Sequence[ScenarioRecord]) -> list[Block]:
    failed = [s for s in scenarios if s.status != "passed"]
    if not failed:
        return [para(f"None: all {len(scenarios)} scenarios passed.", cls="good")]
    rows = [[s.id, s.status, (s.error or "-")[:4000]] for s in failed]
    return [table(["scenario", "status", "error"], rows, (), [[None, "bad", "pre"] for _ in failed])]
