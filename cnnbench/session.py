"""The state of one cnnbench run: the suite, the filters, the scenario records and the report they make.

The pytest plugin owns one ``Session``; nothing here depends on pytest, so the same run can be driven from a
script. The runner (datasets, models, training) is built when the first scenario runs.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cnnbench import profiling
from cnnbench.config.hardware import HARDWARE, MODES, BenchPoint, HardwareSuite
from cnnbench.config.precision import PRECISIONS
from cnnbench.config.scenario import Scenario
from cnnbench.config.shard import Shard, ShardError, balance, partition, selection_digest
from cnnbench.config.suite import Suite, SuiteError
from cnnbench.engine.measurement import BenchRecord, Outcome, TargetRecord, merge_targets
from cnnbench.fileio import atomic_write
from cnnbench.report.io import claim_run_dir, report_json, write_report
from cnnbench.results import gate
from cnnbench.results.build import build_report
from cnnbench.results.records import GroupKey, Report, RunProfile, ScenarioRecord

if TYPE_CHECKING:  # the runner loads JAX: imported when the first scenario runs (Session.runner)
    from cnnbench.engine.roofline import Roofline
    from cnnbench.engine.runner import Runner, Trained
    from cnnbench.engine.timing import Timer

log = logging.getLogger(__name__)
COORDINATES = ("arch", "strategy", "quadrant", "head")
PLURALS = {"arch": "archs", "strategy": "strategies", "quadrant": "quadrants", "head": "heads"}
RECORD_PROPERTY = "cnnbench_record"  # the item property a pytest-xdist worker sends each record in (export_record)
SEEDS_TOGETHER = ("auto", "on", "off")  # auto: on a GPU or TPU, off on a CPU (where it measured slower)


@dataclass(frozen=True)
class Filters:
    """Which scenarios of a suite to run: per coordinate, the allowed values (empty: all)."""

    arch: tuple[str, ...] = ()
    strategy: tuple[str, ...] = ()
    quadrant: tuple[str, ...] = ()
    head: tuple[str, ...] = ()

    def check(self, suite: Suite) -> None:
        """Reject a value the suite does not have, naming it and the suite's values."""
        available = {
            "arch": suite.archs,
            "strategy": suite.strategies,
            "quadrant": tuple(suite.quadrants),
            "head": suite.heads,
        }
        for name in COORDINATES:
            for value in getattr(self, name):
                if value not in available[name]:
                    raise SuiteError(f"{name} {value!r} is not in suite {suite.name!r}; its {PLURALS[name]}: "
                                     f"{', '.join(available[name])}")  # fmt: skip

    def archs(self, suite: Suite) -> list[str]:
        """The suite's archs these filters keep."""
        return [a for a in suite.archs if not self.arch or a in self.arch]

    def select(self, scenarios: list[Scenario]) -> list[Scenario]:
        return [
            s for s in scenarios if all(not getattr(self, c) or getattr(s, c) in getattr(self, c) for c in COORDINATES)
        ]


def narrow(
    suite: HardwareSuite,
    archs: tuple[str, ...] = (),
    batches: tuple[int, ...] = (),
    precisions: tuple[str, ...] = (),
    modes: tuple[str, ...] = (),
) -> HardwareSuite:
    """``suite`` with these archs (any of the zoo's), batch sizes, precisions and modes instead of its own; an
    empty tuple keeps the suite's. Raises SuiteError naming a value that cannot be used."""
    for arch in archs:
        if arch not in suite.catalog.archs:
            raise SuiteError(f"unknown arch {arch!r}; known: {', '.join(suite.catalog.archs)}")
    for name, values, known in (("precision", precisions, PRECISIONS), ("mode", modes, MODES)):
        for value in values:
            if value not in known:
                raise SuiteError(f"unknown {name} {value!r}; known: {', '.join(known)}")
    if any(b < 1 for b in batches):
        raise SuiteError(f"batch sizes must be at least 1, got {', '.join(map(str, batches))}")
    return replace(suite, archs=archs or suite.archs, batches=batches or suite.batches,
                   precisions=precisions or suite.precisions, modes=modes or suite.modes)  # fmt: skip


