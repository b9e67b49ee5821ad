"""The typed model of a run's results: a group's key, a scenario's record, the rows the results layer derives
(aggregates, the recommendation check, the best strategies, the layer-transfer points, the gate's verdicts) and
the whole ``cnnbench/1`` report.

Every type is a frozen dataclass whose ``to_json()`` gives exactly the keys, types and meaning of
``docs/report-schema.md`` and whose ``from_json()`` reads a stored report back, old ones included: a key the
schema leaves optional may be missing, and the environment's and targets' keys this module does not know are
kept as they were. Rows are read by attribute; their JSON form is ``to_json()``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, Self

from cnnbench.config.precision import DEFAULT_PRECISION
from cnnbench.engine.measurement import BenchRecord, CurvePoint, Measurement, Metrics, Outcome, TargetRecord, Timing

SCHEMA = "cnnbench/1"
STATUSES = ("passed", "regressed", "diverged", "error")


def to_json(value: Any) -> Any:
    """``value`` as JSON data: a model type by its ``to_json``, tuples as lists, non-finite floats as null, numpy
    scalars as Python numbers; anything else unknown as its ``str``."""
    if hasattr(value, "to_json"):
        return value.to_json()
    if isinstance(value, Mapping):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value) if math.isfinite(value) else None
    return str(value)


class Row:
    """A frozen dataclass row of the report: ``to_json()`` its fields as JSON data, ``from_json()`` read back."""

    def to_json(self) -> dict[str, Any]:
        return {f.name: to_json(getattr(self, f.name)) for f in fields(self)}  # type: ignore[arg-type]  # a dataclass

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        """The row from its JSON form; a missing key reads as None, a list as a tuple."""
        return cls(**{f.name: _tupled(data.get(f.name)) for f in fields(cls)})  # type: ignore[arg-type]  # a dataclass


def _tupled(value: Any) -> Any:
    return tuple(_tupled(v) for v in value) if isinstance(value, list) else value


# ---------------------------------------------------------------------------------------------- the key


@dataclass(frozen=True, order=True)
class GroupKey:
    """A group's identity: the scenarios of one (arch, strategy, quadrant, head[, freeze]) over seeds. A field is
    None where a unit leaves it out: ``program`` drops the quadrant (arch × strategy × head, the unit throughput
    is gated in), the recommendation check drops the strategy, ``cnnbench compare`` drops the arch when it
    compares archs with each other."""

    arch: str | None
    strategy: str | None
    quadrant: str | None
    head: str | None
    freeze: int | None = None

    @classmethod
    def of(cls, item: Any) -> GroupKey:
        """The key of a scenario record, a ``Scenario`` or a mapping of coordinates (``layer_transfer`` or
        ``freeze`` for a layer-transfer point)."""
        if isinstance(item, Mapping):
            freeze = item.get("layer_transfer", item.get("freeze"))
            return cls(item["arch"], item["strategy"], item["quadrant"], item["head"], freeze)
        freeze = getattr(item, "layer_transfer", None) if hasattr(item, "layer_transfer") else item.freeze
        return cls(item.arch, item.strategy, item.quadrant, item.head, freeze)

    def label(self) -> str:
        """The parts that are set joined by ``-``, like a scenario id without its seed (``resnet18-s2-q3-gap``,
        ``resnet18-s2-q2-gap-freeze3``)."""
        freeze = None if self.freeze is None else f"freeze{self.freeze}"
        return "-".join(str(p) for p in (self.arch, self.strategy, self.quadrant, self.head, freeze) if p is not None)

    @property
    def id(self) -> str:
        """The group id (``config.scenario.group_id``) of a full key; the label of a partial one."""
        return self.label()

    @property
    def program(self) -> GroupKey:
        """The arch × strategy × head[-freeze] this group's throughput is gated in; ``.program.id`` names it."""
        return replace(self, quadrant=None)

    @property
    def cell(self) -> GroupKey:
        """The (arch, quadrant, head) the recommendation check compares strategies in."""
        return replace(self, strategy=None, freeze=None)

    @property
    def coordinates(self) -> tuple[str, str, str, str]:
        """(arch, strategy, quadrant, head) of a scenario group's key; a partial key (a program, a cell) has none."""
        arch, strategy, quadrant, head = self.arch, self.strategy, self.quadrant, self.head
        if arch is None or strategy is None or quadrant is None or head is None:
            raise ValueError(f"{self.label()} is a partial key, not a scenario group's")
        return arch, strategy, quadrant, head


