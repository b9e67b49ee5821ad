"""The run report as text, laid out (:mod:`cnnbench.report.layout`) from a typed
:class:`~cnnbench.results.records.Report`: :func:`markdown_document` (``report.md``) and :func:`terminal_document` (the
summary at the end of a pytest run). The HTML page's document is :mod:`cnnbench.report.run_page`; every table and
sentence the three share comes from :mod:`cnnbench.report.views`, so they cannot disagree."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from cnnbench.config.quadrants import QUADRANT_LABELS, REASONS, RECOMMENDED
from cnnbench.engine.measurement import TargetRecord
from cnnbench.report import fmt, hardware, views
from cnnbench.report.layout import (
    Block,
    Cell,
    Document,
    Figure,
    Inline,
    Items,
    Paragraph,
    Section,
    Table,
    bold,
    code,
    heading,
    italic,
    items,
    para,
    spans,
    table,
)
from cnnbench.report.views import (
    THROUGHPUT_NOTE,
    TIE_RULE,
    View,
    best_line,
    check_table,
    environment_line,
    gate_rates,
    status_counts,
    verdict_lines,
)
from cnnbench.results import layer_transfer, recommend
from cnnbench.results.records import (
    CheckRow,
    GateSummary,
    GroupKey,
    LayerPoint,
    Report,
    ScenarioRecord,
    StatusSummary,
)

# ------------------------------------------------------------------------------------------------ markdown


def markdown_document(report: Report) -> Document:
    """``report.md``: header, targets, accuracy and transfer-gain tables per arch and head, the recommendation
    check, the best strategies, throughput, the layer-transfer curve, the quality gate and the scenarios that did
    not pass."""
    if report.hardware:
        return hardware.markdown_document(report)
    view = View(report)
    env, summary, suite = report.environment, StatusSummary.of(report.scenarios), views.suite_name(report)
    intro: list[Block] = [
        para(f"Started {report.started}, {views.ending(report)}; ",
             *(["suite ", code(suite)] if suite is not None else ["suite"]), ", hash ", code(env.suite_hash), "."),
        para(f"Environment: {environment_line(env)}."),
        *([para(line)] if (line := views.weights_line(report)) else []),
        para(bold(f"{summary.scenarios} scenarios:"), f" {status_counts(summary)}."),
    ]  # fmt: skip
    sections = [
        _md_targets(report.targets),
        _md_accuracy(view),
        _md_gains(view),
        _md_recommendation(view),
        *([Section("Best strategy × head", [items([best_line(r, report.targets) for r in report.best])])]
          if report.best else []),
        Section("Throughput and cost", [para(THROUGHPUT_NOTE), views.throughput(view)]),
        *([_md_layer_transfer(report.layer_transfer)] if report.layer_transfer else []),
        *([_md_gate(report.gate)] if report.gate else []),
        _md_failures(report.scenarios),
        *views.profile_sections(report),
    ]  # fmt: skip
    return Document(spans(["cnnbench report ", code(report.run_id)]), intro, sections)


def _md_targets(targets: Sequence[TargetRecord]) -> Section:
    header = ["target", "quadrant", "train", "val", "test", "classes", "similarity", "measured", "conversion"]
    rows = [
        [f"`{t.name}`", f"{t.quadrant} ({QUADRANT_LABELS.get(t.quadrant, '?')})",
         *(fmt.integer(n) for n in (t.n_train, t.n_val, t.n_test, t.n_classes)), fmt.num(t.similarity, "+.2f"),
         t.measured_quadrant or "—", fmt.compact(t.conversion)]
        for t in targets
    ]  # fmt: skip
    blocks: list[Block] = [Paragraph(views.TARGETS_NOTE), table(header, rows, range(2, 7))]
    notes: list[list[Inline]] = [[code(t.name), f": {t.warning}"] for t in targets if t.warning]
    return Section("Targets", blocks + ([items(notes)] if notes else []))


def accuracy_table(view: View, arch: str, head: str, rec: bool = True) -> Table:
    """Strategies × quadrants of one arch and head: mean ± std over seeds, the best of each quadrant marked;
    ``rec``: the header names each quadrant's recommended strategy."""
    quadrants = view.quadrants(arch, head)
    header = ["strategy", *(f"{q} (rec. {RECOMMENDED.get(q, '-')})" if rec else q for q in quadrants)]
    cells = [[Cell(s), *(view.accuracy(GroupKey(arch, s, q, head)) for q in quadrants)]
             for s in view.strategies(arch, head)]  # fmt: skip
    return Table(header, cells, range(1, len(header)))