class _Run:
    """What a transfer run and a hardware run share: an id and start time, the environment, the profile of where
    the time goes (this process's, from the run's start), records kept in the suite's order when xdist workers'
    records merge, and the report rewritten from them into the run's own folder (claimed exclusively)."""

    report_root: Path | None  # None: build the report, write no file
    records: list[Any]
    environment: dict | None
    report: Report | None
    run_dir: Path | None

    def _begin(self, suite_name: str) -> None:
        self.started = _now()
        self.run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{suite_name}"
        self.report = self.run_dir = self.environment = None
        self.interrupted: str | None = None  # set by whoever stops the run early (the plugin, on a signal)
        self.profile = profiling.Profile()
        profiling.activate(self.profile)

    def claim(self) -> Path | None:
        """The run's report folder, created now if it is not yet (``<date>-<time>-<suite>``, with ``-2``, ``-3``, …
        when another run holds that name), which also fixes ``run_id``; None for a run that writes no file."""
        if self.report_root is not None and self.run_dir is None:
            self.run_dir = claim_run_dir(self.report_root, self.run_id)
            self.run_id = self.run_dir.name
        return self.run_dir

    def export(self) -> dict[str, Any]:
        """This run's results as JSON-serialisable data, for a pytest-xdist worker to hand over."""
        return {"records": [r.to_json() for r in self.records], "environment": self.environment,
                "profile": self.profile.to_json()}  # fmt: skip

    def export_record(self, record: Any) -> tuple[str, str]:
        """``export()`` of one record alone, without the profile, as the item property (``RECORD_PROPERTY``) that a
        process which writes no report (a pytest-xdist worker) sends as each item finishes: the controller's report
        then holds it even when the run is interrupted before the worker ends."""
        return RECORD_PROPERTY, json.dumps(self.export() | {"records": [record.to_json()], "profile": None})

    def _merge(self, theirs: list[Any], order: list[str], exported: Mapping[str, Any]) -> None:
        """Add a worker's records (replacing any sent already as their items finished), keeping the suite's
        ``order`` of ids, its environment if this has none, and its profile."""
        rank = {name: i for i, name in enumerate(order)}
        fresh = {r.id for r in theirs}
        kept = [r for r in self.records if r.id not in fresh]
        self.records = sorted([*kept, *theirs], key=lambda r: rank.get(r.id, len(rank)))
        self.environment = self.environment or exported["environment"]
        if exported.get("profile"):
            self.profile.absorb(exported["profile"])

    def _write(self, finished: bool, suite: dict[str, Any], **parts: Any) -> Path | None:
        """Build the report of the records so far from ``parts`` and write it (atomically) unless the run has no
        ``report_root``; returns its directory, None before the first record or without a root."""
        if not self.records:
            return None
        with profiling.phase("report"):
            self.claim()  # first: the folder's name is the run's id
            self.report = build_report(run_id=self.run_id, started=self.started,
                                       finished=_now() if finished else None, environment=self.environment or {},
                                       suite=suite, profile=self.profile.to_json(), interrupted=self.interrupted,
                                       **parts)  # fmt: skip
            if self.report_root is None:  # the Python API's run without files: the report alone
                return None
            self.run_dir = write_report(self.report, self.report_root, plots=finished)
        if finished:  # once more without the slow HTML, so the profile counts the final write too
            self.report = replace(self.report, profile=RunProfile.from_json(self.profile.to_json()))
            write_report(self.report, self.report_root, plots=False)
        return self.run_dir

    def write(self, finished: bool = False) -> Path | None:
        """Write the report of the records so far (atomically); returns its directory."""
        raise NotImplementedError

    def write_quietly(self) -> None:
        """``write()`` after a record, where a failure (disk full, the folder made read-only) is logged and the run
        goes on: the records stay in memory, and the run's last write tries again."""
        try:
            self.write()
        except OSError as exc:
            log.warning(f"could not write the report into {self.run_dir or self.report_root}: {exc}; the run goes on "
                        "and writes it again when it ends")  # fmt: skip


def place_target(suite: Suite, filters: Filters, target: Path, cache_dir: Path) -> Suite:
    """The suite run on the user's dataset ``target`` alone, in the quadrant its size and its similarity, measured
    with the selected archs (pretrained first where they are not cached), put it in; logs where it went."""
    from cnnbench.engine.placement import place_user_target  # the engine loads JAX: only a run with a target

    placed, where = place_user_target(suite, target, filters.archs(suite), cache_dir)
    log.info(where.describe())
    return placed


