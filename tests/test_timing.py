"""Timing through pytest-benchmark: one warm-up call, then ``ROUNDS`` timed rounds, whether pytest-benchmark times
them (its statistics) or is disabled (``--benchmark-disable``, xdist: ``measure`` times them, no extra calls)."""

from __future__ import annotations

import pytest

STEP_TEST = """
import time

from cnnbench.engine.timing import ROUNDS, BenchmarkTimer

calls = []


def step():  # longer than a round's minimum, so every round is one call
    calls.append(time.perf_counter())
    time.sleep(0.025)


def test_step(benchmark):
    stats = BenchmarkTimer(benchmark).train_step(step)
    assert stats.rounds == ROUNDS and stats.median >= 0.025
    assert len(calls) == 1 + ROUNDS, len(calls)
"""


@pytest.mark.parametrize("options", [(), ("--benchmark-disable",)], ids=["timed-by-pytest-benchmark", "disabled"])
def test_train_step_is_one_warm_up_and_the_timed_rounds(pytester: pytest.Pytester, options: tuple[str, ...]) -> None:
    pytester.makepyfile(test_step=STEP_TEST)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", *options)
    result.assert_outcomes(passed=1)
