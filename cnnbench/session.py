"""The state of one cnnbench run: the suite, the filters, the scenario records and the report they make.

The pytest plugin owns one ``Session``; nothing here depends on pytest, so the same run can be driven from a
script. The runner (datasets, models, training) is built when the first scenario runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cnnbench.config.scenario import Scenario
from cnnbench.config.suite import Suite, SuiteError
from cnnbench.engine.measurement import Outcome, TargetRecord
from cnnbench.fileio import atomic_write
from cnnbench.report.io import report_json, write_report
from cnnbench.results import gate
from cnnbench.results.build import build_report
from cnnbench.results.records import GroupKey, Report, ScenarioRecord

if TYPE_CHECKING:  # the runner loads JAX: imported when the first scenario runs (Session.runner)
    from cnnbench.engine.runner import Runner
    from cnnbench.engine.timing import Timer

COORDINATES = ("arch", "strategy", "quadrant", "head")


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
                    raise SuiteError(
                        f"--cnnbench-{name} {value!r} is not in suite {suite.name!r}; "
                        f"its {name}s: {', '.join(available[name])}"
                    )

    def select(self, scenarios: list[Scenario]) -> list[Scenario]:
        return [
            s for s in scenarios if all(not getattr(self, c) or getattr(s, c) in getattr(self, c) for c in COORDINATES)
        ]


@dataclass
class Session:
    """One run of a suite: runs scenarios, keeps their records and rewrites the report after each.

    Under pytest-xdist each worker runs its scenarios with ``writes_reports=False`` and hands ``export()`` to
    the controller, whose session ``merge``s them into the one report.

    With a ``baseline`` the run is gated (``cnnbench.results.gate``): when the last selected seed of a group has run,
    the group's accuracy is judged over all its seeds, and when the last selected scenario of a program has run,
    its throughput (on comparable hardware); a regression gives that last record status ``regressed``, so its
    pytest item fails. The report's ``gate`` section judges everything again over all merged records, which also
    catches a group or program whose scenarios ran on different xdist workers (``unflagged_regressions``).
    """

    suite: Suite
    filters: Filters
    report_root: Path
    cache_dir: Path
    log: Callable[[str], None] = print
    writes_reports: bool = True
    baseline: gate.Baseline | None = None
    records: list[ScenarioRecord] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.started = _now()
        self.run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{self.suite.name}"
        self.report: Report | None = None
        self.run_dir: Path | None = None
        self.targets: dict[str, TargetRecord] = {}  # by quadrant: what the report says about its target
        self.environment: dict | None = None
        self.selected_ids: list[str] = [s.id for s in self.scenarios()]  # narrowed by the plugin after collection
        self._keys: dict[str, GroupKey] = {s.id: GroupKey.of(s) for s in self.suite.scenarios()}
        self.tolerances = self.suite.gate
        self._runner: Runner | None = None

    def scenarios(self) -> list[Scenario]:
        return self.filters.select(self.suite.scenarios())

    @property
    def runner(self) -> Runner:
        """The run's Runner, built (and JAX loaded, its compilation cache set) when the first scenario runs."""
        if self._runner is None:
            import jax  # here: a session that runs nothing (collection, a usage error) never loads JAX

            from cnnbench.engine.environment import collect_environment
            from cnnbench.engine.runner import Runner

            xla_cache = (self.cache_dir / "xla").absolute()
            jax.config.update("jax_compilation_cache_dir", str(xla_cache))
            jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)
            self.environment = collect_environment(self.suite.digest)
            self._runner = Runner(self.suite, self.cache_dir, self.log)
        return self._runner

    def run(self, scenario: Scenario, timer: Timer) -> ScenarioRecord:
        """Run one scenario, record it and rewrite the report, whatever the scenario's outcome."""
        outcome: Outcome = self.runner.run(scenario, timer)
        target = self.suite.quadrants[scenario.quadrant].name
        record = ScenarioRecord.from_outcome(scenario, target, outcome)
        if self.baseline is not None:
            record = self._judge(record, self.baseline)
        self.records.append(record)
        self.targets.update((t.quadrant, t) for t in self.runner.target_info())
        if self.writes_reports:
            self.write()
        return record

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
        """This session's results as JSON-serialisable data, for a pytest-xdist worker to hand over."""
        return {"records": [r.to_json() for r in self.records], "targets": [t.to_json() for t in self.targets.values()],
                "environment": self.environment}  # fmt: skip

    def merge(self, exported: Mapping[str, Any]) -> None:
        """Add a worker's ``export()``; records are kept in the suite's scenario order."""
        order = {s.id: i for i, s in enumerate(self.suite.scenarios())}
        theirs = [ScenarioRecord.from_json(r) for r in exported["records"]]
        self.records = sorted([*self.records, *theirs], key=lambda r: order.get(r.id, len(order)))
        self.targets.update((t.quadrant, t) for t in map(TargetRecord.from_json, exported["targets"]))
        self.environment = self.environment or exported["environment"]

    def write(self, finished: bool = False) -> Path | None:
        """Write the report of the records so far (atomically); returns its directory."""
        if not self.records:
            return None
        self.report = build_report(
            run_id=self.run_id,
            started=self.started,
            finished=_now() if finished else None,
            environment=self.environment or {},
            targets=[self.targets[q] for q in sorted(self.targets)],
            scenarios=self.records,
            suite={"name": self.suite.name, "path": self.suite.path, "digest": self.suite.digest},
            gate=self._gate_summary(),
        )
        self.run_dir = write_report(self.report, self.report_root, plots=finished)
        return self.run_dir

    def _gate_summary(self) -> gate.GateSummary | None:
        if self.baseline is None:
            return None
        selected = set(self.selected_ids)
        groups = [(GroupKey.of(s).id, s.id in selected) for s in self.suite.scenarios()]
        return gate.summarize(
            self.baseline,
            self.records,
            self.environment or {},
            self.tolerances,
            suite_groups=[g for g, _ in groups],
            selected_groups=[g for g, sel in groups if sel],
        )

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

    def save_baseline(self, path: Path) -> None:
        """Store the finished report at ``path`` for later runs' ``--cnnbench-baseline``."""
        if self.report is None:
            raise ValueError("no scenario has run, so there is no report to save as a baseline")
        atomic_write(path, report_json(self.report))


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