def use_weights(suite: Suite, tags: Sequence[str], cache_dir: Path) -> Suite:
    """The suite with imported weights ``tags`` (``--cnnbench-pretrained``) added to its own (``[arch.NAME]
    weights``), each found in the cache and checked against its arch: the input config it needs, the arch it is for."""
    if not tags and not suite.weights:
        return suite
    from cnnbench.engine.imported import find  # the engine loads JAX: only a run with imported weights

    for arch, tag in suite.weights.items():
        holds = find(tag, cache_dir).arch
        if holds != arch:
            raise SuiteError(f"{suite.path}: [arch.{arch}] weights = {tag!r} holds {holds} weights, not {arch}'s")
    by_arch: dict[str, str] = {}
    for tag in tags:
        arch = find(tag, cache_dir).arch
        if arch in by_arch:
            raise SuiteError(f"--cnnbench-pretrained names two tags for {arch}: {by_arch[arch]!r} and {tag!r}")
        by_arch[arch] = tag
    return suite.with_weights(by_arch)


def cpu_refusal(suite: Suite, filters: Filters, cache_dir: Path) -> str | None:
    """Why a suite meant for an accelerator (``requires_accelerator``) should not run here, with the estimated cost of
    its selected scenarios on this CPU (``cnnbench.engine.estimate``, against the roofline probe's measured peak);
    None on a GPU or TPU, or for any other suite."""
    if not suite.requires_accelerator:
        return None
    import jax  # here: only a suite meant for an accelerator asks which backend this is

    if jax.default_backend() != "cpu":
        return None
    from cnnbench.engine.estimate import EFFICIENCY, split_sizes, suite_cost
    from cnnbench.engine.roofline import probe

    quadrants = {q: b for q, b in suite.quadrants.items() if not filters.quadrant or q in filters.quadrant}
    selected = replace(suite, archs=filters.arch or suite.archs, strategies=filters.strategy or suite.strategies,
                       heads=filters.head or suite.heads, quadrants=quadrants)  # fmt: skip
    cost = suite_cost(selected, split_sizes(selected, cache_dir))
    peak = probe((suite.precision,)).peak(suite.precision) or 0.0
    hours = cost.seconds(peak) / 3600 if peak else float("inf")
    return (
        f"suite {suite.name!r} is meant for a GPU or TPU (requires_accelerator = true): its "
        f"{len(selected.scenarios())} selected scenarios need about {cost.total / 1e15:,.2f} PFLOP of model "
        f"compute (pretraining {cost.pretrain / 1e15:,.2f}), about {hours:,.1f} hours on this CPU at "
        f"{EFFICIENCY:.0%} of its measured {peak:.3g} TFLOP/s; run it on an accelerator (README: On a GPU or TPU), "
        "select less with --cnnbench-arch, "
        "--cnnbench-quadrant or --cnnbench-strategy, or pass --cnnbench-force to run it here anyway"
    )


