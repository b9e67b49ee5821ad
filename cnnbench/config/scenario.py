"""A scenario (SPEC §1): one training + evaluation run named by its coordinates, and the ids of the units its
results are aggregated and gated in."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cnnbench.config.precision import DEFAULT_PRECISION


def group_id(record: Mapping[str, Any]) -> str:
    """A scenario's id without its seed, from its record or ``coordinates``: the unit results are aggregated and
    accuracy is gated over (layer-transfer points keep ``-freezeK``)."""
    return _unit_id(record, ("arch", "strategy", "quadrant", "head"))


def program_id(record: Mapping[str, Any]) -> str:
    """A scenario's arch × strategy × head (layer-transfer points keep ``-freezeK``): the unit throughput is gated
    over, since every quadrant and seed of it times the same work."""
    return _unit_id(record, ("arch", "strategy", "head"))


def _unit_id(record: Mapping[str, Any], keys: tuple[str, ...]) -> str:
    base = "-".join(str(record[k]) for k in keys)
    freeze = record.get("layer_transfer")
    return base if freeze is None else f"{base}-freeze{freeze}"


@dataclass(frozen=True)
class Scenario:
    """One training + evaluation run: the five coordinates of SPEC §1."""

    arch: str
    strategy: str
    quadrant: str
    head: str
    seed: int
    multi_seed: bool = False
    freeze: int | None = None  # a layer-transfer point: s2 with exactly this many stages frozen
    precision: str = DEFAULT_PRECISION  # the suite's: fp32, or bf16 mixed precision (not part of the id: a run has one)

    @property
    def coordinates(self) -> dict[str, Any]:
        """Where the scenario sits in the matrix, under its report record's field names."""
        return {"arch": self.arch, "strategy": self.strategy, "quadrant": self.quadrant, "head": self.head,
                "seed": self.seed, "layer_transfer": self.freeze}  # fmt: skip

    @property
    def group(self) -> str:
        return group_id(self.coordinates)

    @property
    def program(self) -> str:
        return program_id(self.coordinates)

    @property
    def id(self) -> str:
        return f"{self.group}-seed{self.seed}" if self.multi_seed else self.group
