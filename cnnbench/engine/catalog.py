"""The live registries as the :class:`~cnnbench.config.catalog.Catalog` a suite is checked against: every zoo
arch with its stages, every built-in target, head and augmentation."""

from __future__ import annotations

from functools import cache

from cnnbench.config.catalog import ArchInfo, Catalog, TargetInfo
from cnnbench.data.augment import AUGMENTATIONS
from cnnbench.data.targets import TARGETS
from cnnbench.engine.heads import HEADS
from cnnbench.zoo import get_spec, list_models


@cache
def registry_catalog() -> Catalog:
    """What the registries hold now (built once: registrations happen at import)."""
    specs = {name: get_spec(name) for name in list_models()}
    archs = {name: ArchInfo(tuple(s.stages), s.bench_config.get("width", 1.0), s.min_img_size, s.img_size, s.in_chans)
             for name, s in specs.items()}  # fmt: skip
    targets = {name: TargetInfo(TARGETS.get(name).n_classes, TARGETS.get(name).max_train) for name in TARGETS.names()}
    return Catalog(archs, targets, tuple(HEADS.names()), AUGMENTATIONS)
