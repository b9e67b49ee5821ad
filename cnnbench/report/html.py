"""The run report as one self-contained HTML page (``report.html``): the tables of ``report.md`` plus the figures
of :mod:`cnnbench.report.plots`, with inline CSS and every plot embedded as a ``data:`` PNG, so the file can be mailed,
attached to a CI run or opened offline, and needs no JavaScript.

:func:`escape`, :func:`table`, :func:`figure` and :func:`page` are the building blocks, public so that other pages
(``cnnbench compare``) look the same; :func:`render_html` assembles the page of one ``cnnbench/1`` report.
"""

from __future__ import annotations

import base64
import html as stdlib_html
import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from cnnbench.config.quadrants import QUADRANT_LABELS, REASONS, RECOMMENDED
from cnnbench.report import fmt, plots
from cnnbench.results import recommend
from cnnbench.report.run import (
    THROUGHPUT_NOTE,
    TIE_RULE,
    View,
    check_table,
    environment_line,
    gate_rates,
    status_summary,
    strategy_scenarios,
    throughput_table,
    verdict_lines,
)

CSS = """
:root { color-scheme: light; --ink: #1d2329; --muted: #6b7280; --rule: #d8dde3; --band: #f5f7f9;
        --good: #1e6b34; --good-bg: #e3f4e8; --bad: #a61b1b; --bad-bg: #fde6e6; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--ink); background: #fff; line-height: 1.45;
       font: 15px/1.45 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif; }
main { max-width: 1320px; margin: 0 auto; padding: 1.2rem 1.5rem 3rem; }
h1 { font-size: 1.6rem; margin: 0.2rem 0 0.4rem; }
h2 { font-size: 1.3rem; margin: 2.2rem 0 0.6rem; padding-bottom: 0.2rem; border-bottom: 2px solid var(--rule); }
h3 { font-size: 1.08rem; margin: 1.4rem 0 0.4rem; }
p { margin: 0.4rem 0; max-width: 75rem; }
code { font: 0.92em ui-monospace, "DejaVu Sans Mono", monospace; background: var(--band); padding: 0 0.25em;
       border-radius: 3px; }
nav ul { display: flex; flex-wrap: wrap; gap: 0.3rem 1.1rem; list-style: none; padding: 0; margin: 0.6rem 0; }
nav a { color: #1f5fa8; text-decoration: none; }
nav a:hover { text-decoration: underline; }
.scroll { overflow-x: auto; margin: 0.5rem 0 1rem; }
table { border-collapse: collapse; font-size: 0.86rem; font-variant-numeric: tabular-nums; }
th, td { padding: 0.22rem 0.6rem; border-bottom: 1px solid var(--rule); text-align: left; vertical-align: top;
         white-space: nowrap; }
td:last-child:not(.num) { white-space: normal; min-width: 12rem; }
th { background: var(--band); font-weight: 600; white-space: nowrap; position: sticky; top: 0; }
tbody tr:nth-child(even) { background: #fafbfc; }
td.num, th.num { text-align: right; }
td.winner { font-weight: 700; }
td.good, span.good { color: var(--good); background: var(--good-bg); }
td.bad, span.bad { color: var(--bad); background: var(--bad-bg); }
td.muted, span.muted, p.muted { color: var(--muted); }
p.good { color: var(--good); }
td.pre { white-space: pre-wrap; font: 0.8rem ui-monospace, "DejaVu Sans Mono", monospace; max-width: 60rem; }
.badge { display: inline-block; padding: 0.05rem 0.55rem; margin-right: 0.3rem; border-radius: 999px;
         background: var(--band); font-weight: 600; }
figure { margin: 0.6rem 0 1.2rem; }
figure img { display: block; max-width: 100%; height: auto; }
figcaption { color: var(--muted); font-size: 0.85rem; margin-top: 0.2rem; max-width: 75rem; }
details { margin: 0.4rem 0 1rem; }
summary { cursor: pointer; color: #1f5fa8; }
"""

VERDICT_CLASSES = {"won": "good", "tied within noise": "good", "lost": "bad", "not run": "muted"}
GATE_CLASSES = {"passed": "good", "regressed": "bad", "no result": "muted", "missing": "muted", "not run": "muted"}


# ------------------------------------------------------------------------------------------ building blocks


