"""What a transfer suite's pytest item runs: the function each scenario's item calls (``cnnbench.items``).

It trains and measures its scenario, times the train step through pytest-benchmark, records the scenario's status
and test accuracy as the item's properties (JUnit XML shows them; the progress line reads them) and fails when the
scenario diverged or crashed, or when the quality gate finds its group regressed against the baseline.
"""

from __future__ import annotations

from typing import Any

import pytest

from cnnbench.config.scenario import Scenario
from cnnbench.engine.timing import BenchmarkTimer
from cnnbench.session import Session


def test_scenario(cnnbench_scenario: Scenario, cnnbench_session: Session, benchmark: Any, request: Any) -> None:
    record = cnnbench_session.run(cnnbench_scenario, BenchmarkTimer(benchmark))
    benchmark.extra_info.update({"cnnbench_id": record.id, "status": record.status, **record.metrics.to_json()})
    request.node.user_properties.append(("cnnbench_status", record.status))
    if not cnnbench_session.writes_reports:  # a pytest-xdist worker: the controller reports the record now
        request.node.user_properties.append(cnnbench_session.export_record(record))
    if record.metrics.test_accuracy is not None:
        request.node.user_properties.append(("test_accuracy", record.metrics.test_accuracy))
    if record.status in ("diverged", "error"):
        benchmark.skipped = True  # nothing steady to time; spares pytest-benchmark's "fixture not used" warning
    if record.status == "regressed":
        pytest.fail(record.error or f"{record.id} regressed", pytrace=False)
    if record.status == "diverged":
        pytest.fail(f"{record.id} diverged: {record.error}", pytrace=False)
    if record.status == "error":
        pytest.fail(f"{record.id} error: {record.error}\n{record.traceback or ''}", pytrace=False)
