"""Steady-state timing of compiled programs with pytest-benchmark's statistics.

Inside pytest the ``benchmark`` fixture times the train step (so ``--benchmark-json`` and ``compare`` see it);
everything else — inference, and runs outside pytest — is timed here with the same ``Stats`` class. Callers
pass functions that block until their result is ready, and have compiled them beforehand. A round lasts at
least ``MIN_ROUND_S``: a step shorter than that is called several times per round, and the figures are per call.

A step is timed for a number of rounds fixed before the first one (``ROUNDS``, or a hardware suite's ``rounds``),
not until its figures settle: so that runs compare, and so that every process of a job calls a program that spans
them as often (process 0 decides the calls and the rounds). pytest-benchmark's timing options, where given (set
apart from their defaults, on the command line, in the ini or by a ``benchmark`` mark), time the step it records as
pytest-benchmark means them; at their defaults cnnbench's settings hold:

- ``--benchmark-min-rounds N``: at least N rounds;
- ``--benchmark-max-time S``: more rounds, until they last about S seconds in all (judged from the warm-up call);
- ``--benchmark-min-time S``: a round lasts at least S seconds; ``--benchmark-calibration-precision P``: at least P
  times the timer's resolution;
- ``--benchmark-warmup=on`` (and ``--benchmark-warmup-iterations N``): untimed rounds first, up to N calls in all
  and no more rounds than are timed (a bare ``--benchmark-warmup`` leaves it off, in pytest-benchmark too);
- ``--benchmark-timer``, ``--benchmark-disable-gc``: pytest-benchmark applies them to the rounds it times;
- ``--benchmark-precision`` (rounds until the mean is that precise) is refused with a :class:`TimingOptionWarning`:
  the number of rounds would depend on the noise of each run and each process.

The options never lower the fixed rounds or the round's ``min_round_s``. With pytest-benchmark disabled
(``--benchmark-disable``, xdist) ``measure`` times the same rounds; inference keeps the fixed settings.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from pytest_benchmark.stats import Stats

from cnnbench.engine.measurement import Timing

ROUNDS = 5
MIN_ROUND_S = 0.02  # a round of one sub-millisecond call measures the scheduler of a shared CPU, not the program
# pytest-benchmark's defaults (its plugin's options): an option at its default was not given
_DEFAULT_MIN_ROUNDS, _DEFAULT_MAX_TIME_S, _DEFAULT_MIN_TIME_S, _DEFAULT_CALIBRATION_PRECISION = 5, 1.0, 5e-6, 10


class TimingOptionWarning(UserWarning):
    """A pytest-benchmark option that cnnbench's timing does not apply."""


def schedule(
    fn: Callable[[], Any], rounds: int = ROUNDS, min_round_s: float = MIN_ROUND_S, max_time_s: float = 0.0
) -> tuple[int, int]:
    """How many calls make a timed round last at least ``min_round_s``, and how many rounds (``rounds``, or more to
    last ``max_time_s`` in all), judged from one warm-up call: process 0's judgement in a multi-process job, whose
    processes must all call a program that spans them as often."""
    t0 = time.perf_counter()
    fn()
    call_s = max(time.perf_counter() - t0, 1e-9)
    calls = max(1, math.ceil(min_round_s / call_s))
    rounds = max(rounds, math.ceil(max_time_s / (calls * call_s)))
    from cnnbench.engine import hosts  # JAX: here, so importing this module (the roofline's timing) stays light

    calls, rounds = hosts.from_leader(np.array([calls, rounds], np.int32))
    return int(calls), int(rounds)


def calls_per_round(fn: Callable[[], Any], min_round_s: float = MIN_ROUND_S) -> int:
    """How many calls make a timed round last at least ``min_round_s`` (``schedule``'s, after its warm-up call)."""
    return schedule(fn, 1, min_round_s)[0]


