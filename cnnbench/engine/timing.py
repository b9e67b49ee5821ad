"""Steady-state timing of compiled programs with pytest-benchmark's statistics.

Inside pytest the ``benchmark`` fixture times the train step (so ``--benchmark-json`` and ``compare`` see it);
everything else — inference, and runs outside pytest — is timed here with the same ``Stats`` class. Callers
pass functions that block until their result is ready, and have compiled them beforehand. A round lasts at
least ``MIN_ROUND_S``: a step shorter than that is called several times per round, and the figures are per call.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from pytest_benchmark.stats import Stats

from cnnbench.engine.measurement import Timing

ROUNDS = 5
MIN_ROUND_S = 0.02  # a round of one sub-millisecond call measures the scheduler of a shared CPU, not the program


def calls_per_round(fn: Callable[[], Any], min_round_s: float = MIN_ROUND_S) -> int:
    """How many calls make a timed round last at least ``min_round_s``, judged from one warm-up call (process 0's
    judgement in a multi-process job, whose processes must all call a program that spans them as often)."""
    t0 = time.perf_counter()
    fn()
    calls = max(1, math.ceil(min_round_s / max(time.perf_counter() - t0, 1e-9)))
    from cnnbench.engine import hosts  # JAX: here, so importing this module (the roofline's timing) stays light

    return int(hosts.from_leader(np.int32(calls)))


def measure(fn: Callable[[], Any], rounds: int = ROUNDS, min_round_s: float = MIN_ROUND_S) -> Stats:
    """Time ``fn`` for ``rounds`` rounds of ``calls_per_round`` calls each (after its warm-up call); the stats
    are per call."""
    iterations = calls_per_round(fn, min_round_s)
    stats = Stats()
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(iterations):
            fn()
        stats.update((time.perf_counter() - t0) / iterations)
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


class BenchmarkTimer(Timer):
    """Routes ``timed`` through the ``benchmark`` fixture so pytest-benchmark records and compares it."""

    def __init__(self, benchmark: Any, rounds: int = ROUNDS, min_round_s: float = MIN_ROUND_S) -> None:
        super().__init__(rounds, min_round_s)
        self.benchmark = benchmark

    def timed(self, fn: Callable[[], Any]) -> Stats:
        if not self.benchmark.enabled:  # --benchmark-disable or xdist: pedantic calls its target once and returns
            return self.benchmark.pedantic(measure, args=(fn, self.rounds, self.min_round_s))  # its result
        self.benchmark.pedantic(fn, rounds=self.rounds, iterations=calls_per_round(fn, self.min_round_s))
        return self.benchmark.stats.stats
