"""Splitting a run's scenarios into ``N`` parts of about equal cost, for ``--cnnbench-shard K/N`` (SPEC §10).

The parts are balanced by estimated seconds, not by count: a ``densenet121`` scenario costs six ``lenet5``
ones. What is split are *units* that must stay whole — a program (arch × strategy × head: every quadrant and
seed of it, so each gate group and each throughput verdict is judged inside one part) — and a unit may need
*shared* work that a part pays once however many of its units use it: pretraining a base, a base's features of
the targets. Units sharing work stay together unless that makes a part heavier than its fair share, so a base is
pretrained once where that saves work (``partition``). The split depends only on the units and their estimates,
never on what is cached, so every part of a CI matrix computes the same split.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field


class ShardError(ValueError):
    """A ``K/N`` that names no part."""


@dataclass(frozen=True)
class Shard:
    """Part ``index`` (1-based) of ``count``."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``"2/4"`` as the second of four parts; raises ShardError naming the value and the form expected."""
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
        if match is None or not 1 <= int(match.group(1)) <= int(match.group(2)):
            raise ShardError(f"shard {text!r}: expected K/N with 1 <= K <= N, e.g. 2/4 for the second of four parts")
        return cls(int(match.group(1)), int(match.group(2)))

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


@dataclass(frozen=True)
class Unit:
    """Scenarios that go to one part together: their own estimated seconds and the shared work they need."""

    name: str
    scenarios: tuple[str, ...]
    seconds: float
    shared: frozenset[str] = frozenset()


@dataclass
class Part:
    """The units one part runs and its estimated seconds, shared work included."""

    units: list[Unit] = field(default_factory=list)
    shared: set[str] = field(default_factory=set)
    seconds: float = 0.0

    @property
    def scenarios(self) -> list[str]:
        return [s for unit in self.units for s in unit.scenarios]

    def cost_of_all(self, units: Sequence[Unit], shared_seconds: Mapping[str, float]) -> float:
        """What adding all of ``units`` would add to this part, each shared work counted once."""
        return sum(u.seconds for u in units) + sum(
            shared_seconds[key] for key in set().union(*(u.shared for u in units)) - self.shared
        )

    def add(self, unit: Unit, shared_seconds: Mapping[str, float]) -> None:
        self.seconds += self.cost_of_all([unit], shared_seconds)
        self.units.append(unit)
        self.shared |= unit.shared


def partition(units: Sequence[Unit], shared_seconds: Mapping[str, float], count: int) -> list[Part]:
    """``units`` split into ``count`` parts of about equal estimated seconds; the same units always give the same
    parts, and a part may be empty when there are fewer units than parts.

    Units that need the same shared work form a cluster, kept in one piece unless it costs more than a part's fair
    share (the total over ``count``): then it is cut into as many pieces as that takes, each paying the shared work
    again. The pieces, and the units that share nothing, go longest first into the part they add the least to."""
    fair = (sum(u.seconds for u in units) + sum(shared_seconds.values())) / count
    clusters: dict[frozenset[str], list[Unit]] = {}
    for unit in units:
        clusters.setdefault(unit.shared, []).append(unit)
    pieces: list[list[Unit]] = []
    for shared, members in clusters.items():
        if not shared:
            pieces += [[unit] for unit in members]
            continue
        cost = sum(u.seconds for u in members) + sum(shared_seconds[k] for k in shared)
        pieces += _spread(members, min(len(members), math.ceil(cost / fair - 1e-9)) if fair else 1)
    parts = [Part() for _ in range(count)]
    for piece in sorted(pieces, key=lambda p: (-Part().cost_of_all(p, shared_seconds), p[0].name)):
        best = min(range(count), key=lambda i: (parts[i].seconds + parts[i].cost_of_all(piece, shared_seconds), i))
        for unit in piece:
            parts[best].add(unit, shared_seconds)
    return parts


def _spread(units: Sequence[Unit], pieces: int) -> list[list[Unit]]:
    """``units`` in ``pieces`` piles of about equal own seconds (longest first onto the lightest pile)."""
    piles: list[list[Unit]] = [[] for _ in range(pieces)]
    for unit in sorted(units, key=lambda u: (-u.seconds, u.name)):
        min(piles, key=lambda pile: sum(u.seconds for u in pile)).append(unit)
    return piles


def balance(parts: Iterable[Part]) -> float:
    """The slowest part's estimated seconds over the mean part's: 1.0 is a perfect split."""
    seconds = [p.seconds for p in parts]
    mean = sum(seconds) / len(seconds)
    return max(seconds) / mean if mean else 1.0


def selection_digest(scenario_ids: Iterable[str]) -> str:
    """A short digest of the scenarios a run selected before sharding: parts of one split agree on it, so a merge
    can tell parts of different selections (other filters, another ``-k``) apart."""
    return hashlib.sha256("\n".join(sorted(scenario_ids)).encode()).hexdigest()[:12]