def escape(value: object) -> str:
    """``str(value)`` with ``&``, ``<``, ``>`` and quotes escaped, safe as HTML text and attribute values."""
    return stdlib_html.escape(str(value))


def table(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    right: Iterable[int] = (),
    cell_classes: Sequence[Sequence[str | None]] | None = None,
) -> str:
    """An HTML table of plain-text cells (escaped here) in a horizontally scrolling box; ``right`` are the indexes of
    right-aligned (numeric) columns, ``cell_classes`` (same shape as ``rows``) a class per cell: ``winner`` (bold),
    ``good``, ``bad`` or ``muted``."""
    right = set(right)

    def cell(tag: str, text: str, column: int, extra: str | None) -> str:
        classes = " ".join(c for c in ("num" if column in right else None, extra) if c)
        attribute = f' class="{escape(classes)}"' if classes else ""
        return f"<{tag}{attribute}>{escape(text)}</{tag}>"

    head = "".join(cell("th", text, i, None) for i, text in enumerate(header))
    classes = cell_classes or [[None] * len(row) for row in rows]
    body = "\n".join(
        "<tr>" + "".join(cell("td", text, i, c) for i, (text, c) in enumerate(zip(row, row_classes, strict=True)))
        + "</tr>"
        for row, row_classes in zip(rows, classes, strict=True)
    )  # fmt: skip
    return f'<div class="scroll"><table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody></table></div>'


def figure(png: bytes, alt: str, caption: str = "") -> str:
    """A figure holding ``png`` inline as a ``data:`` URI (nothing to fetch), with alt text and an optional caption."""
    data = base64.b64encode(png).decode("ascii")
    caption_html = f"<figcaption>{escape(caption)}</figcaption>" if caption else ""
    return f'<figure><img src="data:image/png;base64,{data}" alt="{escape(alt)}">{caption_html}</figure>'


def page(title: str, sections: Sequence[str]) -> str:
    """The whole HTML5 document around pre-rendered section HTML: inline CSS, no scripts, no external resources."""
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n"
        + "\n".join(sections)
        + "\n</main>\n</body>\n</html>\n"
    )


# -------------------------------------------------------------------------------------------------- page


def render_html(report: Mapping[str, Any]) -> str:
    """The ``cnnbench/1`` report as one self-contained HTML page: a header with the status counts, the quality gate
    when the run was gated, targets, the recommendation check, accuracy, transfer gain, throughput, learning curves,
    the layer-transfer curve, the scenarios that did not pass and the full environment, a plot beside each table."""
    view = View(report)
    archs = fmt.unique(arch for arch, _ in view.groups)
    parts = [
        ("gate", "Quality gate", _gate(report["gate"], report["environment"]) if report.get("gate") else None),
        ("targets", "Targets", _targets(report["targets"])),
        ("recommendation", "Recommendation check", _recommendation(report, view)),
        ("accuracy", "Test accuracy by strategy × quadrant × head", _accuracy(view, archs)),
        ("gain", "Transfer gain over scratch", _gain(view)),
        ("throughput", "Accuracy vs throughput, and cost", _throughput(view)),
        ("curves", "Learning curves", _curves(report, archs)),
        ("layer-transfer", "Layer transfer", _layer_transfer(report.get("layer_transfer") or [])),
        ("failures", "Scenarios that did not pass", _failures(report["scenarios"])),
        ("environment", "Environment", _environment(report["environment"])),
    ]
    shown = [(anchor, title, body) for anchor, title, body in parts if body is not None]
    nav = "<nav><ul>" + "".join(f'<li><a href="#{a}">{escape(t)}</a></li>' for a, t, _ in shown) + "</ul></nav>"
    sections = [f'<section id="{a}">\n<h2>{escape(t)}</h2>\n{body}\n</section>' for a, t, body in shown]
    return page(f"cnnbench report {report['run_id']}", [_header(report), nav, *sections])


def _header(report: Mapping[str, Any]) -> str:
    summary, suite, env = status_summary(report["scenarios"]), report.get("suite") or {}, report["environment"]
    badges = " ".join(
        f'<span class="badge {"good" if status == "passed" else "bad" if count else "muted"}">'
        f"{count} {escape(status)}</span>"
        for status, count in summary["by_status"].items()
    )  # fmt: skip
    return (
        f"<header>\n<h1>cnnbench report <code>{escape(report['run_id'])}</code></h1>\n"
        f"<p>Suite <b>{escape(suite.get('name', '?'))}</b> (hash <code>{escape(env.get('suite_hash'))}</code>) · "
        f"started {escape(report['started'])} · finished {escape(report['finished'] or 'still running')}</p>\n"
        f"<p>{escape(environment_line(env))}</p>\n"
        f"<p><b>{summary['scenarios']} scenarios:</b> {badges}</p>\n</header>"
    )


