"""What the quality gate tolerates (SPEC §9): a suite's ``[gate]`` table as typed data."""

from __future__ import annotations

from dataclasses import dataclass, fields

from cnnbench.config.settings import Range, setting

_FRACTION = Range(0, 1, False, True, "a fraction")


@dataclass(frozen=True)
class Tolerances:
    """What a suite's ``[gate]`` table allows: accuracy points (as a fraction), a noise multiple, a share of
    images/s."""

    accuracy_drop: float = setting(
        0.02, minimum=0, within=_FRACTION, doc="a group fails if its mean accuracy drops by more than this "
        "(a fraction: 0.02 is 2 points) and by more than noise_sigmas standard errors"
    )  # fmt: skip
    noise_sigmas: float = setting(2.0, minimum=0, doc="how many standard errors of the difference count as noise")
    throughput_drop: float = setting(
        0.3, minimum=0, within=_FRACTION, doc="a program fails if its images/s drop by more than this share "
        "against a baseline with the same fingerprint"
    )  # fmt: skip

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))
