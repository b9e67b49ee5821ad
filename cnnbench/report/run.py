"""The run report (SPEC §8): build it from scenario records, validate it, write it atomically, render it.

``report.json`` (schema ``cnnbench/1``, documented in ``docs/report-schema.md``) is the machine-readable log;
``report.md`` holds the tables a person reads in a CI log or a PR; :func:`terminal_summary` is the compact
version printed at the end of a pytest run. Both files are rewritten after every scenario, so a failed,
diverged or interrupted scenario never costs the results before it; ``report.html`` (``cnnbench.report.html``), whose
plots take seconds, is written when the run finishes.
"""

from __future__ import annotations

import contextlib
import json
import math
import numbers
import os
import tempfile
import textwrap
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from cnnbench.config.quadrants import QUADRANT_LABELS, REASONS, RECOMMENDED
from cnnbench.report import fmt
from cnnbench.results import layer_transfer, recommend

SCHEMA = "cnnbench/1"
STATUSES = ("passed", "regressed", "diverged", "error")
LATEST = "latest"

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
}  # fmt: skip
METRIC_KEYS = (*REQUIRED_KEYS["metrics"], "val_accuracy", "time_to_final_s", "peak_memory_bytes")
CHANCE_SIGMAS = 2.0  # a mean accuracy within this many binomial standard errors of 1/classes is "at chance"


# --------------------------------------------------------------------------------------------------- build


