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

import math
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from functools import cached_property
from pathlib import Path
from typing import Any

from cnnbench.report import run as report
from cnnbench.results import recommend
from cnnbench.config.gate import Tolerances
from cnnbench.config.scenario import group_id, program_id

VERDICTS = ("passed", "regressed", "new", "no result")
RATES = ("train", "infer")


class BaselineError(ValueError):
    """A baseline file that cannot be gated against; the message names the file and the fix."""


@dataclass(frozen=True)
class Baseline:
    """A stored report to gate against, with its scenarios grouped over seeds."""

    path: Path
    report: dict[str, Any]

    @property
    def fingerprint(self) -> str | None:
        return self.report["environment"].get("fingerprint")

    @cached_property
    def groups(self) -> dict[str, list[dict[str, Any]]]:
        """Stored scenarios by group id, the unit of accuracy verdicts."""
        return group_records(self.report["scenarios"], group_id)

    @cached_property
    def programs(self) -> dict[str, list[dict[str, Any]]]:
        """Stored scenarios by program id, the unit of throughput verdicts."""
        return group_records(self.report["scenarios"], program_id)

    def describe(self) -> dict[str, Any]:
        env = self.report["environment"]
        return {"path": str(self.path), "run_id": self.report["run_id"], "suite_hash": env.get("suite_hash"),
                "fingerprint": self.fingerprint}  # fmt: skip


def load_baseline(path: str | Path) -> Baseline:
    """The baseline report at ``path``; raises BaselineError naming the file, what is wrong with it and how to
    make a good one (a missing file, a corrupt one, a report of another schema)."""
    path = Path(path)
    remedy = f"make one with `pytest --cnnbench --cnnbench-save-baseline {path}`"
    if not path.is_file():
        raise BaselineError(f"baseline {path} does not exist; {remedy}")
    try:
        stored = report.load_report(path)
    except ValueError as exc:
        raise BaselineError(f"baseline unusable: {exc}; {remedy}") from None
    return Baseline(path, stored)


def group_records(
    records: Iterable[Mapping[str, Any]], key: Callable[[Mapping[str, Any]], str] = group_id
) -> dict[str, list[dict[str, Any]]]:
    """Records by ``key`` (group id unless told), in first-seen order."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        groups.setdefault(key(record), []).append(dict(record))
    return groups


# ----------------------------------------------------------------------------------------------- judging


def judge(
    group: str, baseline: Sequence[Mapping[str, Any]] | None, new: Sequence[Mapping[str, Any]], tolerances: Tolerances
) -> dict[str, Any]:
    """The gate's accuracy verdict on one group: ``passed``, ``regressed``, ``new`` (not in the baseline) or
    ``no result`` (no seed of one side produced an accuracy), with the figures behind it and a one-line message."""
    first = new[0]
    row: dict[str, Any] = {"group": group, **{k: first[k] for k in ("arch", "strategy", "quadrant", "head")},
                           "verdict": "passed", "accuracy": None}  # fmt: skip
    if not baseline:
        row["verdict"] = "new"
        row["message"] = f"{group}: not in the baseline, not gated (save a new baseline to gate it)"
        return row
    new_acc, base_acc = _accuracies(new), _accuracies(baseline)
    if not new_acc or not base_acc:
        row["verdict"] = "no result"
        side = "this run" if not new_acc else "the baseline"
        row["message"] = f"{group}: no test accuracy in {side}, not gated"
        return row
    row["accuracy"] = accuracy = _accuracy_check(base_acc, new_acc, tolerances)
    if accuracy["drop"] > accuracy["allowed"]:
        row["verdict"] = "regressed"
        row["message"] = (
            f"{group} regressed against the baseline: test accuracy {_pct_seeds(base_acc)} in the baseline -> "
            f"{_pct_seeds(new_acc)} now: dropped {100 * accuracy['drop']:.1f} pts, tolerance "
            f"{100 * accuracy['allowed']:.1f} pts (accuracy_drop {100 * tolerances.accuracy_drop:.1f} pts, "
            f"{tolerances.noise_sigmas:g} x noise {100 * accuracy['noise']:.1f} pts)"
        )
    else:
        row["message"] = (f"{group}: {_pct_seeds(base_acc)} -> {_pct_seeds(new_acc)}, within "
                          f"{100 * accuracy['allowed']:.1f} pts")  # fmt: skip
    return row


def judge_throughput(
    program: str,
    baseline: Sequence[Mapping[str, Any]] | None,
    new: Sequence[Mapping[str, Any]],
    tolerances: Tolerances,
) -> dict[str, Any]:
    """The gate's throughput verdict on one program (same hardware assumed): the median train and inference
    images/s over its scenarios on each side, their ratio, and ``regressed`` when either ratio is below
    ``1 - throughput_drop``; ``new`` or ``no result`` when one side has nothing to compare."""
    first = new[0]
    row: dict[str, Any] = {"program": program, **{k: first[k] for k in ("arch", "strategy", "head")},
                           "verdict": "passed", "n_baseline": len(baseline or ()), "n_new": len(new),
                           "allowed_ratio": 1 - tolerances.throughput_drop}  # fmt: skip
    for name in RATES:
        key = f"{name}_images_per_s"
        before, after = _median_rate(baseline or (), key), _median_rate(new, key)
        row[f"{name}_baseline"], row[f"{name}_new"] = before, after
        row[f"{name}_ratio"] = None if before is None or after is None else after / before
    if not baseline:
        row["verdict"], row["message"] = "new", f"{program}: not in the baseline, throughput not gated"
        return row
    if all(row[f"{name}_ratio"] is None for name in RATES):
        row["verdict"], row["message"] = "no result", f"{program}: no throughput on one side, not gated"
        return row
    problems = [
        f"{name} throughput {row[f'{name}_baseline']:,.0f} -> {row[f'{name}_new']:,.0f} images/s "
        f"(x{row[f'{name}_ratio']:.2f}; tolerance: at least x{row['allowed_ratio']:.2f})"
        for name in RATES
        if row[f"{name}_ratio"] is not None and row[f"{name}_ratio"] < row["allowed_ratio"]
    ]
    over = f"median over {row['n_baseline']} -> {row['n_new']} scenarios"
    if problems:
        row["verdict"] = "regressed"
        row["message"] = f"{program} throughput regressed against the baseline ({over}): " + "; ".join(problems)
    else:
        ratios = ", ".join(f"{name} x{row[f'{name}_ratio']:.2f}" for name in RATES if row[f"{name}_ratio"] is not None)
        row["message"] = f"{program}: {ratios} ({over}), at least x{row['allowed_ratio']:.2f}"
    return row


def _accuracies(records: Sequence[Mapping[str, Any]]) -> list[float]:
    return [a for a in map(recommend.accuracy_of, records) if a is not None]


def _accuracy_check(base: list[float], new: list[float], tolerances: Tolerances) -> dict[str, Any]:
    spread = _pooled_std(base, new)
    noise = spread * math.sqrt(1 / len(base) + 1 / len(new))
    base_mean, new_mean = statistics.fmean(base), statistics.fmean(new)
    return {
        "baseline_mean": base_mean, "baseline_std": _std(base), "baseline_n": len(base),
        "new_mean": new_mean, "new_std": _std(new), "new_n": len(new),
        "drop": base_mean - new_mean, "noise": noise,
        "allowed": max(tolerances.accuracy_drop, tolerances.noise_sigmas * noise),
    }  # fmt: skip


def _std(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def _pooled_std(a: list[float], b: list[float]) -> float:
    """Pooled sample std of two samples; a one-seed sample has no spread of its own and takes the other's."""
    dof = (len(a) - 1) + (len(b) - 1)
    if dof == 0:
        return 0.0
    return math.sqrt(((len(a) - 1) * _std(a) ** 2 + (len(b) - 1) * _std(b) ** 2) / dof)