# ------------------------------------------------------------------------------------------- environment


@dataclass(frozen=True)
class Environment:
    """What a run measured on (``environment``): kept as the JSON object it is, so keys this version does not know
    survive a load and a write, and read through typed properties."""

    data: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return to_json(dict(self.data))

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Self:
        return cls(dict(data or {}))

    def value(self, key: str) -> Any:
        """The stored value of ``key`` (None when absent): for keys this version has no property for."""
        return self.data.get(key)

    @property
    def cnnbench(self) -> str | None:
        return self.data.get("cnnbench")

    @property
    def jax(self) -> str | None:
        return self.data.get("jax")

    @property
    def flax(self) -> str | None:
        return self.data.get("flax")

    @property
    def optax(self) -> str | None:
        return self.data.get("optax")

    @property
    def backend(self) -> str | None:
        return self.data.get("backend")

    @property
    def device_kind(self) -> str | None:
        return self.data.get("device_kind")

    @property
    def device_count(self) -> int | None:
        return self.data.get("device_count")

    @property
    def cpu(self) -> str | None:
        return self.data.get("cpu")

    @property
    def suite_hash(self) -> str | None:
        return self.data.get("suite_hash")

    @property
    def fingerprint(self) -> str | None:
        return self.data.get("fingerprint")

    @property
    def git_commit(self) -> str | None:
        return self.data.get("git_commit")

    @property
    def git_dirty(self) -> bool | None:
        return self.data.get("git_dirty")


# ------------------------------------------------------------------------------------------ scenario record


@dataclass(frozen=True)
class Timings(Row):
    """The steady-state timings of a scenario (``timing``)."""

    train_step: Timing
    inference: Timing

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Timings:
        return cls(Timing.from_json(data.get("train_step") or {}), Timing.from_json(data.get("inference") or {}))


@dataclass(frozen=True)
class AccuracyCheck(Row):
    """The figures behind a group's accuracy verdict (``gate.groups[].accuracy``)."""

    baseline_mean: float
    baseline_std: float
    baseline_n: int
    new_mean: float
    new_std: float
    new_n: int
    drop: float
    noise: float
    allowed: float


@dataclass(frozen=True)
class GroupVerdict(Row):
    """The gate's accuracy verdict on one group (``gate.groups[]``)."""

    group: str
    arch: str
    strategy: str
    quadrant: str
    head: str
    verdict: str
    accuracy: AccuracyCheck | None
    message: str

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> GroupVerdict:
        accuracy = data.get("accuracy")
        typed = None if accuracy is None else AccuracyCheck.from_json(accuracy)
        return replace(super().from_json(data), accuracy=typed)


@dataclass(frozen=True)
class ProgramVerdict(Row):
    """The gate's throughput verdict on one program (``gate.throughput[]``): median images/s on each side."""

    program: str
    arch: str
    strategy: str
    head: str
    verdict: str
    n_baseline: int
    n_new: int
    allowed_ratio: float
    train_baseline: float | None
    train_new: float | None
    train_ratio: float | None
    infer_baseline: float | None
    infer_new: float | None
    infer_ratio: float | None
    message: str

    def rates(self, name: str) -> tuple[float | None, float | None, float | None]:
        """The baseline and new median ``name`` (train or infer) images/s and their ratio."""
        return getattr(self, f"{name}_baseline"), getattr(self, f"{name}_new"), getattr(self, f"{name}_ratio")


