"""The progress of a long run, one line a finished item: how many of the selected are done, the time so far and
an estimate of the time left.

The estimate weighs each item by its estimated cost (``cnnbench.engine.cost.run_seconds``: measured train steps per
arch, a base's pretraining on the first scenario that needs it) and scales what is left by the run's own pace so
far — the seconds it took over the estimate of what it did — so the same table serves a fast GPU and a slow laptop,
and pytest-xdist's workers sharing the work.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence


class Progress:
    """Counts finished items of a selection and says what is left. Without ``estimates`` every item weighs the
    same (a hardware suite's bench points)."""

    def __init__(
        self, ids: Sequence[str], estimates: Mapping[str, float] | None = None, started: float | None = None
    ) -> None:
        """``started``: when the run began, as ``time.perf_counter()`` (default: now)."""
        self.ids = list(ids)
        self.weights = {i: max((estimates or {}).get(i, 0.0), 1e-3) if estimates else 1.0 for i in self.ids}
        self.finished: set[str] = set()
        self.started = time.perf_counter() if started is None else started

    def done(self, item: str, outcome: str) -> str:
        """Record ``item`` as finished with ``outcome`` (its status, and any figure worth a glance) and return the
        progress line."""
        self.finished.add(item)
        elapsed = time.perf_counter() - self.started
        line = f"[{len(self.finished)}/{len(self.ids)}] {item}: {outcome} · {_clock(elapsed)} so far"
        left = self.seconds_left(elapsed)
        return line if left is None else f"{line}, about {_clock(left)} left"

    def seconds_left(self, elapsed: float) -> float | None:
        """The estimated seconds the unfinished items take at the pace of the finished ones; None before the first
        or after the last."""
        done = sum(self.weights[i] for i in self.finished if i in self.weights)
        todo = sum(w for i, w in self.weights.items() if i not in self.finished)
        if not done or not todo:
            return None
        return todo * elapsed / done


def outcome(status: str, test_accuracy: float | None = None, images_per_s: float | None = None) -> str:
    """What a progress line says of a finished item: its status, and its test accuracy or throughput when known."""
    text = status
    if test_accuracy is not None:
        text += f", test accuracy {test_accuracy:.1%}"
    if images_per_s is not None:
        text += f", {images_per_s:,.0f} img/s"
    return text


def _clock(seconds: float) -> str:
    """``42s``, ``3m05s`` or ``1h02m``."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