def _environment(env: Mapping[str, Any]) -> str:
    rows = [[key, value if isinstance(value, str) else json.dumps(value)] for key, value in env.items()]
    return table(["key", "value"], rows)


def _targets(targets: Sequence[Mapping[str, Any]]) -> str:
    header = ["target", "quadrant", "train", "val", "test", "classes", "similarity", "measured", "warning"]
    rows, classes = [], []
    for t in targets:
        measured = t.get("measured_quadrant")
        rows.append([
            t["name"], f"{t['quadrant']} ({QUADRANT_LABELS.get(t['quadrant'], '?')})",
            *(fmt.integer(t.get(k)) for k in ("n_train", "n_val", "n_test", "n_classes")),
            fmt.num(t["similarity"], "+.2f"), measured or "—", t.get("warning") or "",
        ])  # fmt: skip
        contradicted = measured is not None and measured != t["quadrant"]
        classes.append([None] * 7 + ["bad" if contradicted else None, "bad" if t.get("warning") else None])
    intro = (
        "<p>Similarity: the share of the pretrained base's nearest-class-mean gain over a random-init base on source "
        "images that it keeps on the target (mean over archs; <code>docs/quadrants.md</code>); <i>measured</i> is the "
        "quadrant that size and similarity put the target in.</p>\n"
    )
    return intro + table(header, rows, right=range(2, 7), cell_classes=classes)


def _recommendation(report: Mapping[str, Any], view: View) -> str:
    advice = [[q, QUADRANT_LABELS[q], s, REASONS[q]] for q, s in RECOMMENDED.items()]
    header, rows = check_table(view.check)
    classes = [[None] * 8 + [VERDICT_CLASSES.get(r["verdict"])] for r in view.check]
    held = verdict_lines(view.check)[0]
    best = report.get("best") or recommend.best(strategy_scenarios(report["scenarios"]))
    return "\n".join([
        "<p>What the seed notes recommend per quadrant, and why:</p>",
        table(["quadrant", "data", "recommended", "why"], advice),
        f"<p>{escape(TIE_RULE)}</p>",
        f"<p><b>{escape(held[0].upper() + held[1:])}.</b> At a glance (recommended strategy's verdict; the winner "
        "and its lead in points where it was not the recommended one):</p>",
        _verdict_matrix(view),
        "<h3>Every check</h3>",
        table(header, rows, right=range(5, 8), cell_classes=classes),
        "<h3>Best strategy × head per arch and quadrant</h3>",
        _best(best, report["targets"]) if best else '<p class="muted">No scenario has a test accuracy yet.</p>',
    ])  # fmt: skip


def _verdict_matrix(view: View) -> str:
    checks = {(r["arch"], r["head"], r["quadrant"]): r for r in view.check}
    quadrants = fmt.ordered((q for _, _, q in checks), plots.QUADRANT_ORDER)
    rows, classes = [], []
    for arch, head in view.groups:
        cells = [checks.get((arch, head, q)) for q in quadrants]
        rows.append([arch, head, *("-" if r is None else _verdict_cell(r) for r in cells)])
        classes.append([None, None, *(None if r is None else VERDICT_CLASSES.get(r["verdict"]) for r in cells)])
    header = ["arch", "head", *(f"{q} (rec. {RECOMMENDED.get(q, '-')})" for q in quadrants)]
    return table(header, rows, cell_classes=classes)


def _verdict_cell(row: Mapping[str, Any]) -> str:
    """``won``, ``tied: s1 +0.6``, ``lost: s2 +5.0`` or ``not run: s2 best``."""
    verdict = "tied" if row["verdict"] == "tied within noise" else row["verdict"]
    if row["verdict"] == "won":
        return verdict
    if row["margin"] is None:
        return f"{verdict}: {row['winner']} best"
    return f"{verdict}: {row['winner']} +{100 * row['margin']:.1f}"