@dataclass(frozen=True)
class ScenarioRecord(Row):
    """One scenario's entry in ``scenarios[]``: its coordinates, outcome, metrics (every key present, None when
    unknown), curve and timings, and with a baseline the gate's verdicts on its group and program.

    ``measured`` says whether the engine's per-run details (``augment``, ``head_first_steps``, ``stopped_at``,
    ``timing``) are part of the record (a scenario that trained to the end); ``gated`` whether the run had a
    baseline (then ``gate`` and ``gate_throughput`` are written, null where not judged on this record)."""

    id: str
    arch: str
    strategy: str
    quadrant: str
    head: str
    seed: int
    status: str
    layer_transfer: int | None = None
    target: str | None = None
    error: str | None = None
    metrics: Metrics = field(default_factory=Metrics)
    curve: tuple[CurvePoint, ...] = ()
    frozen_stages: tuple[str, ...] = ()
    measured: bool = False
    augment: tuple[str, ...] = ()
    head_first_steps: int | None = None
    stopped_at: int | None = None
    timing: Timings | None = None
    traceback: str | None = None
    gated: bool = False
    gate: GroupVerdict | None = None
    gate_throughput: ProgramVerdict | None = None
    precision: str = DEFAULT_PRECISION  # reports older than the key ran fp32

    @property
    def key(self) -> GroupKey:
        return GroupKey(self.arch, self.strategy, self.quadrant, self.head, self.layer_transfer)

    @property
    def group(self) -> str:
        return self.key.id

    @property
    def program(self) -> str:
        return self.key.program.id

    @property
    def test_accuracy(self) -> float | None:
        """The finite test accuracy, or None (error, NaN, missing metrics)."""
        return self.metrics.test_accuracy

    @classmethod
    def from_outcome(cls, scenario: Any, target: str | None, outcome: Outcome) -> ScenarioRecord:
        """The record of ``scenario`` (a ``config.scenario.Scenario``) run against ``target``, from the runner's
        ``Outcome``; the metrics' ``transfer_gain`` is filled when the report is built."""
        m: Measurement | None = outcome.measurement
        record = cls(id=scenario.id, arch=scenario.arch, strategy=scenario.strategy, quadrant=scenario.quadrant,
                     head=scenario.head, seed=scenario.seed, layer_transfer=scenario.freeze, target=target,
                     status=outcome.status, error=outcome.error, traceback=outcome.traceback,
                     precision=scenario.precision)  # fmt: skip
        if m is None:
            return record
        return replace(record, metrics=m.metrics, curve=tuple(m.curve), frozen_stages=tuple(m.frozen_stages),
                       measured=True, augment=tuple(m.augment), head_first_steps=m.head_first_steps,
                       stopped_at=m.stopped_at, timing=Timings(m.train_timing, m.infer_timing))  # fmt: skip

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id, "arch": self.arch, "strategy": self.strategy, "quadrant": self.quadrant,
            "head": self.head, "seed": self.seed, "layer_transfer": self.layer_transfer, "target": self.target,
            "precision": self.precision, "status": self.status, "error": self.error, "metrics": self.metrics.to_json(),
            "curve": [p.to_json() for p in self.curve], "frozen_stages": list(self.frozen_stages),
        }  # fmt: skip
        if self.measured:
            out |= {
                "augment": list(self.augment),
                "head_first_steps": self.head_first_steps,
                "stopped_at": self.stopped_at,
                "timing": None if self.timing is None else self.timing.to_json(),
            }
        if self.traceback is not None:
            out["traceback"] = self.traceback
        if self.gated:
            out["gate"] = None if self.gate is None else self.gate.to_json()
            out["gate_throughput"] = None if self.gate_throughput is None else self.gate_throughput.to_json()
        return to_json(out)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ScenarioRecord:
        timing, gate, speed = data.get("timing"), data.get("gate"), data.get("gate_throughput")
        return cls(
            id=data["id"], arch=data["arch"], strategy=data["strategy"], quadrant=data["quadrant"],
            head=data["head"], seed=data["seed"], status=data["status"], layer_transfer=data.get("layer_transfer"),
            target=data.get("target"), error=data.get("error"), metrics=Metrics.from_json(data.get("metrics") or {}),
            curve=tuple(CurvePoint.from_json(p) for p in data.get("curve") or []),
            frozen_stages=tuple(data.get("frozen_stages") or ()),
            measured=any(k in data for k in ("augment", "head_first_steps", "stopped_at", "timing")),
            augment=tuple(data.get("augment") or ()), head_first_steps=data.get("head_first_steps"),
            stopped_at=data.get("stopped_at"), timing=None if not timing else Timings.from_json(timing),
            traceback=data.get("traceback"), gated="gate" in data or "gate_throughput" in data,
            gate=None if not gate else GroupVerdict.from_json(gate),
            gate_throughput=None if not speed else ProgramVerdict.from_json(speed),
            precision=data.get("precision") or DEFAULT_PRECISION,
        )  # fmt: skip