def _median_rate(records: Sequence[Mapping[str, Any]], key: str) -> float | None:
    rates = [r["metrics"][key] for r in records if isinstance((r.get("metrics") or {}).get(key), (int, float))]
    rates = [rate for rate in rates if rate > 0]
    return statistics.median(rates) if rates else None


def _pct_seeds(values: list[float]) -> str:
    spread = f" ± {100 * _std(values):.1f}" if len(values) > 1 else ""
    return f"{100 * statistics.fmean(values):.1f}%{spread} ({len(values)} seed{'s' if len(values) > 1 else ''})"


# ----------------------------------------------------------------------------------------------- the run


def comparable(baseline: Baseline, environment: Mapping[str, Any]) -> tuple[bool, str]:
    """Whether throughputs can be compared (same fingerprint), and a sentence saying why or why not."""
    mine, theirs = environment.get("fingerprint"), baseline.fingerprint
    if mine and mine == theirs:
        return True, f"throughput gated: same hardware and software (fingerprint {mine})"
    env = baseline.report["environment"]
    return False, (
        f"throughput not comparable: the baseline ran on {env.get('backend')} / {env.get('device_kind')} / "
        f"{env.get('cpu')} "
        f"(fingerprint {theirs}), this run has fingerprint {mine}; reported, not gated"
    )


def summarize(
    baseline: Baseline,
    records: Sequence[Mapping[str, Any]],
    environment: Mapping[str, Any],
    tolerances: Tolerances,
    suite_groups: Iterable[str],
    selected_groups: Iterable[str],
) -> dict[str, Any]:
    """The report's ``gate`` section: every group of this run judged over all its seeds, every program's
    throughput on comparable hardware, and the baseline's groups this run lacks — ``missing`` (no longer in the
    suite) or merely not selected by the filters."""
    throughput_ok, note = comparable(baseline, environment)
    stored = baseline.groups
    rows = [judge(g, stored.get(g), recs, tolerances) for g, recs in group_records(records).items()]
    programs = baseline.programs if throughput_ok else {}
    speed = [judge_throughput(p, programs.get(p), recs, tolerances)
             for p, recs in group_records(records, program_id).items()] if throughput_ok else []  # fmt: skip
    ran = {row["group"] for row in rows}
    in_suite, selected = set(suite_groups), set(selected_groups)
    absent = [g for g in stored if g not in ran]
    same_suite = baseline.report["environment"].get("suite_hash") == environment.get("suite_hash")
    return {
        "baseline": baseline.describe(),
        "same_suite": same_suite,
        "counts": {verdict: sum(r["verdict"] == verdict for r in rows) for verdict in VERDICTS},
        "tolerances": asdict(tolerances),
        "throughput_comparable": throughput_ok,
        "throughput_note": note,
        "groups": rows,
        "throughput": speed,
        "regressed": [r["group"] for r in rows if r["verdict"] == "regressed"],
        "throughput_regressed": [r["program"] for r in speed if r["verdict"] == "regressed"],
        "new": [r["group"] for r in rows if r["verdict"] == "new"],
        "missing": [g for g in absent if g not in in_suite],
        "not_run": [g for g in absent if g in selected],
        "not_selected": sum(g in in_suite and g not in selected for g in absent),
    }