def _md_accuracy(view: View) -> Section:
    blocks: list[Block] = [
        para("Mean ± sample std over seeds (a single seed shows its value); ", bold("bold"),
             " is the best mean in the quadrant; ", code("(k/n)"), ": only k of n seeds produced an accuracy.")
    ]  # fmt: skip
    for arch, head in view.groups:
        blocks += [heading(code(arch), " · ", code(head), " head"), accuracy_table(view, arch, head)]
    return Section("Test accuracy (%)", blocks)


def _md_gains(view: View) -> Section:
    blocks: list[Block] = [
        para("Mean accuracy of the strategy minus mean accuracy of ", code("scratch"),
             " on the same arch, quadrant and head.")
    ]  # fmt: skip
    for arch, head in view.groups:
        quadrants = view.quadrants(arch, head)
        rows = [[s, *(view.gain_cell(GroupKey(arch, s, q, head)) for q in quadrants)]
                for s in view.strategies(arch, head) if s != "scratch"]  # fmt: skip
        blocks += [heading(code(arch), " · ", code(head), " head"),
                   table(["strategy", *quadrants], rows, range(1, len(quadrants) + 1))]  # fmt: skip
    note = view.chance_note(limit=len(view.at_chance))
    return Section("Transfer gain over scratch (accuracy points)", blocks + ([para(note)] if note else []))


def _md_recommendation(view: View) -> Section:
    advice: list[list[Inline]] = [[bold(q), f" ({QUADRANT_LABELS[q]}) → ", code(RECOMMENDED[q]), f": {reason}"]
                                  for q, reason in REASONS.items()]  # fmt: skip
    sentences: list[list[Inline]] = [[code(r.arch), " · ", code(r.head), f" · {recommend.sentence(r)}"]
                                     for r in view.check]  # fmt: skip
    return Section("Recommendation check", [
        para("What the seed notes recommend, and why:"), items(advice), para(TIE_RULE), items(sentences),
        check_table(view.check),
    ])  # fmt: skip


def _md_layer_transfer(rows: Sequence[LayerPoint]) -> Section:
    blocks: list[Block] = [
        para("Test accuracy (%) with the first ", italic("k"), " stages of the pretrained base frozen and the rest "
             "fine-tuned (Yosinski et al. 2014); ", italic("k"), " = 0 fine-tunes everything.")
    ]  # fmt: skip
    for (arch, quadrant, head), curve in layer_transfer.curves(rows).items():
        scratch = curve[0].scratch
        blocks.append(para(code(arch), f" on {quadrant}, ", code(head), " head",
                           "" if scratch is None else f" (scratch: {100 * scratch:.1f})"))  # fmt: skip
        points = [[str(p.frozen), p.last_frozen or "—", views.layer_accuracy(p)] for p in curve]
        blocks.append(table(["frozen stages", "up to", "accuracy"], points, (0, 2), compact=True))
    blocks.append(layer_figure(rows, link=layer_transfer.PLOT))
    return Section("Layer transfer", blocks)