def _best(rows: Sequence[Mapping[str, Any]], targets: Sequence[Mapping[str, Any]]) -> str:
    names = {t["quadrant"]: t["name"] for t in reversed(targets)}
    header = ["arch", "quadrant", "target", "best strategy × head", "accuracy %", "seeds", "runner-up", "margin pts"]
    body = [
        [r["arch"], r["quadrant"], names.get(r["quadrant"], "?"), f"{r['strategy']} × {r['head']}",
         fmt.pct_sd(r["mean"], r["std"], r["n_seeds"]), str(r["n_seeds"]), r["runner_up"] or "-",
         fmt.num(None if r["margin"] is None else 100 * r["margin"], "+.1f")]
        for r in rows
    ]  # fmt: skip
    return table(header, body, right=(4, 5, 7))


def _accuracy(view: View, archs: Sequence[str]) -> str:
    parts = [
        "<p>Mean ± sample std over seeds in % (a single seed shows its value); <b>bold</b> is the best mean of its "
        "quadrant and head; <code>(k/n)</code>: only k of n seeds produced an accuracy. In the plots the recommended "
        "strategy of each quadrant is outlined and marked ▼.</p>"
    ]
    for arch in archs:
        heads = _heads(view, arch)
        quadrants = fmt.ordered((q for h in heads for q in view.quadrants(arch, h)), plots.QUADRANT_ORDER)
        rows, classes = [], []
        for head in heads:
            for strategy in view.strategies(arch, head):
                keys = [(arch, strategy, q, head) for q in quadrants]
                rows.append([head, strategy, *(view.accuracy_cell(k, mark="{}") for k in keys)])
                classes.append([None, None, *(_accuracy_class(view, k) for k in keys)])
        header = ["head", "strategy", *(f"{q} (rec. {RECOMMENDED.get(q, '-')})" for q in quadrants)]
        parts.append(f"<h3>{escape(arch)}</h3>")
        if any(key[0] == arch for key in view.stats):
            parts.append(figure(plots.accuracy_bars(arch, view.stats), f"test accuracy of {arch}"))
        parts.append(table(header, rows, right=range(2, len(header)), cell_classes=classes))
    return "\n".join(parts)


def _heads(view: View, arch: str) -> list[str]:
    return [h for a, h in view.groups if a == arch]


def _accuracy_class(view: View, key: recommend.Key) -> str | None:
    arch, strategy, quadrant, head = key
    if key not in view.stats:
        return "muted"
    return "winner" if view.winners.get((arch, quadrant, head)) == strategy else None


def _gain(view: View) -> str:
    if not view.scratch:
        return '<p class="muted">No <code>scratch</code> result, so the transfer gain was not measured.</p>'
    gains = {key: None if (base := view.scratch.get((key[0], key[2], key[3]))) is None else stats["mean"] - base
             for key, stats in view.stats.items() if key[1] != "scratch"}  # fmt: skip
    if not gains:
        return '<p class="muted">Only <code>scratch</code> ran: no transfer strategy to compare.</p>'
    rows, columns = plots.gain_grid(gains)
    cells = [[view.gain_cell((a, s, q, h)) for q, h in columns] for a, s in rows]
    classes = [[None, None, *({"+": "good", "-": "bad"}.get(c[0]) if c != "-" else None for c in row)]
               for row in cells]  # fmt: skip
    numbers = table(["arch", "strategy", *(f"{q} · {h}" for q, h in columns)],
                    [[a, s, *row] for (a, s), row in zip(rows, cells, strict=True)],
                    right=range(2, len(columns) + 2), cell_classes=classes)  # fmt: skip
    return "\n".join([
        "<p>Mean test accuracy of the strategy minus the mean of <code>scratch</code> on the same arch, quadrant and "
        "head, in accuracy points: blue cells gain from the pretrained weights, red ones lose; grey: no result.</p>",
        figure(plots.gain_heatmap(gains), "transfer gain over scratch per arch, strategy, quadrant and head"),
        f"<details><summary>The numbers</summary>{numbers}</details>",
        *([f"<p>{escape(note)}</p>"] if (note := view.chance_note(limit=len(view.at_chance))) else []),
    ])  # fmt: skip


