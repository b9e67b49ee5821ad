"""The zoo's registry and factory: every model is a :class:`ModelSpec` registered by name, built by
:func:`create_model` and measured by :func:`count_params`.

A family module registers a variant with a small builder function under ``@register_model(...)``; the spec
carries the canonical config and the reference parameter count, so listing the zoo builds nothing.
"""

from __future__ import annotations

import fnmatch
import hashlib
import math
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jax
from flax import nnx

from cnnbench.registry import Registry

from . import _base, init, layers
from ._base import ZooModel

Builder = Callable[..., ZooModel]


@dataclass(frozen=True)
class ModelSpec:
    """What the zoo knows about one entry without building it: provenance, canonical config, stages."""

    name: str
    family: str
    paper: str  # short citation
    year: int
    num_classes: int  # canonical config: the reference implementation's classifier and input
    in_chans: int
    img_size: int
    params: int  # reference trainable parameter count of the canonical config (SPEC §2)
    stages: tuple[str, ...]
    build: Builder  # called with num_classes, in_chans, img_size, width, rngs (all keywords)
    bench_config: Mapping[str, Any] = field(hash=False)  # create_model keywords of the CPU benchmark scale
    min_img_size: int = 1  # the smallest image side the model computes on (its unpadded convolutions and pools)


MODELS: Registry[ModelSpec] = Registry("arch")


def register_model(
    *,
    family: str,
    paper: str,
    year: int,
    num_classes: int,
    in_chans: int,
    img_size: int,
    params: int,
    stages: tuple[str, ...],
    bench_config: Mapping[str, Any],
    min_img_size: int = 1,
) -> Callable[[Builder], Builder]:
    """Decorator that registers a builder function under its own name, with the entry's metadata, its
    benchmark-scale config (``create_model`` keywords, e.g. ``in_chans=1, img_size=32, width=0.25``) and the
    smallest image side it computes on (``tests/test_zoo.py`` checks that it does, and that one less does not)."""

    def add(build: Builder) -> Builder:
        spec = ModelSpec(
            name=build.__name__,
            family=family,
            paper=paper,
            year=year,
            num_classes=num_classes,
            in_chans=in_chans,
            img_size=img_size,
            params=params,
            stages=stages,
            build=build,
            bench_config=bench_config,
            min_img_size=min_img_size,
        )
        MODELS.register(spec.name)(spec)
        return build

    return add


def list_models(pattern: str | None = None) -> list[str]:
    """Names of the registered models, in registration order: every one, or those matching the shell-style
    ``pattern`` (``fnmatch``: ``"resnet*"``, ``"vgg1?"``), as timm's ``list_models`` filters its registry."""
    names = MODELS.names()
    return names if pattern is None else [n for n in names if fnmatch.fnmatchcase(n, pattern)]


def get_spec(name: str) -> ModelSpec:
    """The spec registered as ``name``; an unknown name raises ``UnknownNameError`` listing the known ones."""
    return MODELS.get(name)


def create_model(
    name: str,
    *,
    num_classes: int | None = None,
    in_chans: int | None = None,
    img_size: int | None = None,
    width: float = 1.0,
    rngs: nnx.Rngs | None = None,
) -> ZooModel:
    """Build model ``name``: each ``None`` argument takes the canonical value (``rngs``: seed 0),
    ``num_classes=0`` builds the convolutional base without a classifier, ``width`` scales every channel count."""
    spec = get_spec(name)
    num_classes = spec.num_classes if num_classes is None else num_classes
    in_chans = spec.in_chans if in_chans is None else in_chans
    img_size = spec.img_size if img_size is None else img_size
    if num_classes < 0 or in_chans < 1 or img_size < spec.min_img_size or not width > 0:
        raise ValueError(
            f"{name}: invalid config num_classes={num_classes}, in_chans={in_chans}, img_size={img_size}, "
            f"width={width}; need num_classes >= 0 (0: no classifier), in_chans >= 1, "
            f"img_size >= {spec.min_img_size} (the smallest image {name} computes on), width > 0"
        )
    rngs = nnx.Rngs(0) if rngs is None else rngs
    return spec.build(num_classes=num_classes, in_chans=in_chans, img_size=img_size, width=width, rngs=rngs)


def code_digest(name: str) -> str:
    """A digest of the source that defines ``name``: its family module and the zoo's shared layers, initialisers and
    base class. Artefacts derived from a model (cached pretrained bases) carry it, so editing a family rebuilds its
    own."""
    spec = get_spec(name)
    digest = hashlib.sha256()
    for module in (sys.modules[spec.build.__module__], layers, init, _base):
        assert module.__file__ is not None  # each is a plain source module
        with open(module.__file__, "rb") as source:
            digest.update(source.read())
    return digest.hexdigest()[:16]


def count_params(model: nnx.Module) -> tuple[int, int]:
    """(trainable, total) element counts: ``nnx.Param`` leaves, and those plus ``nnx.BatchStat``; works on an
    abstract model from ``nnx.eval_shape``, so a large model can be counted without allocating it."""

    def size(kind: type[nnx.Variable]) -> int:
        return sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(nnx.state(model, kind)))

    trainable = size(nnx.Param)
    return trainable, trainable + size(nnx.BatchStat)