def gate_lines(gate: GateSummary, limit: int = 10) -> list[str]:
    """Plain-text lines on the quality gate: the baseline and the verdict counts, whether throughput was
    comparable, then each regressed, new, missing and not-run group and each program whose throughput regressed
    (at most ``limit`` of each); a line indented two spaces belongs to the line above."""
    base = gate.baseline
    messages = {r.group: r.message for r in gate.groups} | {r.program: r.message for r in gate.throughput}
    counts = ", ".join(f"{n} {verdict}" for verdict, n in gate.counts.items())
    lines = [f"gate vs baseline run {base['run_id']}: {len(gate.groups)} groups — {counts}", f"  ({base['path']})",
             gate.throughput_note]  # fmt: skip
    if gate.throughput:
        tally = Counter(r.verdict for r in gate.throughput)
        lines.append(f"throughput of {len(gate.throughput)} arch × strategy × head programs (median over quadrants "
                     f"and seeds): " + ", ".join(f"{n} {verdict}" for verdict, n in tally.items()))  # fmt: skip
    if not gate.same_suite:
        lines.append(f"the baseline ran another version of the suite (hash {base['suite_hash']}): budgets may differ")
    listed = (
        ("regressed", gate.regressed),
        ("throughput regressed", gate.throughput_regressed),
        ("new, not gated", gate.new),
        ("missing: in the baseline, no longer in the suite", gate.missing),
        ("not run: in the baseline and selected, but no result recorded", gate.not_run),
    )
    for title, ids in listed:
        if ids:
            lines.append(f"{title} ({len(ids)}):")
            lines += [f"  {messages.get(g, g)}" for g in ids[:limit]]
            lines += [f"  … and {len(ids) - limit} more (see report.md)"] if len(ids) > limit else []
    if gate.not_selected:
        lines.append(f"{gate.not_selected} baseline groups were not selected by this run's filters")
    return lines