# ---------------------------------------------------------------------------------------------- derived


@dataclass(frozen=True)
class AggregateRow(Row):
    """Test accuracy over seeds of one (arch, strategy, quadrant, head) (``aggregates[]``)."""

    arch: str
    strategy: str
    quadrant: str
    head: str
    mean: float
    std: float
    n_seeds: int
    seeds: tuple[int, ...]
    values: tuple[float, ...]
    transfer_gain: float | None
    chance: float | None
    at_chance: bool | None

    @property
    def key(self) -> GroupKey:
        return GroupKey(self.arch, self.strategy, self.quadrant, self.head)


@dataclass(frozen=True)
class CheckRow(Row):
    """One (arch, quadrant, head) of the recommendation check (``recommendation[]``)."""

    arch: str
    quadrant: str
    head: str
    recommended: str | None
    winner: str
    winner_mean: float | None = None
    winner_std: float | None = None
    winner_n_seeds: int | None = None
    recommended_mean: float | None = None
    recommended_std: float | None = None
    recommended_n_seeds: int | None = None
    margin: float | None = None
    noise: float | None = None
    verdict: str | None = None
    recommended_won: bool = False
    sentence: str | None = None

    @property
    def cell(self) -> GroupKey:
        return GroupKey(self.arch, None, self.quadrant, self.head)


@dataclass(frozen=True)
class BestRow(Row):
    """Per (arch, quadrant), the strategy × head with the best mean test accuracy (``best[]``)."""

    arch: str
    quadrant: str
    strategy: str
    head: str
    mean: float
    std: float
    n_seeds: int
    runner_up: str | None
    margin: float | None


@dataclass(frozen=True)
class LayerPoint(Row):
    """One point of a layer-transfer curve (``layer_transfer[]``)."""

    arch: str
    quadrant: str
    head: str
    frozen: int
    last_frozen: str | None
    mean: float | None
    std: float
    n_seeds: int
    scratch: float | None


@dataclass(frozen=True)
class StatusSummary(Row):
    """``summary``: the scenario count, and the count per status (every status present)."""

    scenarios: int
    by_status: Mapping[str, int]

    @classmethod
    def of(cls, records: Any) -> StatusSummary:
        by_status = {status: 0 for status in STATUSES}
        records = list(records)
        for record in records:
            by_status[record.status] += 1
        return cls(len(records), by_status)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StatusSummary:
        return cls(data.get("scenarios", 0), dict(data.get("by_status") or {}))


@dataclass(frozen=True)
class GateSummary(Row):
    """The report's ``gate`` section (``cnnbench.results.gate.summarize``)."""

    baseline: Mapping[str, Any]
    same_suite: bool
    counts: Mapping[str, int]
    tolerances: Mapping[str, float]
    throughput_comparable: bool
    throughput_note: str
    groups: tuple[GroupVerdict, ...]
    throughput: tuple[ProgramVerdict, ...]
    regressed: tuple[str, ...]
    throughput_regressed: tuple[str, ...]
    new: tuple[str, ...]
    missing: tuple[str, ...]
    not_run: tuple[str, ...]
    not_selected: int

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> GateSummary:
        row = super().from_json(data)
        return replace(row, baseline=dict(data.get("baseline") or {}), counts=dict(data.get("counts") or {}),
                       tolerances=dict(data.get("tolerances") or {}),
                       groups=tuple(GroupVerdict.from_json(g) for g in data.get("groups") or []),
                       throughput=tuple(ProgramVerdict.from_json(p) for p in data.get("throughput") or []),
                       not_selected=data.get("not_selected") or 0)  # fmt: skip


# ----------------------------------------------------------------------------------------------- report


@dataclass(frozen=True)
class PhaseRow(Row):
    """One phase of the run's time (``cnnbench.profiling.PHASES``): its own seconds, summed over processes."""

    name: str
    seconds: float
    calls: int


