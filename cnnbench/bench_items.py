"""What a hardware suite's pytest item runs: the function each bench point's item calls (``cnnbench.items``).

Each item times its bench point at the arch's canonical config through pytest-benchmark's ``benchmark`` fixture,
skips a batch that does not fit in memory (the sweep goes on; the report says ``out of memory``) and fails when the
point could not be run at all.
"""

from __future__ import annotations

from typing import Any

import pytest

from cnnbench.config.hardware import BenchPoint
from cnnbench.engine.timing import BenchmarkTimer
from cnnbench.session import HardwareSession


def test_bench(
    cnnbench_bench_point: BenchPoint, cnnbench_session: HardwareSession, benchmark: Any, request: Any
) -> None:
    settings = cnnbench_session.suite.bench
    timer = BenchmarkTimer(benchmark, settings.rounds, settings.min_round_s)
    record = cnnbench_session.run(cnnbench_bench_point, timer)
    benchmark.extra_info.update(record.to_json())
    request.node.user_properties.append(("cnnbench_status", record.status))
    if not cnnbench_session.writes_reports:  # a pytest-xdist worker: the controller reports the record now
        request.node.user_properties.append(cnnbench_session.export_record(record))
    if record.images_per_s is not None:
        request.node.user_properties.append(("images_per_s", record.images_per_s))
    if record.status == "out of memory":
        benchmark.skipped = True  # nothing to time; spares pytest-benchmark's "fixture not used" warning
        pytest.skip(f"out of memory at batch {record.batch}: {record.error}")
    if record.status == "error":
        benchmark.skipped = True
        pytest.fail(f"{record.id} error: {record.error}", pytrace=False)