def _gate_paragraphs(gate: GateSummary, limit: int) -> list[Paragraph]:
    """:func:`gate_lines` as paragraphs, a line's two-space indent as one level of nesting."""
    return [para(line.strip(), indent=(len(line) - len(line.lstrip())) // 2) for line in gate_lines(gate, limit)]


def _md_gate(gate: GateSummary) -> Section:
    tol = gate.tolerances
    rule = (f"A group (a scenario over its seeds) regresses when its mean test accuracy drops by more than "
            f"{100 * tol['accuracy_drop']:.1f} pts and more than {tol['noise_sigmas']:g} × the noise of the "
            f"difference (from the seeds' spread). On comparable hardware, an arch × strategy × head regresses when "
            f"its median train or inference images/s over its quadrants and seeds falls below "
            f"{1 - tol['throughput_drop']:.0%} of the baseline's.")  # fmt: skip
    header = ["group", "baseline %", "now %", "drop pts", "allowed pts", "verdict"]
    rows = []
    for r in gate.groups:
        acc = r.accuracy
        rows.append([
            Cell(f"`{r.group}`"),
            Cell("-" if acc is None else fmt.pct_sd(acc.baseline_mean, acc.baseline_std, acc.baseline_n)),
            Cell("-" if acc is None else fmt.pct_sd(acc.new_mean, acc.new_std, acc.new_n)),
            Cell(fmt.num(None if acc is None else 100 * acc.drop, "+.1f")),
            Cell(fmt.num(None if acc is None else 100 * acc.allowed, ".1f")),
            _md_verdict(r.verdict),
        ])  # fmt: skip
    blocks: list[Block] = [para(rule), Items(tuple(_gate_paragraphs(gate, 50))), Table(header, rows, range(1, 5))]
    if gate.throughput:
        header = ["program", "scenarios", "train base img/s", "train now", "train ×", "infer base img/s", "infer now",
                  "infer ×", "verdict"]  # fmt: skip
        cells = [[Cell(f"`{r.program}`"), Cell(f"{r.n_baseline} → {r.n_new}"),
                  *map(Cell, gate_rates(r, "train")), *map(Cell, gate_rates(r, "infer")), _md_verdict(r.verdict)]
                 for r in gate.throughput]  # fmt: skip
        blocks.append(Table(header, cells, range(1, 8)))
    return Section("Quality gate", blocks)


def _md_verdict(verdict: str) -> Cell:
    return Cell(verdict, "alert" if verdict == "regressed" else None)


def _md_failures(scenarios: Sequence[ScenarioRecord]) -> Section:
    failed = [s for s in scenarios if s.status != "passed"]
    if not failed:
        return Section("Scenarios that did not pass", [para(f"None: all {len(scenarios)} scenarios passed.")])
    rows = [[f"`{s.id}`", s.status, fmt.one_line(s.error or "-", 300)] for s in failed]
    return Section("Scenarios that did not pass", [table(["scenario", "status", "error"], rows)])


# ------------------------------------------------------------------------------------------------ terminal


def terminal_document(report: Report) -> Document:
    """The summary at the end of a pytest run: per arch × head the strategy × quadrant accuracy table and which
    strategy won where, whether the recommendation held, the best strategies, the cells at chance, the
    layer-transfer curve, the quality gate's verdicts and the scenarios that did not pass."""
    if report.hardware:
        return hardware.terminal_document(report)
    view = View(report)
    summary = StatusSummary.of(report.scenarios)
    title = f"cnnbench {report.run_id}: {summary.scenarios} scenarios — {status_counts(summary)}"
    intro: list[Block] = [
        para("test accuracy %: mean±std over seeds; * best in quadrant; (k/n) only k of n seeds gave a result")
    ]
    sections = []
    for arch, head in view.groups:
        checks = [r for r in view.check if (r.arch, r.head) == (arch, head)]
        verdicts = "check: " + " · ".join(_short_verdict(r) for r in checks)
        sections.append(Section(f"{arch} · {head} head", [accuracy_table(view, arch, head, rec=False),
                                                           para(verdicts, indent=1)]))  # fmt: skip
    blocks: list[Block] = [para(line) for line in verdict_lines(view.check)]
    blocks += [para(best_line(row, report.targets)) for row in report.best]
    note = view.chance_note()
    blocks += [para(note)] if note else []
    blocks += [para(line) for line in views.layer_transfer_lines(report.layer_transfer)]
    blocks += _gate_paragraphs(report.gate, 10) if report.gate else []
    blocks += _terminal_failures(report.scenarios)
    sections.append(Section("", blocks))
    sections += views.profile_sections(report)
    return Document(spans([title]), intro, sections)


def _short_verdict(row: CheckRow) -> str:
    quadrant, rec, winner, verdict = row.quadrant, row.recommended, row.winner, row.verdict
    if verdict == "won":
        return f"{quadrant} {rec} won"
    if verdict == "not run" or row.margin is None:
        return f"{quadrant} {rec} not run ({winner} best)"
    word = "tied" if verdict == "tied within noise" else "LOST"
    return f"{quadrant} {rec} {word} ({winner} +{100 * row.margin:.1f})"


def _terminal_failures(scenarios: Sequence[ScenarioRecord], limit: int = 10) -> list[Block]:
    failed = [s for s in scenarios if s.status != "passed"]
    if not failed:
        return []
    lines = [f"{s.status}: {s.id}" + (f": {fmt.one_line(s.error, 200)}" if s.error else "") for s in failed[:limit]]
    lines += [f"… and {len(failed) - limit} more (see report.md)"] if len(failed) > limit else []
    return [para("did not pass:"), items(lines, indent=1)]


# ---------------------------------------------------------------------------------------------------- html


def layer_figure(rows: Sequence[LayerPoint], link: str | None = None) -> Figure:
    """The layer-transfer plot, drawn when the HTML asks for it; ``link`` names the PNG file that markdown shows."""

    def draw() -> bytes:
        from cnnbench.report import plots  # matplotlib loads when the HTML draws a figure, never for markdown

        return plots.layer_transfer_curve(rows)

    return Figure(draw, "layer transfer" if link else "layer-transfer curve", link=link)
