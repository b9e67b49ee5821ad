"""Hardware suites (SPEC §6 ``hardware``): no transfer, only the canonical-scale timing table of ``cnnbench bench``.

A hardware suite names archs, batch sizes, precisions and modes; every combination is one *bench point*, timed at
the arch's canonical config (the reference implementation's input size, channels, width and classes) after a
warm-up, in steady state. A suite file says ``kind = "hardware"``; the suite reader parses it
(``cnnbench.config.suite.read_suite``) into a :class:`HardwareSuite`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cnnbench.config.catalog import Catalog
from cnnbench.config.settings import setting

MODES = ("train", "infer")
HARDWARE = "hardware"  # the value of a hardware suite's ``kind`` key


@dataclass(frozen=True)
class BenchSettings:
    """A hardware suite's ``[bench]`` table: how each bench point is timed."""

    rounds: int = setting(5, minimum=1, doc="timed rounds per bench point (median and spread are over them)")
    warmup: int = setting(2, minimum=0, doc="untimed calls after compiling, before the rounds")
    min_round_s: float = setting(
        0.05, minimum=0, doc="a round repeats the step until it lasts this long; figures stay per step"
    )
    learning_rate: float = setting(1e-4, minimum=0, doc="SGD-momentum learning rate of the timed train step")


@dataclass(frozen=True)
class BenchPoint:
    """One row of the hardware table: an arch at its canonical config, a batch size, a precision and a mode."""

    arch: str
    batch: int
    precision: str
    mode: str

    @property
    def id(self) -> str:
        """The pytest item id: ``{arch}-b{batch}-{precision}-{mode}``, e.g. ``resnet50-b32-bf16-train``."""
        return f"{self.arch}-b{self.batch}-{self.precision}-{self.mode}"


@dataclass(frozen=True)
class HardwareSuite:
    """A parsed, validated hardware suite."""

    name: str
    path: str
    description: str
    archs: tuple[str, ...]
    batches: tuple[int, ...]
    precisions: tuple[str, ...]
    modes: tuple[str, ...]
    bench: BenchSettings
    digest: str
    catalog: Catalog = field(repr=False, compare=False)

    def points(self) -> list[BenchPoint]:
        """Every bench point, arch by arch, then mode, precision and batch (so a table reads down the batches)."""
        return [
            BenchPoint(arch, batch, precision, mode)
            for arch in self.archs
            for mode in self.modes
            for precision in self.precisions
            for batch in self.batches
        ]
