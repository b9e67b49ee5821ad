"""A run's ``cnnbench/1`` report built from its scenario records: transfer gains filled, accuracy aggregated over
seeds with the chance level of each target, the recommendation check, the best strategies, the layer-transfer
points and the status counts."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from cnnbench.engine.measurement import BenchRecord, TargetRecord
from cnnbench.results import layer_transfer, recommend
from cnnbench.results.aggregate import over_seeds, scratch_means, transfer_gain
from cnnbench.results.records import (
    SCHEMA,
    AggregateRow,
    Environment,
    GateSummary,
    Report,
    RunProfile,
    ScenarioRecord,
    StatusSummary,
    to_json,
)
from cnnbench.results.schema import METRIC_KEYS, listing, validate

CHANCE_SIGMAS = 2.0  # a mean accuracy within this many binomial standard errors of 1/classes is "at chance"


def build_report(
    run_id: str,
    started: str,
    finished: str | None,
    environment: Mapping[str, Any],
    targets: Sequence[Mapping[str, Any] | TargetRecord],
    scenarios: Sequence[ScenarioRecord | Mapping[str, Any]],
    suite: Mapping[str, Any] | None = None,
    gate: GateSummary | Mapping[str, Any] | None = None,
    hardware: Sequence[BenchRecord] = (),
    profile: Mapping[str, Any] | None = None,
    interrupted: str | None = None,
) -> Report:
    """The typed ``cnnbench/1`` report of a run so far: every metric present, ``transfer_gain`` filled, per-seed
    aggregates, the recommendation check, counts by status and, when the run is gated against a baseline, the
    gate's verdicts (``cnnbench.results.gate.summarize``). A hardware suite's run has no scenarios and its
    ``hardware`` rows instead. ``profile`` is where the run's time went (``cnnbench.profiling``); ``interrupted``
    says why a run stopped before its selected scenarios had run (Ctrl-C, SIGTERM), None for a run that was not.

    Records may be typed or JSON-shaped; raises ValueError when a JSON record lacks a required key or has an
    unknown status, so a bad report is caught where it is made rather than when a baseline is loaded.
    """
    skeleton = {
        "schema": SCHEMA, "run_id": run_id, "started": started, "finished": finished,
        "environment": to_json(dict(environment)), "targets": [_json_target(t) for t in targets],
        "scenarios": [_json_record(s) for s in scenarios], "recommendation": [],
        "hardware": [to_json(h.to_json()) for h in hardware],
        **({"profile": to_json(dict(profile))} if profile is not None else {}),
    }  # fmt: skip
    problems = validate(skeleton)
    if problems:
        raise ValueError(f"report {run_id!r} is malformed: {listing(problems)}")
    records = [s if isinstance(s, ScenarioRecord) else ScenarioRecord.from_json(j)
               for s, j in zip(scenarios, skeleton["scenarios"], strict=True)]  # fmt: skip
    gains = recommend.transfer_gains(records)
    records = [replace(r, metrics=replace(r.metrics, transfer_gain=g)) for r, g in zip(records, gains, strict=True)]
    target_records = tuple(TargetRecord.from_json(t) for t in skeleton["targets"])
    main = [r for r in records if r.layer_transfer is None]
    if gate is not None and not isinstance(gate, GateSummary):
        gate = GateSummary.from_json(to_json(gate))
    return Report(
        run_id=run_id, started=started, finished=finished, environment=Environment.from_json(skeleton["environment"]),
        suite=to_json(suite), targets=target_records, scenarios=tuple(records),
        aggregates=tuple(aggregates(main, target_records)), recommendation=tuple(recommend.check(main)),
        summary=StatusSummary.of(records), best=tuple(recommend.best(main)),
        layer_transfer=tuple(layer_transfer.points(records)), gate=gate, hardware=tuple(hardware),
        profile=RunProfile.from_json(skeleton["profile"]) if profile is not None else None, interrupted=interrupted,
    )  # fmt: skip


def _json_target(target: TargetRecord | Mapping[str, Any]) -> dict[str, Any]:
    return to_json(target.to_json() if isinstance(target, TargetRecord) else dict(target))


def _json_record(record: ScenarioRecord | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(record, ScenarioRecord):
        return record.to_json()
    data = to_json(dict(record))
    if "metrics" in data:
        data["metrics"] = {key: None for key in METRIC_KEYS} | (data["metrics"] or {})
    return data


def aggregates(records: Sequence[ScenarioRecord], targets: Sequence[TargetRecord]) -> list[AggregateRow]:
    """Per (arch, strategy, quadrant, head): test accuracy over seeds, the mean transfer gain over scratch, the
    target's chance level and whether the mean stayed at it."""
    stats = over_seeds(records)
    scratch = scratch_means(stats)
    chance = {t.quadrant: chance_level(t) for t in targets}
    rows = []
    for key, entry in stats.items():
        arch, strategy, quadrant, head = key.coordinates
        level, ceiling = chance.get(quadrant) or (None, None)
        rows.append(AggregateRow(
            arch=arch, strategy=strategy, quadrant=quadrant, head=head, mean=entry.mean,
            std=entry.std, n_seeds=entry.n_seeds, seeds=entry.seeds, values=entry.values,
            transfer_gain=transfer_gain(entry, scratch.get(key.cell)), chance=level,
            at_chance=None if ceiling is None else entry.mean <= ceiling,
        ))  # fmt: skip
    return rows


def chance_level(target: TargetRecord | Mapping[str, Any]) -> tuple[float, float] | None:
    """A target's chance accuracy (1 / classes) and the highest test accuracy still explained by guessing: chance
    plus ``CHANCE_SIGMAS`` binomial standard errors on its test set. ``None`` without class and test counts."""
    typed = target if isinstance(target, TargetRecord) else TargetRecord.from_json(target)
    classes, n_test = typed.n_classes, typed.n_test
    if not isinstance(classes, int) or not isinstance(n_test, int) or classes < 1 or n_test < 1:
        return None
    level = 1 / classes
    return level, level + CHANCE_SIGMAS * math.sqrt(level * (1 - level) / n_test)