@dataclass
class Session(_Run):
    """One run of a suite: runs scenarios, keeps their records and rewrites the report after each.

    Under pytest-xdist each worker runs its scenarios with ``writes_reports=False`` and hands ``export()`` to
    the controller, whose session ``merge``s them into the one report.

    ``devices`` is how many devices each scenario trains on, data-parallel (None: one on a CPU, every device on an
    accelerator or in a multi-process job, decided when the first scenario runs). In a multi-process job every
    process runs every scenario; only process 0 (``writes_reports``) writes.

    With ``seeds_together`` (``SEEDS_TOGETHER``) a group's selected seeds train together in one program when its
    first seed runs (``Runner.train``); each seed's own item then times and records it.

    With a ``baseline`` the run is gated (``cnnbench.results.gate``): when the last selected seed of a group has run,
    the group's accuracy is judged over all its seeds, and when the last selected scenario of a program has run,
    its throughput (on comparable hardware); a regression gives that last record status ``regressed``, so its
    pytest item fails. The report's ``gate`` section judges everything again over all merged records, which also
    catches a group or program whose scenarios ran on different xdist workers (``unflagged_regressions``).
    """

    suite: Suite
    filters: Filters
    report_root: Path | None  # None: build the report, write no file
    cache_dir: Path
    writes_reports: bool = True
    baseline: gate.Baseline | None = None
    seeds_together: str = "auto"
    shard: Shard | None = None
    devices: int | None = None
    save_models: Path | None = None  # keep each passed scenario's trained model here (cnnbench.engine.kept)
    records: list[ScenarioRecord] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.seeds_together not in SEEDS_TOGETHER:
            raise SuiteError(f"seeds together {self.seeds_together!r}: expected one of {', '.join(SEEDS_TOGETHER)}")
        self._begin(self.suite.name)
        self.targets: dict[str, TargetRecord] = {}  # by quadrant: what the report says about its target
        self.selected_ids: list[str] = [s.id for s in self.scenarios()]  # narrowed by the plugin after collection
        self._keys: dict[str, GroupKey] = {s.id: GroupKey.of(s) for s in self.suite.scenarios()}
        self.tolerances = self.suite.gate
        self._runner: Runner | None = None
        self._together = False  # decided with the backend, when the runner is built
        self._trained: dict[str, Trained | Outcome] = {}  # seeds trained with an earlier seed of their group
        self.part: dict[str, Any] | None = None  # which part of which selection this run is (``take_shard``)

    def scenarios(self) -> list[Scenario]:
        return self.filters.select(self.suite.scenarios())

    def take_shard(self, ids: list[str]) -> list[str]:
        """This run's part (``shard``) of the scenarios ``ids`` — the selection after every filter and
        deselection — as ``cnnbench.config.shard`` splits their estimated costs (``cnnbench.engine.cost``); every
        part of the split computes the same split. Logs the part's share and returns its ids, in ``ids``' order."""
        assert self.shard is not None
        from cnnbench.engine.cost import shard_units  # the estimate builds the targets and reads the zoo: JAX
        from cnnbench.engine.estimate import split_sizes

        chosen = set(ids)
        scenarios = [s for s in self.suite.scenarios() if s.id in chosen]
        units, shared = shard_units(self.suite, scenarios, split_sizes(self.suite, self.cache_dir))
        parts = partition(units, shared, self.shard.count)
        mine = set(parts[self.shard.index - 1].scenarios)
        if not mine:
            raise ShardError(
                f"shard {self.shard} has no scenarios: the {len(ids)} selected scenarios make {len(units)} programs "
                f"(arch × strategy × head), which are never split; use at most {len(units)} parts"
            )
        self.part = {"index": self.shard.index, "count": self.shard.count, "selection": selection_digest(ids),
                     "selected": len(ids), "scenarios": len(mine)}  # fmt: skip
        total = sum(u.seconds for u in units) + sum(shared.values())
        log.info(
            f"shard {self.shard}: {len(parts[self.shard.index - 1].units)} of {len(units)} programs, {len(mine)} of "
            f"{len(ids)} scenarios, about {parts[self.shard.index - 1].seconds:,.0f} s of {total:,.0f} s on the "
            f"reference CPU (parts {', '.join(f'{p.seconds:,.0f}' for p in parts)} s; slowest / mean "
            f"{balance(parts):.2f})"
        )
        self.selected_ids = [i for i in ids if i in mine]
        return self.selected_ids

    @property
    def runner(self) -> Runner:
        """The run's Runner, built (and JAX loaded, its compilation cache set) when the first scenario runs."""
        if self._runner is None:
            import jax  # here: a session that runs nothing (collection, a usage error) never loads JAX

            from cnnbench.engine.environment import collect_environment
            from cnnbench.engine.programs import persist
            from cnnbench.engine.runner import Runner

            persist(self.cache_dir)
            on_cpu = jax.default_backend() == "cpu"
            if self.devices is None:  # one device on a CPU alone; every device on accelerators or over processes
                self.devices = 1 if on_cpu and jax.process_count() == 1 else jax.device_count()
            self.environment = collect_environment(self.suite.digest, self.suite.precision, self.devices)
            self._runner = Runner(self.suite, self.cache_dir, devices=self.devices)
            self._together = self.seeds_together == "on" or (self.seeds_together == "auto" and not on_cpu)
        return self._runner

    def run(self, scenario: Scenario, timer: Timer) -> ScenarioRecord:
        """Run one scenario (training its group's other selected seeds with it where seeds train together),
        record it and rewrite the report, whatever the scenario's outcome."""
        runner = self.runner
        if scenario.id not in self._trained:
            group = self._group(scenario)
            self._trained.update(zip([s.id for s in group], runner.train(group), strict=True))
        trained = self._trained.pop(scenario.id)
        if self.save_models is not None and not isinstance(trained, Outcome):  # trained and evaluated: it passed
            where = runner.keep(trained, self.save_models)
            if where is not None:
                log.info(f"{scenario.id}: trained model kept in {where} (cnnbench weights export exports it)")
        outcome: Outcome = runner.measure(trained, timer)
        target = self.suite.quadrants[scenario.quadrant].name
        record = ScenarioRecord.from_outcome(scenario, target, outcome)
        if self.baseline is not None:
            record = self._judge(record, self.baseline)
        self.records.append(record)
        self.targets.update((t.quadrant, t) for t in self.runner.target_info())
        if self.writes_reports:
            self.write_quietly()
        return record

    def _group(self, scenario: Scenario) -> list[Scenario]:
        """What trains with ``scenario``: itself, and where seeds train together its group's other selected seeds
        that have not run yet."""
        if not self._together:
            return [scenario]
        done, selected = {r.id for r in self.records}, set(self.selected_ids)
        return [s for s in self.scenarios() if s.id == scenario.id or
                (s.group == scenario.group and s.id in selected and s.id not in done)]  # fmt: skip

    def _judge(self, record: ScenarioRecord, baseline: gate.Baseline) -> ScenarioRecord:
        """``record`` with the gate's verdicts: on its group once its last selected seed has run here, on its
        program's throughput (on comparable hardware) once its last selected scenario has; a regression fails it."""
        key = record.key
        verdict = speed = None
        group = self._complete(record, key.id, lambda k: k.id)
        if group is not None:
            verdict = gate.judge(key.id, baseline.groups.get(key.id), group, self.tolerances)
        program = self._complete(record, key.program.id, lambda k: k.program.id)
        if program is not None and gate.comparable(baseline, self.environment or {})[0]:
            speed = gate.judge_throughput(key.program.id, baseline.programs.get(key.program.id), program,
                                          self.tolerances)  # fmt: skip
        record = replace(record, gated=True, gate=verdict, gate_throughput=speed)
        regressed = [v for v in (verdict, speed) if v is not None and v.verdict == "regressed"]
        if regressed and record.status == "passed":
            record = replace(record, status="regressed", error="; ".join(v.message for v in regressed))
        return record

    def _complete(
        self, record: ScenarioRecord, name: str, unit: Callable[[GroupKey], str]
    ) -> list[ScenarioRecord] | None:
        """This session's records (``record`` included) whose ``unit`` (group or program id) is ``name``, once
        every selected scenario of it has run here; ``None`` before."""
        mine = [r for r in [*self.records, record] if unit(r.key) == name]
        expected = {i for i in self.selected_ids if i in self._keys and unit(self._keys[i]) == name}
        return mine if expected <= {r.id for r in mine} else None

    def export(self) -> dict[str, Any]:
        return super().export() | {"targets": [t.to_json() for t in self.targets.values()], "part": self.part}

    def merge(self, exported: Mapping[str, Any]) -> None:
        """Add a worker's ``export()``; records are kept in the suite's scenario order."""
        theirs = [ScenarioRecord.from_json(r) for r in exported["records"]]
        self._merge(theirs, [s.id for s in self.suite.scenarios()], exported)
        self.targets = merge_targets([*self.targets.values(), *map(TargetRecord.from_json, exported["targets"])])
        self.part = self.part or exported.get("part")

    def write(self, finished: bool = False) -> Path | None:
        """Write the report of the records so far (atomically); returns its directory."""
        return self._write(finished, self._suite_section(), targets=[self.targets[q] for q in sorted(self.targets)],
                           scenarios=self.records, gate=self._gate_summary())  # fmt: skip

    def _suite_section(self) -> dict[str, Any]:
        """The report's ``suite``: the suite, and what ``cnnbench merge`` and ``cnnbench gate`` need to judge the
        report without it — its gate tolerances, its groups, the groups this run selected, and which part of a
        sharded selection it is."""
        selected = set(self.selected_ids)
        section = {"name": self.suite.name, "path": self.suite.path, "digest": self.suite.digest,
                   "tolerances": asdict(self.tolerances), "groups": _unique(s.group for s in self.suite.scenarios()),
                   "selected_groups": _unique(s.group for s in self.suite.scenarios() if s.id in selected),
                   "infer_batch": self.suite.train.infer_batch}  # fmt: skip
        section |= {"weights": dict(self.suite.weights)} if self.suite.weights else {}
        return section | ({"shard": self.part} if self.part else {})

    def _gate_summary(self) -> gate.GateSummary | None:
        if self.baseline is None:
            return None
        return gate.judge_run(self.baseline, self.records, self.environment or {}, self._suite_section())

    def unflagged_regressions(self) -> list[str]:
        """Groups and programs the report's gate finds regressed although none of their pytest items failed for
        it (their scenarios ran on different xdist workers, none of which saw them all)."""
        if not self.report or self.report.gate is None:
            return []
        flagged = {r.gate.group for r in self.records if r.gate and r.gate.verdict == "regressed"}
        flagged |= {r.gate_throughput.program for r in self.records
                    if r.gate_throughput and r.gate_throughput.verdict == "regressed"}  # fmt: skip
        section = self.report.gate
        return [name for name in (*section.regressed, *section.throughput_regressed) if name not in flagged]

    def unfinished(self) -> str | None:
        """Why this run's report is not a whole baseline — it was interrupted, or some selected scenarios have no
        record (``-x`` stopped it, a worker crashed) — or None when every selected scenario has one."""
        done = {r.id for r in self.records}
        missing = [i for i in self.selected_ids if i not in done]
        if self.interrupted is None and not missing:
            return None
        stopped = f"it was interrupted ({self.interrupted}) and " if self.interrupted else ""
        return f"{stopped}{len(missing)} of its {len(self.selected_ids)} selected scenarios did not run"

    def save_baseline(self, path: Path, partial: bool = False) -> None:
        """Store the finished report at ``path`` for later runs' ``--cnnbench-baseline``; a report of an unfinished
        run (``unfinished``) only with ``partial``, since a later run gated against it would judge nothing for the
        missing scenarios."""
        if self.report is None:
            raise ValueError("no scenario has run, so there is no report to save as a baseline")
        why = self.unfinished()
        if why and not partial:
            raise ValueError(f"not saved as a baseline: {why}; run the suite to its end, or pass "
                             "--cnnbench-save-partial-baseline to save these scenarios alone")  # fmt: skip
        atomic_write(path, report_json(self.report))