@dataclass(frozen=True)
class RunProfile(Row):
    """Where the run's time went (``profile``, written by ``cnnbench.profiling.Profile.to_json``)."""

    wall_s: float  # the run's elapsed time (the pytest-xdist controller's)
    processes: int  # the processes whose phases are summed: 1, or the xdist workers and the controller
    process_s: float  # their time: the workers' wall time, and the controller's phases
    other_s: float  # what the phases leave of ``process_s``: collection, pytest, imports, waiting
    phases: tuple[PhaseRow, ...]

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunProfile:
        row = super().from_json(data)
        return replace(row, phases=tuple(PhaseRow.from_json(p) for p in data.get("phases") or []))


@dataclass(frozen=True)
class Report(Row):
    """A whole ``cnnbench/1`` report (docs/report-schema.md)."""

    run_id: str
    started: str
    finished: str | None
    environment: Environment
    suite: Mapping[str, Any] | None
    targets: tuple[TargetRecord, ...]
    scenarios: tuple[ScenarioRecord, ...]
    aggregates: tuple[AggregateRow, ...] = ()
    recommendation: tuple[CheckRow, ...] = ()
    summary: StatusSummary | None = None
    best: tuple[BestRow, ...] = ()
    layer_transfer: tuple[LayerPoint, ...] = ()
    gate: GateSummary | None = None
    hardware: tuple[BenchRecord, ...] = ()  # a hardware suite's table (cnnbench.config.hardware)
    profile: RunProfile | None = None  # where the run's time went
    interrupted: str | None = None  # why the run stopped before its selected scenarios ran ("SIGTERM", ...)

    @property
    def strategy_scenarios(self) -> tuple[ScenarioRecord, ...]:
        """The scenarios of the strategy × quadrant × head matrix, without the layer-transfer curve's points."""
        return tuple(s for s in self.scenarios if s.layer_transfer is None)

    def target_name(self, quadrant: str) -> str:
        return next((t.name for t in self.targets if t.quadrant == quadrant), "?")

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "schema": SCHEMA, "run_id": self.run_id, "started": self.started, "finished": self.finished,
            "interrupted": self.interrupted, "environment": self.environment.to_json(), "suite": to_json(self.suite),
            "targets": [t.to_json() for t in self.targets], "scenarios": [s.to_json() for s in self.scenarios],
            "aggregates": [a.to_json() for a in self.aggregates],
            "recommendation": [r.to_json() for r in self.recommendation],
            "summary": (self.summary or StatusSummary.of(self.scenarios)).to_json(),
            "best": [b.to_json() for b in self.best], "layer_transfer": [p.to_json() for p in self.layer_transfer],
        }  # fmt: skip
        if self.gate is not None:
            out["gate"] = self.gate.to_json()
        if self.hardware:
            out["hardware"] = [to_json(h.to_json()) for h in self.hardware]
        if self.profile is not None:
            out["profile"] = self.profile.to_json()
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Report:
        """The report from its JSON form (validate it first: ``cnnbench.results.schema.validate``)."""
        gate = data.get("gate")
        return cls(
            run_id=data["run_id"], started=data["started"], finished=data.get("finished"),
            environment=Environment.from_json(data.get("environment")), suite=data.get("suite"),
            targets=tuple(TargetRecord.from_json(t) for t in data.get("targets") or []),
            scenarios=tuple(ScenarioRecord.from_json(s) for s in data.get("scenarios") or []),
            aggregates=tuple(AggregateRow.from_json(a) for a in data.get("aggregates") or []),
            recommendation=tuple(CheckRow.from_json(r) for r in data.get("recommendation") or []),
            summary=StatusSummary.from_json(data["summary"]) if data.get("summary") else None,
            best=tuple(BestRow.from_json(b) for b in data.get("best") or []),
            layer_transfer=tuple(LayerPoint.from_json(p) for p in data.get("layer_transfer") or []),
            gate=None if gate is None else GateSummary.from_json(gate),
            hardware=tuple(BenchRecord.from_json(h) for h in data.get("hardware") or []),
            profile=RunProfile.from_json(data["profile"]) if data.get("profile") else None,
            interrupted=data.get("interrupted"),
        )  # fmt: skip


def as_report(report: Report | Mapping[str, Any]) -> Report:
    """``report`` typed: a Report as it is, its JSON form read with :meth:`Report.from_json`."""
    return report if isinstance(report, Report) else Report.from_json(report)