def build_report(
    run_id: str,
    started: str,
    finished: str | None,
    environment: Mapping[str, Any],
    targets: Sequence[Mapping[str, Any]],
    scenarios: Sequence[Mapping[str, Any]],
    suite: Mapping[str, Any] | None = None,
    gate: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``cnnbench/1`` report of a run so far: copies of the inputs with every metric key present,
    ``transfer_gain`` filled, per-seed aggregates, the recommendation check, counts by status and, when the run
    is gated against a baseline, the gate's verdicts (``cnnbench.results.gate.summarize``).

    Raises ValueError when a record lacks a required key or has an unknown status, so a bad report is caught
    where it is made rather than when a baseline is loaded.
    """
    records = [_scenario(record) for record in scenarios]
    report = {
        "schema": SCHEMA,
        "run_id": run_id,
        "started": started,
        "finished": finished,
        "environment": _clean(dict(environment)),
        "suite": _clean(suite),
        "targets": [_clean(dict(target)) for target in targets],
        "scenarios": records,
        "aggregates": [],
        "recommendation": [],
        "summary": {},
    }
    problems = validate(report)
    if problems:
        raise ValueError(f"report {run_id!r} is malformed: {_listing(problems)}")
    for record, gain in zip(records, recommend.transfer_gains(records), strict=True):
        record["metrics"]["transfer_gain"] = gain
    main = strategy_scenarios(records)
    report.update(aggregates=_aggregates(main, report["targets"]), recommendation=recommend.check(main),
                  best=recommend.best(main), summary=status_summary(records),
                  layer_transfer=layer_transfer.points(records))  # fmt: skip
    if gate is not None:
        report["gate"] = _clean(gate)
    return report


def strategy_scenarios(scenarios: Sequence[Mapping[str, Any]]) -> list[Any]:
    """The scenarios of the strategy × quadrant × head matrix, without the layer-transfer curve's points."""
    return [s for s in scenarios if s.get("layer_transfer") is None]


def _scenario(record: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON-clean copy of a scenario record whose ``metrics`` has every key of METRIC_KEYS (None if unknown)."""
    scenario = _clean(dict(record))
    scenario["metrics"] = {key: None for key in METRIC_KEYS} | (scenario.get("metrics") or {})
    for key, empty in (("error", None), ("curve", []), ("frozen_stages", [])):
        scenario.setdefault(key, empty)
    return scenario


def _clean(value: Any) -> Any:
    """A JSON-safe deep copy: numpy scalars become Python numbers, NaN and ±inf become None (strict JSON has
    neither), tuples become lists and anything else unknown becomes its ``str``."""
    if isinstance(value, Mapping):
        return {str(key): _clean(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(item) for item in value]
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value) if math.isfinite(value) else None
    return str(value)


def _aggregates(records: list[dict[str, Any]], targets: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per (arch, strategy, quadrant, head): test accuracy over seeds, the mean transfer gain over scratch, the
    target's chance level and whether the mean stayed at it."""
    stats = recommend.aggregate(records)
    scratch = recommend.scratch_means(stats)
    chance = {t["quadrant"]: chance_level(t) for t in targets}
    rows = []
    for (arch, strategy, quadrant, head), entry in stats.items():
        baseline = scratch.get((arch, quadrant, head))
        gain = None if baseline is None else entry["mean"] - baseline
        level, ceiling = chance.get(quadrant) or (None, None)
        rows.append({"arch": arch, "strategy": strategy, "quadrant": quadrant, "head": head, **entry,
                     "transfer_gain": gain, "chance": level,
                     "at_chance": None if ceiling is None else entry["mean"] <= ceiling})  # fmt: skip
    return rows


def chance_level(target: Mapping[str, Any]) -> tuple[float, float] | None:
    """A target's chance accuracy (1 / classes) and the highest test accuracy still explained by guessing: chance
    plus ``CHANCE_SIGMAS`` binomial standard errors on its test set. ``None`` without class and test counts."""
    classes, n_test = target.get("n_classes"), target.get("n_test")
    if not isinstance(classes, int) or not isinstance(n_test, int) or classes < 1 or n_test < 1:
        return None
    level = 1 / classes
    return level, level + CHANCE_SIGMAS * math.sqrt(level * (1 - level) / n_test)


def status_summary(records: list[dict[str, Any]]) -> dict[str, Any]:
    by_status = {status: 0 for status in STATUSES}
    for record in records:
        by_status[record["status"]] += 1
    return {"scenarios": len(records), "by_status": by_status}


# ------------------------------------------------------------------------------------------ validate, load


def validate(report: Any) -> list[str]:
    """What is wrong with ``report`` as a ``cnnbench/1`` report: missing keys at any level (the optional ``gate``
    section complete when present), metrics that are not numbers or null, unknown statuses; empty when it is
    well formed."""
    if not isinstance(report, dict):
        return [f"the top level is a JSON {type(report).__name__}, not an object"]
    if report.get("schema") != SCHEMA:
        return [f"schema is {report.get('schema')!r}; expected {SCHEMA!r}"]
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
    return f"{section}[{index}]" + (f" ({item['id']})" if has_id else "")


def _scenario_problems(scenario: dict[str, Any], where: str) -> list[str]:
    problems = []
    if "metrics" in scenario:
        problems += _missing(scenario["metrics"], "metrics", f"{where}.metrics")
        if isinstance(scenario["metrics"], dict):
            problems += [f"{where}.metrics.{key} is {value!r}, not a number or null"
                         for key, value in scenario["metrics"].items()
                         if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)))]
    if "status" in scenario and scenario["status"] not in STATUSES:
        problems.append(f"{where} has status {scenario['status']!r}; expected one of {', '.join(STATUSES)}")
    return problems


