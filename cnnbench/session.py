"""The state of one cnnbench run: the suite, the filters, the scenario records and the report they make.

The pytest plugin owns one ``Session``; nothing here depends on pytest, so the same run can be driven from a
script. The runner (datasets, models, training) is built when the first scenario runs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from cnnbench.results import gate
from cnnbench.report.run import atomic_write, build_report, write_report
from cnnbench.config.scenario import Scenario
from cnnbench.config.suite import Suite, SuiteError

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
        available = {"arch": suite.archs, "strategy": suite.strategies, "quadrant": tuple(suite.quadrants),
                     "head": suite.heads}
        for name in COORDINATES:
            for value in getattr(self, name):
                if value not in available[name]:
                    raise SuiteError(
                        f"--cnnbench-{name} {value!r} is not in suite {suite.name!r}; "
                        f"its {name}s: {', '.join(available[name])}"
                    )

    def select(self, scenarios: list[Scenario]) -> list[Scenario]:
        return [s for s in scenarios if all(not getattr(self, c) or getattr(s, c) in getattr(self, c)
                                            for c in COORDINATES)]


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
    records: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.started = _now()
        self.run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{self.suite.name}"
        self.report: dict | None = None
        self.run_dir: Path | None = None
        self.targets: dict[str, dict] = {}  # quadrant -> what the report says about its target
        self.environment: dict | None = None
        self.selected_ids: list[str] = [s.id for s in self.scenarios()]  # narrowed by the plugin after collection
        self._keys = {s.id: {"group": s.group, "program": s.program} for s in self.suite.scenarios()}
        self.tolerances = gate.Tolerances(**self.suite.gate)
        self._runner = None

    def scenarios(self) -> list[Scenario]:
        return self.filters.select(self.suite.scenarios())

    @property
    def runner(self):  # -> cnnbench.engine.runner.Runner, imported lazily: it loads JAX
        if self._runner is None:
            import jax

            from cnnbench.engine.environment import collect_environment
            from cnnbench.engine.runner import Runner

            xla_cache = (self.cache_dir / "xla").absolute()
            jax.config.update("jax_compilation_cache_dir", str(xla_cache))
            jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)
            self.environment = collect_environment(self.suite.digest)
            self._runner = Runner(self.suite, self.cache_dir, self.log)
        return self._runner

    def run(self, scenario: Scenario, timer) -> dict:
        """Run one scenario, record it and rewrite the report, whatever the scenario's outcome."""
        record = self.runner.run(scenario, timer)
        self.records.append(record)
        if self.baseline is not None:
            self._judge(record)
        self.targets.update((t["quadrant"], t) for t in self.runner.target_info())
        if self.writes_reports:
            self.write()
        return record

    def _judge(self, record: dict) -> None:
        """Judge ``record``'s group once its last selected seed has run here, and its program's throughput (on
        comparable hardware) once its last selected scenario has; a regression fails this record."""
        record["gate"] = record["gate_throughput"] = None
        keys = self._keys[record["id"]]
        group = self._complete(record, "group")
        if group is not None:
            stored = self.baseline.groups.get(keys["group"])
            record["gate"] = gate.judge(keys["group"], stored, group, self.tolerances)
        program = self._complete(record, "program")
        if program is not None and gate.comparable(self.baseline, self.environment or {})[0]:
            stored = self.baseline.programs.get(keys["program"])
            record["gate_throughput"] = gate.judge_throughput(keys["program"], stored, program, self.tolerances)
        verdicts = [v for v in (record["gate"], record["gate_throughput"]) if v and v["verdict"] == "regressed"]
        if verdicts and record["status"] == "passed":
            record["status"], record["error"] = "regressed", "; ".join(v["message"] for v in verdicts)

    def _complete(self, record: dict, unit: str) -> list[dict] | None:
        """This session's records in ``record``'s group or program (``unit``), once every selected scenario of it
        has run here; ``None`` before."""
        name = self._keys[record["id"]][unit]
        mine = [r for r in self.records if self._keys.get(r["id"], {}).get(unit) == name]
        expected = {i for i in self.selected_ids if self._keys[i][unit] == name}
        return mine if expected <= {r["id"] for r in mine} else None

    def export(self) -> dict:
        """This session's results as JSON-serialisable data, for a pytest-xdist worker to hand over."""
        return {"records": self.records, "targets": self.targets, "environment": self.environment}

    def merge(self, exported: dict) -> None:
        """Add a worker's ``export()``; records are kept in the suite's scenario order."""
        order = {s.id: i for i, s in enumerate(self.suite.scenarios())}
        self.records = sorted([*self.records, *exported["records"]], key=lambda r: order.get(r["id"], len(order)))
        self.targets.update(exported["targets"])
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

    def _gate_summary(self) -> dict | None:
        if self.baseline is None:
            return None
        selected = set(self.selected_ids)
        groups = [(s.group, s.id in selected) for s in self.suite.scenarios()]
        return gate.summarize(self.baseline, self.records, self.environment or {}, self.tolerances,
                              suite_groups=[g for g, _ in groups], selected_groups=[g for g, sel in groups if sel])

    def unflagged_regressions(self) -> list[str]:
        """Groups and programs the report's gate finds regressed although none of their pytest items failed for
        it (their scenarios ran on different xdist workers, none of which saw them all)."""
        if not self.report or "gate" not in self.report:
            return []
        verdicts = [v for r in self.records for v in (r.get("gate"), r.get("gate_throughput")) if v]
        flagged = {v.get("group") or v.get("program") for v in verdicts if v["verdict"] == "regressed"}
        section = self.report["gate"]
        return [name for name in (*section["regressed"], *section["throughput_regressed"]) if name not in flagged]

    def save_baseline(self, path: Path) -> None:
        """Store the finished report at ``path`` for later runs' ``--cnnbench-baseline``."""
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, json.dumps(self.report, indent=1, allow_nan=False) + "\n")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
