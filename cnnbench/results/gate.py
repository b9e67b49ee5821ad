"""The quality gate (SPEC §9): compare a run with a stored baseline report and say what regressed.

Scenarios are compared per **group**: a scenario id without its seed (``resnet18-s2-q3-gap``), so accuracy is
judged over seeds, not on one noisy number. A group **regressed in accuracy** when its mean test accuracy
dropped by more than ``allowed = max(accuracy_drop, noise_sigmas × se)``, where ``se`` is the standard error of
the difference of the two means, ``s·sqrt(1/n_baseline + 1/n_new)``, with ``s`` the seeds' pooled sample std (a
side with one seed borrows the other side's spread). One noisy seed therefore cannot fail a build that a
suite's tolerance would pass, and a build whose seeds scatter widely needs a larger drop to fail.

Throughput is judged per **program**: arch × strategy × head (``resnet18-s2-gap``), the network and trainable
part whose train step and inference are timed. Quadrants and seeds change the data, not the work per step, so
the median images/s over all of a program's scenarios (4 in ``smoke``, 12 in ``standard``) stands against the
baseline's: a millisecond step timed once per scenario on a shared machine is too noisy to gate alone. It is
judged only when the baseline's hardware/software fingerprint equals the run's; a program regressed when its
train or inference rate fell below ``1 - throughput_drop`` of the baseline's. Otherwise throughput is reported
as not comparable and never fails.

Nothing here imports JAX: the plugin loads and checks a baseline before any scenario runs.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Any

from cnnbench.config.gate import Tolerances
from cnnbench.results import aggregate
from cnnbench.results.records import (
    AccuracyCheck,
    Environment,
    GateSummary,
    GroupVerdict,
    ProgramVerdict,
    Report,
    ScenarioRecord,
)
from cnnbench.results.schema import read_report

VERDICTS = ("passed", "regressed", "new", "no result")
RATES = ("train", "infer")

SAME = 1e-9  # accuracies are counts over a test split: a drop equal to the tolerance must not read as beyond it


class BaselineError(ValueError):
    """A baseline file that cannot be gated against; the message names the file and the fix."""


@dataclass(frozen=True)
class Baseline:
    """A stored report to gate against, with its scenarios grouped over seeds."""

    path: Path
    report: Report

    @property
    def environment(self) -> Environment:
        return self.report.environment

    @property
    def fingerprint(self) -> str | None:
        return self.environment.fingerprint

    @cached_property
    def groups(self) -> dict[str, list[ScenarioRecord]]:
        """Stored scenarios by group id, the unit of accuracy verdicts."""
        return group_records(self.report.scenarios)

    @cached_property
    def programs(self) -> dict[str, list[ScenarioRecord]]:
        """Stored scenarios by program id, the unit of throughput verdicts."""
        return group_records(self.report.scenarios, lambda r: r.program)

    def describe(self) -> dict[str, Any]:
        return {"path": str(self.path), "run_id": self.report.run_id, "suite_hash": self.environment.suite_hash,
                "fingerprint": self.fingerprint}  # fmt: skip


def load_baseline(path: str | Path) -> Baseline:
    """The baseline report at ``path``; raises BaselineError naming the file, what is wrong with it and how to
    make a good one (a missing file, a corrupt one, a report of another schema)."""
    path = Path(path)
    remedy = f"make one with `pytest --cnnbench --cnnbench-save-baseline {path}`"
    if not path.is_file():
        raise BaselineError(f"baseline {path} does not exist; {remedy}")
    try:
        stored = read_report(path)
    except ValueError as exc:
        raise BaselineError(f"baseline unusable: {exc}; {remedy}") from None
    return Baseline(path, stored)


def other_suite(baseline: Baseline, suite: str) -> str | None:
    """Why ``baseline`` is not a baseline of the suite named ``suite`` (a report of another suite, whose scenarios
    were trained with other budgets and data), or None when it is."""
    theirs = (baseline.report.suite or {}).get("name")
    if theirs is None or theirs == suite:
        return None
    return (f"baseline {baseline.path} is a report of suite {theirs!r}, not of {suite!r}: its accuracies come from "
            f"other budgets and data. Gate against a baseline of {suite!r} (save one with --cnnbench-save-baseline), "
            "or pass --cnnbench-baseline-any-suite to gate against it anyway")  # fmt: skip


def group_records(
    records: Iterable[ScenarioRecord], key: Callable[[ScenarioRecord], str] = lambda r: r.group
) -> dict[str, list[ScenarioRecord]]:
    """Records by ``key`` (group id unless told), in first-seen order."""
    groups: dict[str, list[ScenarioRecord]] = {}
    for record in records:
        groups.setdefault(key(record), []).append(record)
    return groups


# ----------------------------------------------------------------------------------------------- judging


def judge(
    group: str, baseline: Sequence[ScenarioRecord] | None, new: Sequence[ScenarioRecord], tolerances: Tolerances
) -> GroupVerdict:
    """The gate's accuracy verdict on one group: ``passed``, ``regressed``, ``new`` (not in the baseline) or
    ``no result`` (no seed of one side produced an accuracy), with the figures behind it and a one-line message."""
    first = new[0]
    where = {"group": group, "arch": first.arch, "strategy": first.strategy, "quadrant": first.quadrant,
             "head": first.head}  # fmt: skip
    if not baseline:
        return GroupVerdict(
            **where,
            verdict="new",
            accuracy=None,
            message=f"{group}: not in the baseline, not gated (save a new baseline to gate it)",
        )
    new_acc, base_acc = aggregate.accuracies(new), aggregate.accuracies(baseline)
    if not new_acc or not base_acc:
        side = "this run" if not new_acc else "the baseline"
        return GroupVerdict(
            **where, verdict="no result", accuracy=None, message=f"{group}: no test accuracy in {side}, not gated"
        )
    accuracy = _accuracy_check(base_acc, new_acc, tolerances)
    if accuracy.drop > accuracy.allowed + SAME:
        return GroupVerdict(**where, verdict="regressed", accuracy=accuracy, message=(
            f"{group} regressed against the baseline: test accuracy {_pct_seeds(base_acc)} in the baseline -> "
            f"{_pct_seeds(new_acc)} now: dropped {100 * accuracy.drop:.1f} pts, tolerance "
            f"{100 * accuracy.allowed:.1f} pts (accuracy_drop {100 * tolerances.accuracy_drop:.1f} pts, "
            f"{tolerances.noise_sigmas:g} x noise {100 * accuracy.noise:.1f} pts)"
        ))  # fmt: skip
    return GroupVerdict(
        **where,
        verdict="passed",
        accuracy=accuracy,
        message=(f"{group}: {_pct_seeds(base_acc)} -> {_pct_seeds(new_acc)}, within {100 * accuracy.allowed:.1f} pts"),
    )


def judge_throughput(
    program: str,
    baseline: Sequence[ScenarioRecord] | None,
    new: Sequence[ScenarioRecord],
    tolerances: Tolerances,
) -> ProgramVerdict:
    """The gate's throughput verdict on one program (same hardware assumed): the median train and inference
    images/s over its scenarios on each side, their ratio, and ``regressed`` when either ratio is below
    ``1 - throughput_drop``; ``new`` or ``no result`` when one side has nothing to compare."""
    first, allowed = new[0], 1 - tolerances.throughput_drop
    figures: dict[str, Any] = {}
    for name in RATES:
        before = aggregate.median_rate(baseline or (), f"{name}_images_per_s")
        after = aggregate.median_rate(new, f"{name}_images_per_s")
        figures |= {f"{name}_baseline": before, f"{name}_new": after,
                    f"{name}_ratio": None if before is None or after is None else after / before}  # fmt: skip
    n_base, n_new = len(baseline or ()), len(new)
    row = ProgramVerdict(program=program, arch=first.arch, strategy=first.strategy, head=first.head,
                         verdict="passed", n_baseline=n_base, n_new=n_new, allowed_ratio=allowed, message="",
                         **figures)  # fmt: skip
    if not baseline:
        return _with(row, "new", f"{program}: not in the baseline, throughput not gated")
    ratios = {name: row.rates(name)[2] for name in RATES}
    if all(r is None for r in ratios.values()):
        return _with(row, "no result", f"{program}: no throughput on one side, not gated")
    problems = [
        f"{name} throughput {row.rates(name)[0]:,.0f} -> {row.rates(name)[1]:,.0f} images/s "
        f"(x{ratio:.2f}; tolerance: at least x{allowed:.2f})"
        for name, ratio in ratios.items()
        if ratio is not None and ratio < allowed
    ]
    over = f"median over {n_base} -> {n_new} scenarios"
    if problems:
        return _with(
            row, "regressed", f"{program} throughput regressed against the baseline ({over}): " + "; ".join(problems)
        )
    shown = ", ".join(f"{name} x{ratio:.2f}" for name, ratio in ratios.items() if ratio is not None)
    return _with(row, "passed", f"{program}: {shown} ({over}), at least x{allowed:.2f}")


def _with(row: ProgramVerdict, verdict: str, message: str) -> ProgramVerdict:
    return ProgramVerdict(**{**{k: getattr(row, k) for k in row.__dataclass_fields__}, "verdict": verdict,
                             "message": message})  # fmt: skip


def _accuracy_check(base: list[float], new: list[float], tolerances: Tolerances) -> AccuracyCheck:
    noise = aggregate.difference_noise(base, new)
    base_mean, new_mean = statistics.fmean(base), statistics.fmean(new)
    return AccuracyCheck(
        baseline_mean=base_mean, baseline_std=aggregate.std(base), baseline_n=len(base),
        new_mean=new_mean, new_std=aggregate.std(new), new_n=len(new),
        drop=base_mean - new_mean, noise=noise,
        allowed=max(tolerances.accuracy_drop, tolerances.noise_sigmas * noise),
    )  # fmt: skip


def _pct_seeds(values: list[float]) -> str:
    spread = f" ± {100 * aggregate.std(values):.1f}" if len(values) > 1 else ""
    return f"{100 * statistics.fmean(values):.1f}%{spread} ({len(values)} seed{'s' if len(values) > 1 else ''})"


# ----------------------------------------------------------------------------------------------- the run


def comparable(baseline: Baseline, environment: Mapping[str, Any] | Environment) -> tuple[bool, str]:
    """Whether throughputs can be compared (same fingerprint), and a sentence saying why or why not."""
    mine, theirs = _typed(environment).fingerprint, baseline.fingerprint
    if mine and mine == theirs:
        return True, f"throughput gated: same hardware and software (fingerprint {mine})"
    env = baseline.environment
    return False, (
        f"throughput not comparable: the baseline ran on {env.backend} / {env.device_kind} / {env.cpu} "
        f"(fingerprint {theirs}), this run has fingerprint {mine}; reported, not gated"
    )


def _typed(environment: Mapping[str, Any] | Environment) -> Environment:
    return environment if isinstance(environment, Environment) else Environment.from_json(environment)


def summarize(
    baseline: Baseline,
    records: Sequence[ScenarioRecord],
    environment: Mapping[str, Any] | Environment,
    tolerances: Tolerances,
    suite_groups: Iterable[str],
    selected_groups: Iterable[str],
) -> GateSummary:
    """The report's ``gate`` section: every group of this run judged over all its seeds, every program's
    throughput on comparable hardware, and the baseline's groups this run lacks — ``missing`` (no longer in the
    suite) or merely not selected by the filters."""
    throughput_ok, note = comparable(baseline, environment)
    stored = baseline.groups
    rows = [judge(g, stored.get(g), recs, tolerances) for g, recs in group_records(records).items()]
    programs = baseline.programs if throughput_ok else {}
    speed = [judge_throughput(p, programs.get(p), recs, tolerances)
             for p, recs in group_records(records, lambda r: r.program).items()] if throughput_ok else []  # fmt: skip
    ran = {row.group for row in rows}
    in_suite, selected = set(suite_groups), set(selected_groups)
    absent = [g for g in stored if g not in ran]
    return GateSummary(
        baseline=baseline.describe(),
        same_suite=baseline.environment.suite_hash == _typed(environment).suite_hash,
        counts={verdict: sum(r.verdict == verdict for r in rows) for verdict in VERDICTS},
        tolerances=asdict(tolerances),
        throughput_comparable=throughput_ok,
        throughput_note=note,
        groups=tuple(rows),
        throughput=tuple(speed),
        regressed=tuple(r.group for r in rows if r.verdict == "regressed"),
        throughput_regressed=tuple(r.program for r in speed if r.verdict == "regressed"),
        new=tuple(r.group for r in rows if r.verdict == "new"),
        missing=tuple(g for g in absent if g not in in_suite),
        not_run=tuple(g for g in absent if g in selected),
        not_selected=sum(g in in_suite and g not in selected for g in absent),
    )


class UngatableReport(ValueError):
    """A report that lacks what the gate judges it with; the message names what and the fix."""


def judge_run(
    baseline: Baseline,
    records: Sequence[ScenarioRecord],
    environment: Mapping[str, Any] | Environment,
    suite: Mapping[str, Any] | None,
) -> GateSummary:
    """``summarize`` of a run from its report's ``suite`` section (the tolerances, the suite's groups and the groups
    it selected): how a run gates itself and how ``cnnbench gate`` judges a stored or merged report, alike."""
    missing = [key for key in ("tolerances", "groups", "selected_groups") if key not in (suite or {})]
    if suite is None or missing:
        raise UngatableReport(
            f"the report's suite section lacks {', '.join(missing or ['everything'])}, which the gate judges with "
            "(a report written before cnnbench recorded them); run the suite again to gate it"
        )
    return summarize(baseline, records, environment, Tolerances(**suite["tolerances"]), suite["groups"],
                     suite["selected_groups"])  # fmt: skip


def judged(records: Sequence[ScenarioRecord], summary: GateSummary) -> list[ScenarioRecord]:
    """``records`` (in run order) with ``summary``'s verdicts where a gated run's items carry them: a group's on its
    last record, a program's throughput verdict on its last, and ``regressed`` on a passed record either
    regressed; verdicts the records carried before are replaced."""
    groups = {row.group: row for row in summary.groups}
    programs = {row.program: row for row in summary.throughput}
    last_of_group = {r.group: i for i, r in enumerate(records)}
    last_of_program = {r.program: i for i, r in enumerate(records)}
    out = []
    for i, record in enumerate(records):
        verdict = groups.get(record.group) if last_of_group[record.group] == i else None
        speed = programs.get(record.program) if last_of_program[record.program] == i else None
        status, error = ("passed", None) if record.status == "regressed" else (record.status, record.error)
        regressed = [v for v in (verdict, speed) if v is not None and v.verdict == "regressed"]
        if regressed and status == "passed":
            status, error = "regressed", "; ".join(v.message for v in regressed)
        out.append(replace(record, gated=True, gate=verdict, gate_throughput=speed, status=status, error=error))
    return out
