"""Where a run's time goes: wall-clock seconds per named phase (compiling, pretraining, training, …), kept by the
process's active :class:`Profile` and reported as ``report.json``'s ``profile`` section and the breakdown printed at
the end of ``pytest --cnnbench``.

A phase's seconds are its *own* time: a phase opened inside another is taken out of the outer one, so the phases
never count a second twice and what they leave of the process's wall time is ``other``. An ``inclusive`` phase
(pretraining) keeps the phases opened inside it as its own, except compiling and loading programs, which are always
theirs. It sits at the bottom of the layers, beside ``fileio``: the engine records into it, the session owns it, and
it imports nothing of cnnbench.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

# Every phase a run records, in the order the breakdown lists them, and what it covers.
PHASES: dict[str, str] = {
    "compile": "XLA compiling a program (tracing and lowering included)",
    "program cache load": "a compiled program loaded from the persistent compilation cache",
    "pretrain": "pretraining a base on the source domain, or restoring it from the cache",
    "similarity": "measuring a target's similarity with a base (random-init feature maps, NCM separability)",
    "features": "a frozen base's feature maps of a target, computed once for the strategies that train on them",
    "data": "building the targets, gathering and augmenting training batches",
    "models": "building bases and heads (a bench point: its canonical model), loading pretrained weights",
    "train": "training steps, and waiting for them",
    "evaluate": "validation during training, the test accuracy",
    "timing": "the timed rounds of the train step and of inference (pytest-benchmark)",
    "roofline": "a hardware run's matmul and conv roofline probe",
    "report": "writing report.json, report.md, results.csv and, at the end, report.html",
}
ALWAYS_OWN = ("compile", "program cache load")  # never folded into an inclusive phase


@dataclass
class _Open:
    name: str
    inclusive: bool
    inner_s: float = 0.0  # seconds of the phases opened inside this one


@dataclass
class Profile:
    """Seconds and calls per phase of one process since ``started``, plus what it has absorbed from other processes
    (pytest-xdist workers): their phases and their wall time."""

    clock: Callable[[], float] = time.perf_counter
    seconds: dict[str, float] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)
    workers: int = 0
    workers_wall_s: float = 0.0
    workers_phase_s: float = 0.0  # of ``seconds``, what came from the workers

    def __post_init__(self) -> None:
        self.started = self.clock()
        self._open: list[_Open] = []

    @contextmanager
    def phase(self, name: str, inclusive: bool = False) -> Iterator[None]:
        """Count the block's wall time, less the phases opened inside it, as ``name``'s."""
        _check(name)
        t0 = self.clock()
        frame = _Open(name, inclusive)
        self._open.append(frame)
        try:
            yield
        finally:
            self._open.pop()
            self.add(name, self.clock() - t0, inner_s=frame.inner_s)

    def add(self, name: str, seconds: float, inner_s: float = 0.0) -> None:
        """Count ``seconds`` (of which ``inner_s`` went to phases inside it) as ``name``'s, or as the enclosing
        inclusive phase's, and take them out of the enclosing phase."""
        _check(name)
        owner = name
        if name not in ALWAYS_OWN:
            owner = next((f.name for f in self._open if f.inclusive), name)
        self.seconds[owner] = self.seconds.get(owner, 0.0) + seconds - inner_s
        if owner == name:
            self.calls[name] = self.calls.get(name, 0) + 1
        if self._open:
            self._open[-1].inner_s += seconds

    def absorb(self, other: Mapping[str, Any]) -> None:
        """Add another process's ``to_json()`` (a pytest-xdist worker's): its phases and its wall time."""
        for row in other["phases"]:
            self.seconds[row["name"]] = self.seconds.get(row["name"], 0.0) + row["seconds"]
            self.calls[row["name"]] = self.calls.get(row["name"], 0) + row["calls"]
        self.workers += other["processes"]
        self.workers_wall_s += other["process_s"]
        self.workers_phase_s += sum(row["seconds"] for row in other["phases"])

    def to_json(self) -> dict[str, Any]:
        """The ``profile`` section: ``wall_s`` this process's elapsed time, ``processes`` and ``process_s`` the
        processes whose phases are summed and their time (a pytest-xdist controller counts its workers' wall time
        and, of its own, only its phases: the rest it spends waiting), ``phases`` in :data:`PHASES` order and
        ``other_s`` what the phases leave of ``process_s``."""
        wall = self.clock() - self.started
        phases = [
            {"name": name, "seconds": round(self.seconds[name], 3), "calls": self.calls.get(name, 0)}
            for name in PHASES
            if name in self.seconds
        ]
        counted = sum(self.seconds.values())
        process_s = self.workers_wall_s + counted - self.workers_phase_s if self.workers else wall
        return {
            "wall_s": round(wall, 3),
            "processes": self.workers + 1 if self.workers else 1,
            "process_s": round(process_s, 3),
            "other_s": round(max(process_s - counted, 0.0), 3),
            "phases": phases,
        }


def combined(profiles: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The ``profile`` section of several runs' reports joined into one (``cnnbench merge``): their processes,
    process time and phases summed, ``wall_s`` the longest run's (the parts' wall time when they ran at once)."""
    seconds: dict[str, float] = {}
    calls: dict[str, int] = {}
    for profile in profiles:
        for row in profile["phases"]:
            seconds[row["name"]] = seconds.get(row["name"], 0.0) + row["seconds"]
            calls[row["name"]] = calls.get(row["name"], 0) + row["calls"]
    return {
        "wall_s": max(p["wall_s"] for p in profiles),
        "processes": sum(p["processes"] for p in profiles),
        "process_s": round(sum(p["process_s"] for p in profiles), 3),
        "other_s": round(sum(p["other_s"] for p in profiles), 3),
        "phases": [{"name": n, "seconds": round(seconds[n], 3), "calls": calls[n]} for n in PHASES if n in seconds],
    }


def _check(name: str) -> None:
    if name not in PHASES:
        raise ValueError(f"unknown profile phase {name!r}; known: {', '.join(PHASES)}")


_active = Profile()


def activate(profile: Profile) -> None:
    """Make ``profile`` the one :func:`phase` and :func:`add` record into (a session's, from its start)."""
    global _active
    _active = profile


def active() -> Profile:
    return _active


def phase(name: str, inclusive: bool = False) -> Any:
    """``with phase("train"):`` counts the block into the active profile (:meth:`Profile.phase`)."""
    return _active.phase(name, inclusive)


def add(name: str, seconds: float) -> None:
    """Count ``seconds`` measured elsewhere as ``name``'s in the active profile (:meth:`Profile.add`)."""
    _active.add(name, seconds)