def load_report(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The report stored at ``path``, checked against schema ``cnnbench/1``; raises ValueError naming the file and
    what is wrong (unreadable, not JSON, wrong schema, missing keys)."""
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
    problems = validate(report)
    if problems:
        raise ValueError(f"{path} is not a {SCHEMA} report: {_listing(problems)}")
    return report


def _listing(problems: list[str], limit: int = 5) -> str:
    more = f"; and {len(problems) - limit} more" if len(problems) > limit else ""
    return "; ".join(problems[:limit]) + more


# --------------------------------------------------------------------------------------------------- write


def write_report(report: Mapping[str, Any], root: str | os.PathLike[str], plots: bool = True) -> Path:
    """Write ``report.json`` and ``report.md`` (and, with ``plots``, ``report.html`` and the layer-transfer PNG)
    to ``root/<run_id>/`` and refresh ``root/latest/``, each file replaced atomically. Without plots it is cheap
    enough to call after every scenario. Returns the run directory."""
    root = Path(root)
    run_dir = root / _run_dir_name(report["run_id"])
    contents: dict[str, str | bytes] = {
        "report.json": json.dumps(report, indent=1, allow_nan=False) + "\n",
        "report.md": render_markdown(report),
    }
    if plots:  # html and plots build on this module's views and load matplotlib: imported when used
        from cnnbench.report.html import render_html
        from cnnbench.report.plots import layer_transfer_curve

        contents["report.html"] = render_html(report)
        if report.get("layer_transfer"):
            contents[layer_transfer.PLOT] = layer_transfer_curve(report["layer_transfer"])
    for directory in (run_dir, root / LATEST):
        directory.mkdir(parents=True, exist_ok=True)
        for name, data in contents.items():
            atomic_write(directory / name, data)
    if plots and layer_transfer.PLOT not in contents:  # latest/ must not keep an earlier run's curve
        (root / LATEST / layer_transfer.PLOT).unlink(missing_ok=True)
    return run_dir


def atomic_write(path: Path, data: str | bytes) -> None:
    """Replace ``path`` by ``data`` (text as UTF-8) through a synced temporary file in the same directory, so a
    reader (or a crash) sees the old file or the new one, never half of one."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes the file private; a report is meant to be read
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _run_dir_name(run_id: str) -> str:
    if not run_id or run_id in (".", "..", LATEST) or "/" in run_id or os.sep in run_id:
        raise ValueError(f"run id {run_id!r} cannot name a report directory; use a plain name such as a timestamp")
    return run_id


# ------------------------------------------------------------------------------------------------ markdown


def render_markdown(report: Mapping[str, Any]) -> str:
    """The report as GitHub markdown: header, targets, accuracy and transfer-gain tables per arch and head,
    the recommendation check, throughput, and the scenarios that did not pass."""
    view = View(report)
    sections = [
        _md_header(report),
        _md_targets(report["targets"]),
        _md_accuracy(view),
        _md_gains(view),
        _md_recommendation(view),
        ["## Best strategy × head", "", *(f"- {_best_line(row, report['targets'])}" for row in report.get("best") or [])]
        if report.get("best") else [],
        _md_throughput(view),
        layer_transfer.markdown(report.get("layer_transfer") or [], plot=True),
        _md_gate(report["gate"]) if report.get("gate") else [],
        _md_failures(report["scenarios"]),
    ]
    return "\n\n".join("\n".join(lines) for lines in sections if lines) + "\n"


class View:
    """The report indexed the way the tables read it: groups by arch × head, seeds aggregated per cell."""

    def __init__(self, report: Mapping[str, Any]) -> None:
        scenarios: list[dict[str, Any]] = strategy_scenarios(report["scenarios"])
        self.stats = recommend.aggregate(scenarios)
        self.scratch = recommend.scratch_means(self.stats)
        self.check: list[dict[str, Any]] = report["recommendation"]
        self.records: dict[recommend.Key, list[dict[str, Any]]] = {}
        for scenario in scenarios:
            self.records.setdefault(recommend.scenario_key(scenario), []).append(scenario)
        self.groups = fmt.unique((s["arch"], s["head"]) for s in scenarios)
        self.winners = {(r["arch"], r["quadrant"], r["head"]): r["winner"] for r in self.check}
        self.at_chance = [a for a in report.get("aggregates") or [] if a.get("at_chance")]
        self._scratch_at_chance = {(a["arch"], a["quadrant"], a["head"]) for a in self.at_chance
                                   if a["strategy"] == "scratch"}  # fmt: skip

    def strategies(self, arch: str, head: str) -> list[str]:
        return fmt.ordered((s for a, s, _, h in self.records if (a, h) == (arch, head)), recommend.STRATEGY_ORDER)

    def quadrants(self, arch: str, head: str) -> list[str]:
        return fmt.ordered((q for a, _, q, h in self.records if (a, h) == (arch, head)), tuple(RECOMMENDED))

    def accuracy_cell(self, key: recommend.Key, std_sep: str = " ± ", mark: str = "**{}**") -> str:
        """Mean ± std in % (std only over >1 seed; ``(k/n)`` when some seeds failed), ``mark``-ed for the winner;
        the statuses when no seed has an accuracy; ``-`` when the scenario was not run."""
        records, stats = self.records.get(key, []), self.stats.get(key)
        if stats is None:
            return "/".join(sorted({r["status"] for r in records})) or "-"
        text = fmt.pct(stats["mean"]) + (std_sep + fmt.pct(stats["std"]) if stats["n_seeds"] > 1 else "")
        if stats["n_seeds"] < len(records):
            text += f" ({stats['n_seeds']}/{len(records)})"
        arch, strategy, quadrant, head = key
        return mark.format(text) if self.winners.get((arch, quadrant, head)) == strategy else text

    def gain_cell(self, key: recommend.Key) -> str:
        """The gain in points over scratch, marked ``†`` where scratch stayed at chance; ``-`` without both."""
        cell = (key[0], key[2], key[3])
        stats, baseline = self.stats.get(key), self.scratch.get(cell)
        if stats is None or baseline is None:
            return "-"
        return f"{100 * (stats['mean'] - baseline):+.1f}" + ("†" if cell in self._scratch_at_chance else "")

    def chance_note(self, limit: int = 12) -> str | None:
        """A sentence naming the cells whose mean accuracy stayed at chance (at most ``limit``), or None."""
        if not self.at_chance:
            return None
        names = [f"{a['arch']} {a['strategy']} {a['quadrant']} {a['head']}" for a in self.at_chance]
        more = f" and {len(names) - limit} more" if len(names) > limit else ""
        return (f"At chance ({len(names)} of {len(self.stats)} cells, mean accuracy within {CHANCE_SIGMAS:g} standard "
                f"errors of 1/classes): {', '.join(names[:limit])}{more}. A gain over a scratch at chance (†) measures "
                "a baseline that did not learn, not transfer.")


def _md_header(report: Mapping[str, Any]) -> list[str]:
    env, suite, summary = report["environment"], report.get("suite") or {}, status_summary(report["scenarios"])
    finished = report["finished"] or "still running"
    suite_text = f"suite `{suite.get('name', '?')}`" if suite else "suite"
    return [
        f"# cnnbench report `{report['run_id']}`",
        "",
        f"Started {report['started']}, finished {finished}; {suite_text}, hash `{env.get('suite_hash')}`.",
        "",
        f"Environment: {environment_line(env)}.",
        "",
        f"**{summary['scenarios']} scenarios:** {_status_counts(summary)}.",
    ]


def environment_line(env: Mapping[str, Any]) -> str:
    """One line naming the software versions, backend, devices, CPU and commit of a report's environment."""
    versions = " · ".join(f"{key} {env.get(key)}" for key in ("cnnbench", "jax", "flax", "optax"))
    commit = (env.get("git_commit") or "no git")[:10] + (" (dirty)" if env.get("git_dirty") else "")
    devices = f"{env.get('backend')} backend, {env.get('device_count')}× {env.get('device_kind')}"
    return f"{versions} · {devices} · CPU {env.get('cpu')} · commit {commit}"


def _status_counts(summary: Mapping[str, Any]) -> str:
    return ", ".join(f"{count} {status}" for status, count in summary["by_status"].items())


def _md_targets(targets: list[dict[str, Any]]) -> list[str]:
    header = ["target", "quadrant", "train", "val", "test", "classes", "similarity", "measured", "conversion"]
    rows = [
        [
            f"`{t['name']}`",
            f"{t['quadrant']} ({QUADRANT_LABELS.get(t['quadrant'], '?')})",
            *(fmt.integer(t.get(k)) for k in ("n_train", "n_val", "n_test", "n_classes")),
            fmt.num(t["similarity"], "+.2f"),
            t.get("measured_quadrant") or "—",
            fmt.compact(t.get("conversion")),
        ]
        for t in targets
    ]
    notes = [f"- `{t['name']}`: {t['warning']}" for t in targets if t.get("warning")]
    how = (
        "Similarity: the share of the pretrained base's nearest-class-mean gain over a random-init base on source "
        "images that it keeps on the target (mean over archs; `docs/quadrants.md`); *measured* is the quadrant that "
        "size and similarity put the target in."
    )
    return ["## Targets", "", how, "", *fmt.md_table(header, rows, right=range(2, 7)), *([""] + notes if notes else [])]


def _md_accuracy(view: View) -> list[str]:
    lines = [
        "## Test accuracy (%)",
        "",
        "Mean ± sample std over seeds (a single seed shows its value); **bold** is the best mean in the quadrant; "
        "`(k/n)`: only k of n seeds produced an accuracy.",
    ]
    for arch, head in view.groups:
        quadrants = view.quadrants(arch, head)
        header = ["strategy", *(f"{q} (rec. {RECOMMENDED.get(q, '-')})" for q in quadrants)]
        rows = [[s, *(view.accuracy_cell((arch, s, q, head)) for q in quadrants)] for s in view.strategies(arch, head)]
        lines += ["", f"### `{arch}` · `{head}` head", "", *fmt.md_table(header, rows, right=range(1, len(header)))]
    return lines


def _md_gains(view: View) -> list[str]:
    lines = [
        "## Transfer gain over scratch (accuracy points)",
        "",
        "Mean accuracy of the strategy minus mean accuracy of `scratch` on the same arch, quadrant and head.",
    ]
    for arch, head in view.groups:
        quadrants = view.quadrants(arch, head)
        strategies = [s for s in view.strategies(arch, head) if s != "scratch"]
        rows = [[s, *(view.gain_cell((arch, s, q, head)) for q in quadrants)] for s in strategies]
        table = fmt.md_table(["strategy", *quadrants], rows, right=range(1, len(quadrants) + 1))
        lines += ["", f"### `{arch}` · `{head}` head", "", *table]
    note = view.chance_note(limit=len(view.at_chance))
    return lines + (["", note] if note else [])


def _md_recommendation(view: View) -> list[str]:
    lines = [
        "## Recommendation check",
        "",
        "What the seed notes recommend, and why:",
        "",
        *(f"- **{q}** ({QUADRANT_LABELS[q]}) → `{RECOMMENDED[q]}`: {reason}"
          for q, reason in REASONS.items()),  # fmt: skip
        "",
        TIE_RULE,
        "",
        *(f"- `{r['arch']}` · `{r['head']}` · {recommend.sentence(r)}" for r in view.check),
        "",
    ]
    header, rows = check_table(view.check)
    return lines + fmt.md_table(header, rows, right=range(5, 8))


TIE_RULE = (f"The recommended strategy ties when the winner beats it by no more than the noise: the larger of the two "
            f"sample stds over seeds and {100 * recommend.TIE_FLOOR:.0f} accuracy point.")  # fmt: skip


def check_table(check: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the recommendation check: per arch, head and quadrant the recommended strategy, the
    winner, both accuracies over seeds, the margin and the verdict (the last column)."""
    header = ["arch", "head", "quadrant", "recommended", "winner", "winner %", "recommended %", "margin pts", "verdict"]
    rows = [
        [r["arch"], r["head"], r["quadrant"], r["recommended"] or "-", r["winner"],
         fmt.pct_sd(r["winner_mean"], r["winner_std"], r["winner_n_seeds"]),
         fmt.pct_sd(r["recommended_mean"], r["recommended_std"], r["recommended_n_seeds"]),
         fmt.num(None if r["margin"] is None else 100 * r["margin"], ".1f"), r["verdict"]]
        for r in check
    ]  # fmt: skip
    return header, rows


THROUGHPUT_COLUMNS: list[tuple[str, str, Callable[[list[float]], str]]] = [
    ("train img/s", "train_images_per_s", lambda v: fmt.rate(fmt.mean(v))),
    ("infer img/s", "infer_images_per_s", lambda v: fmt.rate(fmt.mean(v))),
    ("compile s", "compile_s", lambda v: fmt.num(fmt.mean(v), ".2f")),
    ("train s", "train_s", lambda v: fmt.num(fmt.mean(v), ".1f")),
    ("time to final s", "time_to_final_s", lambda v: fmt.num(fmt.mean(v), ".1f")),
    ("params trainable", "params_trainable", fmt.int_range),
    ("params total", "params_total", fmt.int_range),
    ("GFLOPs", "gflops", lambda v: fmt.num(fmt.mean(v), ".3g")),
    ("peak MiB", "peak_memory_bytes", lambda v: fmt.num(None if not v else max(v) / 2**20, ".0f")),
]


THROUGHPUT_NOTE = ("Means over the quadrants and seeds that ran (params: range over quadrants, whose class counts "
                   "differ; peak memory: the largest, where the backend reports it).")  # fmt: skip


def throughput_table(view: View) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the throughput and cost table: one row per arch × head × strategy, the metrics of
    THROUGHPUT_COLUMNS over the quadrants and seeds that ran."""
    by_group: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for (arch, strategy, _, head), records in view.records.items():
        by_group.setdefault((arch, head, strategy), []).extend(r["metrics"] for r in records)
    rows = [[arch, head, strategy, *(show(fmt.numbers_of(by_group[(arch, head, strategy)], key))
                                     for _, key, show in THROUGHPUT_COLUMNS)]
            for arch, head in view.groups for strategy in view.strategies(arch, head)]  # fmt: skip
    return ["arch", "head", "strategy", *(title for title, _, _ in THROUGHPUT_COLUMNS)], rows


def _md_throughput(view: View) -> list[str]:
    header, rows = throughput_table(view)
    return ["## Throughput and cost", "", THROUGHPUT_NOTE, "", *fmt.md_table(header, rows, right=range(3, len(header)))]


def gate_lines(gate: Mapping[str, Any], limit: int = 10) -> list[str]:
    """Plain-text lines on the quality gate: the baseline and the verdict counts, whether throughput was
    comparable, then each regressed, new, missing and not-run group and each program whose throughput regressed
    (at most ``limit`` of each)."""
    base = gate["baseline"]
    messages = {r["group"]: r["message"] for r in gate["groups"]}
    messages |= {r["program"]: r["message"] for r in gate["throughput"]}
    counts = ", ".join(f"{n} {verdict}" for verdict, n in gate["counts"].items())
    lines = [f"gate vs baseline run {base['run_id']}: {len(gate['groups'])} groups — {counts}", f"  ({base['path']})",
             gate["throughput_note"]]  # fmt: skip
    if gate["throughput"]:
        tally = Counter(r["verdict"] for r in gate["throughput"])
        lines.append(f"throughput of {len(gate['throughput'])} arch × strategy × head programs (median over quadrants "
                     f"and seeds): " + ", ".join(f"{n} {verdict}" for verdict, n in tally.items()))  # fmt: skip
    if not gate["same_suite"]:
        lines.append(f"the baseline ran another version of the suite (hash {base['suite_hash']}): budgets may differ")
    sections = (
        ("regressed", gate["regressed"]),
        ("throughput regressed", gate["throughput_regressed"]),
        ("new, not gated", gate["new"]),
        ("missing: in the baseline, no longer in the suite", gate["missing"]),
        ("not run: in the baseline and selected, but no result recorded", gate["not_run"]),
    )
    for title, ids in sections:
        if ids:
            lines.append(f"{title} ({len(ids)}):")
            lines += [f"  {messages.get(g, g)}" for g in ids[:limit]]
            lines += [f"  … and {len(ids) - limit} more (see report.md)"] if len(ids) > limit else []
    if gate["not_selected"]:
        lines.append(f"{gate['not_selected']} baseline groups were not selected by this run's filters")
    return lines


def _md_gate(gate: Mapping[str, Any]) -> list[str]:
    tol = gate["tolerances"]
    rule = (f"A group (a scenario over its seeds) regresses when its mean test accuracy drops by more than "
            f"{100 * tol['accuracy_drop']:.1f} pts and more than {tol['noise_sigmas']:g} × the noise of the "
            f"difference (from the seeds' spread). On comparable hardware, an arch × strategy × head regresses when "
            f"its median train or inference images/s over its quadrants and seeds falls below "
            f"{1 - tol['throughput_drop']:.0%} of the baseline's.")  # fmt: skip
    header = ["group", "baseline %", "now %", "drop pts", "allowed pts", "verdict"]
    rows = []
    for r in gate["groups"]:
        acc = r["accuracy"] or {}
        rows.append([
            f"`{r['group']}`",
            fmt.pct_sd(acc.get("baseline_mean"), acc.get("baseline_std", 0.0), acc.get("baseline_n", 0)),
            fmt.pct_sd(acc.get("new_mean"), acc.get("new_std", 0.0), acc.get("new_n", 0)),
            fmt.num(None if "drop" not in acc else 100 * acc["drop"], "+.1f"),
            fmt.num(None if "allowed" not in acc else 100 * acc["allowed"], ".1f"),
            _md_verdict(r["verdict"]),
        ])  # fmt: skip
    detail = [f"- {line}" if not line.startswith("  ") else f"  - {line.strip()}" for line in gate_lines(gate, 50)]
    lines = ["## Quality gate", "", rule, "", *detail, "", *fmt.md_table(header, rows, right=range(1, 5))]
    if gate["throughput"]:
        header = ["program", "scenarios", "train base img/s", "train now", "train ×", "infer base img/s", "infer now",
                  "infer ×", "verdict"]
        rows = [[f"`{r['program']}`", f"{r['n_baseline']} → {r['n_new']}", *gate_rates(r, "train"),
                 *gate_rates(r, "infer"), _md_verdict(r["verdict"])] for r in gate["throughput"]]  # fmt: skip
        lines += ["", *fmt.md_table(header, rows, right=range(1, 8))]
    return lines


def gate_rates(row: Mapping[str, Any], name: str) -> list[str]:
    """A throughput row's baseline and new ``name`` images/s and their ratio, formatted."""
    return [fmt.rate(row[f"{name}_baseline"]), fmt.rate(row[f"{name}_new"]), fmt.num(row[f"{name}_ratio"], ".2f")]


def _md_verdict(verdict: str) -> str:
    return f"**{verdict}**" if verdict == "regressed" else verdict


def _md_failures(scenarios: list[dict[str, Any]]) -> list[str]:
    failed = [s for s in scenarios if s["status"] != "passed"]
    if not failed:
        return ["## Scenarios that did not pass", "", f"None: all {len(scenarios)} scenarios passed."]
    rows = [[f"`{s['id']}`", s["status"], fmt.one_line(s.get("error") or "-", 300)] for s in failed]
    return ["## Scenarios that did not pass", "", *fmt.md_table(["scenario", "status", "error"], rows)]


# ------------------------------------------------------------------------------------------------ terminal


def terminal_summary(report: Mapping[str, Any], width: int = 100) -> list[str]:
    """Compact lines for the end of a pytest run, none longer than ``width`` (but for a file path too long to
    fit): per arch × head the strategy × quadrant accuracy table, which strategy won where and whether the
    recommendation held, the quality gate's verdicts, status counts and the scenarios that did not pass. The
    caller adds where the report was written."""
    view = View(report)
    summary = status_summary(report["scenarios"])
    lines = [
        f"cnnbench {report['run_id']}: {summary['scenarios']} scenarios — {_status_counts(summary)}",
        "test accuracy %: mean±std over seeds; * best in quadrant; (k/n) only k of n seeds gave a result",
    ]
    for arch, head in view.groups:
        lines += _terminal_group(view, arch, head, width)
    lines += verdict_lines(view.check)
    lines += [_best_line(row, report["targets"]) for row in report.get("best") or []]
    note = view.chance_note()
    lines += textwrap.wrap(note, width, subsequent_indent="  ") if note else []
    lines += layer_transfer.terminal_lines(report.get("layer_transfer") or [], width)
    gate = []
    for line in gate_lines(report["gate"]) if report.get("gate") else []:  # wrapped, not cut: the values matter
        indent = " " * (len(line) - len(line.lstrip()))
        gate += textwrap.wrap(line.strip(), width, initial_indent=indent, subsequent_indent=indent + "  ",
                              break_long_words=False, break_on_hyphens=False)  # a path stays whole, even if long
    failures = _terminal_failures(report["scenarios"])
    return [fmt.fit(line, width) for line in lines] + gate + [fmt.fit(line, width) for line in failures]


def _terminal_group(view: View, arch: str, head: str, width: int) -> list[str]:
    quadrants = view.quadrants(arch, head)
    header = ["strategy", *quadrants]
    rows = [[s, *(view.accuracy_cell((arch, s, q, head), "±", "{}*") for q in quadrants)]
            for s in view.strategies(arch, head)]  # fmt: skip
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
    table = ["  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
             for row in (header, *rows)]  # fmt: skip
    checks = [r for r in view.check if (r["arch"], r["head"]) == (arch, head)]
    verdicts = "check: " + " · ".join(_short_verdict(r) for r in checks)
    wrapped = textwrap.wrap(verdicts, width, initial_indent="  ", subsequent_indent="    ")
    return [f"{arch} · {head} head", *table, *wrapped]


def _short_verdict(row: Mapping[str, Any]) -> str:
    quadrant, rec, winner, verdict = row["quadrant"], row["recommended"], row["winner"], row["verdict"]
    if verdict == "won":
        return f"{quadrant} {rec} won"
    if verdict == "not run":
        return f"{quadrant} {rec} not run ({winner} best)"
    word = "tied" if verdict == "tied within noise" else "LOST"
    return f"{quadrant} {rec} {word} ({winner} +{100 * row['margin']:.1f})"


def _best_line(row: Mapping[str, Any], targets: list[dict[str, Any]]) -> str:
    """e.g. ``best on q3 (textures) with resnet18: s2 × gap 71.3% ±1.2 (3 seeds), +2.4 pts over s1 × gap``."""
    target = next((t["name"] for t in targets if t["quadrant"] == row["quadrant"]), "?")
    spread = f" ±{100 * row['std']:.1f} ({row['n_seeds']} seeds)" if row["n_seeds"] > 1 else " (1 seed)"
    ahead = "" if row["margin"] is None else f", {100 * row['margin']:+.1f} pts over {row['runner_up']}"
    return (f"best on {row['quadrant']} ({target}) with {row['arch']}: {row['strategy']} × {row['head']} "
            f"{100 * row['mean']:.1f}%{spread}{ahead}")


def verdict_lines(check: list[dict[str, Any]]) -> list[str]:
    counts = {verdict: sum(r["verdict"] == verdict for r in check) for verdict in recommend.VERDICTS}
    held = counts["won"] + counts["tied within noise"]
    detail = ", ".join(f"{n} {verdict}" for verdict, n in counts.items())
    return [f"recommendation held in {held} of {len(check)} checks: {detail}"]


def _terminal_failures(scenarios: list[dict[str, Any]], limit: int = 10) -> list[str]:
    failed = [s for s in scenarios if s["status"] != "passed"]
    lines = [f"  {s['status']}: {s['id']}" + (f": {fmt.one_line(s['error'])}" if s.get("error") else "")
             for s in failed[:limit]]  # fmt: skip
    more = [f"  … and {len(failed) - limit} more (see report.md)"] if len(failed) > limit else []
    return (["did not pass:"] if failed else []) + lines + more
