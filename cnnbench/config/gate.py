"""What the quality gate tolerates (SPEC §9): a suite's ``[gate]`` table as typed data."""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(frozen=True)
class Tolerances:
    """What a suite's ``[gate]`` table allows: accuracy points (as a fraction), a noise multiple, a share of
    images/s."""

    accuracy_drop: float = 0.02
    noise_sigmas: float = 2.0
    throughput_drop: float = 0.3

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))
