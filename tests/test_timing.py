"""Timing through pytest-benchmark: one warm-up call, then ``ROUNDS`` timed rounds, whether pytest-benchmark times
them (its statistics) or is disabled (``--benchmark-disable``, xdist: ``measure`` times them, no extra calls); and
pytest-benchmark's timing options, where given, change the rounds it records as they mean to."""

from __future__ import annotations

import inspect
import json

import numpy as np
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from cnnbench.engine import hosts, timing
from cnnbench.engine.timing import ROUNDS

STEP_S = 0.025  # longer than a round's minimum (MIN_ROUND_S), so every round is one call unless an option says not

STEP_TEST = """
import json, time

import pytest

from cnnbench.engine.timing import BenchmarkTimer

calls = []


def step():
    calls.append(time.perf_counter())
    time.sleep({step_s})

{mark}
def test_step(benchmark):
    {before}
    stats = BenchmarkTimer(benchmark, {args}).train_step(step)
    recorded = benchmark.stats  # pytest-benchmark's record; None when it is disabled
    timed = {{"rounds": stats.rounds, "median": stats.median, "calls": len(calls)}}
    if recorded:
        timed.update(recorded_rounds=recorded.stats.rounds, iterations=recorded.iterations)
    with open("timed.json", "w") as out:
        json.dump(timed, out)
"""

ENABLED, DISABLED = (), ("--benchmark-disable",)
MODES = pytest.mark.parametrize("mode", [ENABLED, DISABLED], ids=["timed-by-pytest-benchmark", "disabled"])


def run(pytester: pytest.Pytester, *options: str, args: str = "", mark: str = "", before: str = "") -> pytest.RunResult:
    """Run the tiny test under ``options``, its ``BenchmarkTimer`` made with ``args`` (after ``before``)."""
    pytester.makepyfile(test_step=STEP_TEST.format(step_s=STEP_S, args=args, mark=mark, before=before or "pass"))
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", *options)
    result.assert_outcomes(passed=1)
    return result


def timed(pytester: pytest.Pytester, *options: str, **template: str) -> dict:
    """What the tiny test's ``BenchmarkTimer`` timed (``run``): its rounds and median, the step's calls (the warm-up
    one included) and, where pytest-benchmark ran, the rounds and iterations it recorded."""
    run(pytester, *options, **template)
    out = json.loads((pytester.path / "timed.json").read_text())
    assert out["median"] >= STEP_S  # per call, whatever the calls per round
    if "recorded_rounds" in out:
        assert out["recorded_rounds"] == out["rounds"]  # the stats returned are pytest-benchmark's
    return out


@MODES
def test_train_step_is_one_warm_up_and_the_timed_rounds(pytester: pytest.Pytester, mode: tuple[str, ...]) -> None:
    out = timed(pytester, *mode)
    assert (out["rounds"], out["calls"]) == (ROUNDS, 1 + ROUNDS)


def test_a_hardware_suites_rounds_hold_at_pytest_benchmarks_defaults(pytester: pytest.Pytester) -> None:
    """pytest-benchmark's default minimum of 5 rounds is no option given: a suite's 2 rounds stay 2."""
    out = timed(pytester, args="2, 0.0")
    assert (out["rounds"], out["calls"], out["iterations"]) == (2, 3, 1)


@MODES
@pytest.mark.parametrize(("min_rounds", "rounds"), [(8, 8), (3, ROUNDS)], ids=["raises", "never-lowers"])
def test_min_rounds_raises_the_rounds(pytester: pytest.Pytester, mode: tuple[str, ...], min_rounds: int, rounds: int):
    out = timed(pytester, *mode, "--benchmark-min-rounds", str(min_rounds))
    assert (out["rounds"], out["calls"]) == (rounds, 1 + rounds)


def test_a_benchmark_mark_is_an_option_too(pytester: pytest.Pytester) -> None:
    out = timed(pytester, mark="@pytest.mark.benchmark(min_rounds=7)")
    assert (out["rounds"], out["calls"]) == (7, 8)


@MODES
def test_max_time_adds_rounds_to_fill_it(pytester: pytest.Pytester, mode: tuple[str, ...]) -> None:
    """0.5 s of 25 ms rounds is 20 of them where a call takes 25 ms (fewer where the warm-up call took longer)."""
    out = timed(pytester, *mode, "--benchmark-max-time", "0.5")
    assert ROUNDS < out["rounds"] <= 0.5 / STEP_S and out["calls"] == 1 + out["rounds"]


@MODES
@pytest.mark.parametrize(
    ("options", "warm"),
    [
        (("--benchmark-warmup=on",), ROUNDS),  # up to 100000 calls: as many rounds as are timed
        (("--benchmark-warmup=on", "--benchmark-warmup-iterations", "2"), 2),
        (("--benchmark-warmup-iterations", "2"), 0),  # pytest-benchmark's warm-up is off unless asked for
    ],
    ids=["on", "on-2-calls", "iterations-alone"],
)
def test_warmup_runs_untimed_rounds_first(
    pytester: pytest.Pytester, mode: tuple[str, ...], options: tuple[str, ...], warm: int
) -> None:
    out = timed(pytester, *mode, *options)
    assert (out["rounds"], out["calls"]) == (ROUNDS, 1 + warm + ROUNDS)


@pytest.mark.parametrize(
    ("options", "before"),
    [
        (("--benchmark-min-time", "0.1"), ""),
        # a timer resolution of 2 ms (set in pytest-benchmark's cache), 50 times: rounds of at least 0.1 s
        (("--benchmark-calibration-precision", "50"), "benchmark._precisions[benchmark._timer] = 0.002"),
    ],
    ids=["min-time", "calibration-precision"],
)
def test_a_longer_round_calls_the_step_more_often(
    pytester: pytest.Pytester, options: tuple[str, ...], before: str
) -> None:
    """Rounds of at least 0.1 s are 4 calls of 25 ms (fewer where the warm-up call took longer), and pytest-benchmark
    makes one more call for the result of a looped round."""
    out = timed(pytester, *options, before=before)
    iterations = out["iterations"]
    assert 2 <= iterations <= 0.1 / STEP_S and out["calls"] == 1 + ROUNDS * iterations + 1


@pytest.mark.skipif(
    "precision" not in inspect.signature(BenchmarkFixture).parameters, reason="this pytest-benchmark has no precision"
)
def test_precision_is_refused_with_a_warning(pytester: pytest.Pytester) -> None:
    """Rounds until the mean is 2 % precise would be another count each run: the fixed rounds are timed, and the
    warning says why."""
    result = run(pytester, "--benchmark-precision", "0.02")
    result.stdout.fnmatch_lines(["*TimingOptionWarning: cnnbench ignores --benchmark-precision: *"])
    out = json.loads((pytester.path / "timed.json").read_text())
    assert (out["rounds"], out["calls"]) == (ROUNDS, 1 + ROUNDS)


def test_every_process_times_process_0s_calls_and_rounds(monkeypatch: pytest.MonkeyPatch) -> None:
    """In a multi-process job every process calls the step as often as process 0 judged, whatever it judged itself."""
    monkeypatch.setattr(hosts, "from_leader", lambda tree: np.array([3, 7], np.int32))  # process 0's judgement
    calls: list[None] = []
    stats = timing.measure(lambda: calls.append(None), rounds=2, min_round_s=0.0, max_time_s=0.0)
    assert (stats.rounds, len(calls)) == (7, 1 + 3 * 7)