def _throughput(view: View) -> str:
    points = []
    for key, records in view.records.items():
        rate = fmt.mean(fmt.numbers_of([r["metrics"] for r in records], "train_images_per_s"))
        stats = view.stats.get(key)
        if rate and stats:
            points.append(dict(zip(("arch", "strategy", "quadrant", "head"), key, strict=True),
                               train_images_per_s=rate, accuracy=stats["mean"]))  # fmt: skip
    plot = (figure(plots.accuracy_vs_throughput(points), "test accuracy against training throughput",
                   "Mean over seeds per arch × strategy × quadrant × head; the faster and the higher, the better.")
            if points else '<p class="muted">No scenario has both a throughput and an accuracy.</p>')  # fmt: skip
    header, rows = throughput_table(view)
    intro = f"<p>{escape(THROUGHPUT_NOTE)}</p>"
    return "\n".join([plot, intro, table(header, rows, right=range(3, len(header)))])


def _curves(report: Mapping[str, Any], archs: Sequence[str]) -> str:
    scenarios = strategy_scenarios(report["scenarios"])
    with_curve = [arch for arch in archs if any(s["arch"] == arch and plots.curve_points(s) for s in scenarios)]
    parts = ["<p>Validation accuracy at each evaluation during training: rows are heads, columns quadrants, one "
             "colour per strategy and one thin line per seed.</p>"]  # fmt: skip
    parts += [figure(plots.learning_curves(arch, scenarios), f"learning curves of {arch}") for arch in with_curve]
    missing = [arch for arch in archs if arch not in with_curve]
    if missing:
        parts.append(f'<p class="muted">No curve recorded for {escape(", ".join(missing))}.</p>')
    return "\n".join(parts)


def _layer_transfer(rows: Sequence[Mapping[str, Any]]) -> str | None:
    if not rows:
        return None
    body = [
        [r["arch"], r["quadrant"], r["head"], str(r["frozen"]), r["last_frozen"] or "—",
         fmt.pct_sd(r["mean"], r["std"], r["n_seeds"]), "-" if r["scratch"] is None else fmt.pct(r["scratch"])]
        for r in rows
    ]  # fmt: skip
    return "\n".join([
        "<p>Test accuracy (%) with the first <i>k</i> stages of the pretrained base frozen and the rest fine-tuned "
        "(Yosinski et al. 2014); <i>k</i> = 0 fine-tunes everything, dashed: <code>scratch</code>.</p>",
        figure(plots.layer_transfer_curve(rows), "layer-transfer curve"),
        table(["arch", "quadrant", "head", "frozen stages", "up to", "accuracy %", "scratch %"], body,
              right=(3, 5, 6)),
    ])  # fmt: skip


def _gate(gate: Mapping[str, Any], env: Mapping[str, Any]) -> str:
    baseline, tolerances, groups = gate.get("baseline") or {}, gate.get("tolerances") or {}, gate.get("groups") or []
    counts = gate.get("counts") or Counter(g["verdict"] for g in groups)
    regressed = [*(gate.get("regressed") or []), *(gate.get("throughput_regressed") or [])]
    outcome = (f'<span class="badge bad">{len(regressed)} regressed</span>' if regressed
               else '<span class="badge good">nothing regressed</span>')  # fmt: skip
    tally = ", ".join(f"{n} {verdict}" for verdict, n in counts.items())
    throughput = gate.get("throughput_note") or (
        "throughput gated" if gate.get("throughput_comparable") else "throughput not comparable")
    throughput = throughput[:1].upper() + throughput[1:]
    lines = [
        f"<p>{outcome} Against baseline <code>{escape(baseline.get('run_id'))}</code> "
        f"(<code>{escape(baseline.get('path'))}</code>): {escape(tally)} of {len(groups)} groups. Baseline groups "
        f"no longer in the suite: {len(gate.get('missing') or [])}; selected but not run: "
        f"{len(gate.get('not_run') or [])}; not selected: {escape(gate.get('not_selected', 0))}.</p>",
        f"<p>Tolerances: accuracy drop {_tolerance(tolerances.get('accuracy_drop'), 100, ' pts')}, "
        f"noise {_tolerance(tolerances.get('noise_sigmas'), 1, ' σ')}, throughput drop "
        f"{_tolerance(tolerances.get('throughput_drop'), 100, ' %')}. {escape(throughput)}.</p>",
        f"<p>Baseline suite hash {_against(baseline, env, 'suite_hash')}, "
        f"fingerprint {_against(baseline, env, 'fingerprint')}.</p>",
    ]  # fmt: skip
    by_id = {g["group"]: g for g in groups}
    attention = [by_id[g] for g in fmt.unique([*(gate.get("regressed") or []), *(gate.get("new") or [])]) if g in by_id]
    attention += [{"group": g, "verdict": verdict} for key, verdict in (("missing", "missing"), ("not_run", "not run"))
                  for g in gate.get(key) or []]  # fmt: skip
    if attention:
        lines += ["<h3>Regressed, new, missing and not-run groups</h3>", _gate_table(attention)]
    lines += [f"<h3>All {len(groups)} groups</h3>", _gate_table(groups)]
    if gate.get("throughput"):
        lines += ["<h3>Throughput by arch × strategy × head (median over quadrants and seeds)</h3>",
                  _throughput_gate_table(gate["throughput"])]  # fmt: skip
    return "\n".join(lines)