def warmup_rounds(warmup_calls: int, calls: int, rounds: int) -> int:
    """pytest-benchmark's untimed rounds before the timed ones: up to ``warmup_calls`` calls, at least one round when
    asked, never more than are timed."""
    return min(rounds, max(1, warmup_calls // calls)) if warmup_calls else 0


def measure(
    fn: Callable[[], Any],
    rounds: int = ROUNDS,
    min_round_s: float = MIN_ROUND_S,
    max_time_s: float = 0.0,
    warmup_calls: int = 0,
) -> Stats:
    """Time ``fn`` for the rounds ``schedule`` decides (after its warm-up call and any ``warmup_rounds``); the
    stats are per call."""
    calls, rounds = schedule(fn, rounds, min_round_s, max_time_s)
    for _ in range(warmup_rounds(warmup_calls, calls, rounds) * calls):
        fn()
    stats = Stats()
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        stats.update((time.perf_counter() - t0) / calls)
    return stats


def summarize(stats: Stats, images_per_call: int) -> Timing:
    """The figures a report keeps from a timing: median/mean/stddev seconds, rounds and images/s at the median."""
    return Timing(
        median_s=stats.median,
        mean_s=stats.mean,
        stddev_s=stats.stddev,
        rounds=stats.rounds,
        images_per_s=images_per_call / stats.median if stats.median > 0 else None,
    )


class Timer:
    """Times steady-state calls: ``timed`` is the timing a pytest item reports (the train step of a scenario, the
    step of a bench point), ``inference`` a scenario's second one; the plain version uses ``measure`` for both."""

    def __init__(self, rounds: int = ROUNDS, min_round_s: float = MIN_ROUND_S) -> None:
        self.rounds, self.min_round_s = rounds, min_round_s

    def timed(self, fn: Callable[[], Any]) -> Stats:
        return measure(fn, self.rounds, self.min_round_s)

    def train_step(self, fn: Callable[[], Any]) -> Stats:
        return self.timed(fn)

    def inference(self, fn: Callable[[], Any]) -> Stats:
        return measure(fn, self.rounds, self.min_round_s)


@dataclass(frozen=True)
class StepRounds:
    """How ``BenchmarkTimer`` times its step: the fixed settings, raised by pytest-benchmark's given options."""

    rounds: int
    min_round_s: float
    max_time_s: float = 0.0
    warmup_calls: int = 0

    @classmethod
    def of(cls, benchmark: Any, rounds: int, min_round_s: float) -> StepRounds:
        """The settings ``rounds`` and ``min_round_s`` under the options the ``benchmark`` fixture carries (its
        attributes, which pytest-benchmark fills from the command line, the ini and a ``benchmark`` mark); warns
        about the one it refuses."""
        if getattr(benchmark, "_precision", None) is not None:  # an option of pytest-benchmarks after 5.1
            warnings.warn(
                "cnnbench ignores --benchmark-precision: it times a compiled step for a number of rounds fixed "
                "before the first, the same in every run and on every process of a job, so that runs compare; "
                "ask for more rounds with --benchmark-min-rounds or --benchmark-max-time",
                TimingOptionWarning,
                stacklevel=3,
            )
        if benchmark._min_rounds != _DEFAULT_MIN_ROUNDS:
            rounds = max(rounds, benchmark._min_rounds)
        if benchmark._min_time != _DEFAULT_MIN_TIME_S:
            min_round_s = max(min_round_s, benchmark._min_time)
        if benchmark._calibration_precision != _DEFAULT_CALIBRATION_PRECISION:
            resolution = benchmark._get_precision(benchmark._timer)  # measured once per timer, cached
            min_round_s = max(min_round_s, resolution * benchmark._calibration_precision)
        max_time_s = benchmark._max_time if benchmark._max_time != _DEFAULT_MAX_TIME_S else 0.0
        return cls(rounds, min_round_s, max_time_s, int(benchmark._warmup or 0))  # warm-up calls, or False or None


class BenchmarkTimer(Timer):
    """Routes ``timed`` through the ``benchmark`` fixture so pytest-benchmark records and compares it, for the rounds
    its options ask (``StepRounds``)."""

    def __init__(self, benchmark: Any, rounds: int = ROUNDS, min_round_s: float = MIN_ROUND_S) -> None:
        super().__init__(rounds, min_round_s)
        self.benchmark = benchmark
        self.step = StepRounds.of(benchmark, rounds, min_round_s)

    def timed(self, fn: Callable[[], Any]) -> Stats:
        step = self.step
        if not self.benchmark.enabled:  # --benchmark-disable or xdist: pedantic calls its target once and returns
            args = (fn, step.rounds, step.min_round_s, step.max_time_s, step.warmup_calls)  # its result
            return self.benchmark.pedantic(measure, args=args)
        calls, rounds = schedule(fn, step.rounds, step.min_round_s, step.max_time_s)
        warmup = warmup_rounds(step.warmup_calls, calls, rounds)
        self.benchmark.pedantic(fn, rounds=rounds, iterations=calls, warmup_rounds=warmup)
        return self.benchmark.stats.stats
