"""Steady-state timing of compiled programs with pytest-benchmark's statistics.

Inside pytest the ``benchmark`` fixture times the train step (so ``--benchmark-json`` and ``compare`` see it);
everything else — inference, and runs outside pytest — is timed here with the same ``Stats`` class. Callers
pass functions that block until their result is ready, and have compiled them beforehand.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from pytest_benchmark.stats import Stats

ROUNDS = 5
WARMUP_ROUNDS = 1


def measure(fn: Callable[[], Any], rounds: int = ROUNDS, warmup_rounds: int = WARMUP_ROUNDS) -> Stats:
    """Time ``fn`` for ``rounds`` rounds after ``warmup_rounds`` untimed ones."""
    for _ in range(warmup_rounds):
        fn()
    stats = Stats()
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        stats.update(time.perf_counter() - t0)
    return stats


def summarize(stats: Stats, images_per_call: int) -> dict:
    """The figures a report keeps from a timing: median/mean/stddev seconds, rounds and images/s at the median."""
    return {
        "median_s": stats.median,
        "mean_s": stats.mean,
        "stddev_s": stats.stddev,
        "rounds": stats.rounds,
        "images_per_s": images_per_call / stats.median if stats.median > 0 else None,
    }


class Timer:
    """Times a scenario's train step and inference; the plain version uses ``measure`` for both."""

    def train_step(self, fn: Callable[[], Any]) -> Stats:
        return measure(fn)

    def inference(self, fn: Callable[[], Any]) -> Stats:
        return measure(fn)


class BenchmarkTimer(Timer):
    """Routes the train step through the ``benchmark`` fixture so pytest-benchmark records and compares it."""

    def __init__(self, benchmark: Any) -> None:
        self.benchmark = benchmark

    def train_step(self, fn: Callable[[], Any]) -> Stats:
        self.benchmark.pedantic(fn, rounds=ROUNDS, warmup_rounds=WARMUP_ROUNDS, iterations=1)
        if self.benchmark.stats is None:  # --benchmark-disable or xdist: pytest-benchmark ran it once untimed
            return measure(fn)
        return self.benchmark.stats.stats
