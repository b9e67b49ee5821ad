"""What a suite is checked against: the names and facts that the zoo, the data targets and the heads register.

The config layer sits below those registries, so it never imports them; the caller builds a :class:`Catalog`
(``cnnbench.engine.catalog.registry_catalog`` from the live registries) and passes it to the suite reader.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class ArchInfo:
    """An arch's stage names (what ``s2`` cuts between), its benchmark-scale width multiplier, the smallest
    image side it computes on, and its canonical input (image side, channels): the one imported weights fit."""

    stages: tuple[str, ...]
    bench_width: float = 1.0
    min_img_size: int = 1
    img_size: int = 224
    in_chans: int = 3


@dataclass(frozen=True)
class TargetInfo:
    """A built-in target's class count and the most training images it can provide."""

    n_classes: int
    max_train: int


@dataclass(frozen=True)
class Catalog:
    """Every arch, built-in target, head and augmentation a suite may name."""

    archs: Mapping[str, ArchInfo]
    targets: Mapping[str, TargetInfo]
    heads: tuple[str, ...]
    augmentations: tuple[str, ...]