def _against(baseline: Mapping[str, Any], env: Mapping[str, Any], key: str) -> str:
    """The baseline's ``key`` and how it compares with this run's, e.g. ``<code>9f2c1a</code> (same as this run)``."""
    theirs, ours = baseline.get(key), env.get(key)
    if theirs is None or ours is None:
        same = "unknown"
    else:
        same = "same as this run" if theirs == ours else f"this run: {ours}"
    return f"<code>{escape(theirs)}</code> ({escape(same)})"


def _tolerance(value: Any, scale: float, unit: str) -> str:
    return "-" if not isinstance(value, (int, float)) else escape(f"{scale * value:g}{unit}")


def _gate_table(groups: Sequence[Mapping[str, Any]]) -> str:
    header = ["group", "verdict", "baseline %", "new %", "drop pts", "allowed pts", "message"]
    rows, classes = [], []
    for g in groups:
        acc = g.get("accuracy") or {}
        rows.append([
            g["group"], g["verdict"],
            _seeds(acc.get("baseline_mean"), acc.get("baseline_std"), acc.get("baseline_n")),
            _seeds(acc.get("new_mean"), acc.get("new_std"), acc.get("new_n")),
            *(fmt.num(None if acc.get(k) is None else 100 * acc[k], ".1f") for k in ("drop", "allowed")),
            fmt.one_line(g.get("message") or "", 300),
        ])  # fmt: skip
        drop_bad = acc.get("drop") is not None and acc.get("allowed") is not None and acc["drop"] > acc["allowed"]
        classes.append([None, GATE_CLASSES.get(g["verdict"]), None, None, "bad" if drop_bad else None, None, None])
    return table(header, rows, right=range(2, 6), cell_classes=classes)


def _throughput_gate_table(programs: Sequence[Mapping[str, Any]]) -> str:
    header = ["program", "verdict", "scenarios", "train img/s", "new", "train ×", "infer img/s", "new", "infer ×",
              "allowed ×"]  # fmt: skip
    rows, classes = [], []
    for p in programs:
        rows.append([p["program"], p["verdict"], f"{p['n_baseline']} → {p['n_new']}", *gate_rates(p, "train"),
                     *gate_rates(p, "infer"), fmt.num(p["allowed_ratio"], ".2f")])  # fmt: skip
        slow = ["bad" if (p[f"{n}_ratio"] or 1.0) < p["allowed_ratio"] else None for n in ("train", "infer")]
        classes.append([None, GATE_CLASSES.get(p["verdict"]), None, None, None, slow[0], None, None, slow[1], None])
    return table(header, rows, right=range(2, 10), cell_classes=classes)


def _seeds(mean: float | None, std: float | None, n: int | None) -> str:
    """Mean ± std in % with the seed count, e.g. ``91.2 ± 0.4 (3)``; ``-`` without a mean."""
    if mean is None:
        return "-"
    return fmt.pct_sd(mean, std or 0.0, n or 1) + ("" if n is None else f" ({n})")


def _failures(scenarios: Sequence[Mapping[str, Any]]) -> str:
    failed = [s for s in scenarios if s["status"] != "passed"]
    if not failed:
        return f'<p class="good">None: all {len(scenarios)} scenarios passed.</p>'
    rows = [[s["id"], s["status"], (s.get("error") or "-")[:4000]] for s in failed]
    return table(["scenario", "status", "error"], rows, cell_classes=[[None, "bad", "pre"] for _ in failed])