@dataclass
class HardwareSession(_Run):
    """One run of a hardware suite (``cnnbench.config.hardware``): times the selected bench points, keeps their
    rows and rewrites the report after each. Like :class:`Session`, a pytest-xdist worker ``export``s its rows and
    the controller ``merge``s them. The roofline probe runs once per process, before the first point."""

    suite: HardwareSuite
    points: list[BenchPoint]
    report_root: Path
    writes_reports: bool = True
    records: list[BenchRecord] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._begin(self.suite.name)
        self._roofline: Roofline | None = None

    @property
    def roofline(self) -> Roofline:
        """The device's measured peaks, probed (and the environment recorded) on first use."""
        if self._roofline is None:
            from cnnbench.engine.environment import collect_environment  # JAX: only once a point runs
            from cnnbench.engine.roofline import probe

            self.environment = collect_environment(self.suite.digest, ",".join(self.suite.precisions))
            with profiling.phase("roofline"):
                self._roofline = probe(self.suite.precisions)
            self.environment["roofline"] = self._roofline.to_json()
            log.info(_describe_roofline(self._roofline))
        return self._roofline

    def run(self, point: BenchPoint, timer: Timer) -> BenchRecord:
        """Time one bench point, record it and rewrite the report, whatever the point's outcome."""
        from cnnbench.engine.bench import run_point  # JAX: only once a point runs

        record = run_point(point, self.suite.bench, timer, self.roofline)
        self.records.append(record)
        if self.writes_reports:
            self.write_quietly()
        return record

    def unflagged_regressions(self) -> list[str]:
        """None: a hardware run has no quality gate (the plugin asks every run)."""
        return []

    def merge(self, exported: Mapping[str, Any]) -> None:
        """Add a worker's ``export()``; rows are kept in the suite's point order."""
        theirs = [BenchRecord.from_json(r) for r in exported["records"]]
        self._merge(theirs, [p.id for p in self.suite.points()], exported)

    def write(self, finished: bool = False) -> Path | None:
        """Write the report of the rows so far (atomically); returns its directory."""
        suite = {"name": self.suite.name, "path": self.suite.path, "digest": self.suite.digest, "kind": HARDWARE}
        return self._write(finished, suite, targets=[], scenarios=[], hardware=self.records)


def _describe_roofline(roofline: Roofline) -> str:
    """One progress line: the measured peak per precision, and the datasheet's where the device is known."""
    peaks = ", ".join(f"{p} {roofline.peak(p):.3g}" for p in roofline.matmul_tflops if roofline.peak(p))
    sheet = roofline.datasheet_tflops
    known = f" (datasheet: {', '.join(f'{p} {v:g}' for p, v in sheet.items())})" if sheet else ""
    return f"roofline probe on {roofline.device_kind}: measured peak TFLOP/s {peaks}{known}"


def _unique(names: Any) -> list[str]:
    return list(dict.fromkeys(names))


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
