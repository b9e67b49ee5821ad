"""How a framework names and lays out one zoo family's tensors: the registry the importer and exporter read.

A :class:`Convention` is registered per (source, family) — ``torchvision/resnet``, ``timm/senet``,
``keras/xception`` — with a function from a zoo module's name to the source's module name, the dense layers that
read a flattened (C, H, W) map, and the preprocessing the source's weights were trained with. The framework
(PyTorch or Keras) fixes the rest: tensor names within a module and array layouts (:mod:`cnnbench.weights.mapping`).
Adding a family to a source is one function plus one ``register`` call in that source's module.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from cnnbench.registry import Registry
from cnnbench.zoo import ZooModel


@dataclass(frozen=True)
class Preprocessing:
    """How the weights' own training fed images: RGB scaled to [0, 1], minus ``mean``, over ``std``, per channel."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    name: str  # how the report names it

    def describe(self) -> str:
        mean = ", ".join(f"{m:g}" for m in self.mean)
        std = ", ".join(f"{s:g}" for s in self.std)
        return f"RGB in [0, 1], minus mean ({mean}), over std ({std}) ({self.name})"


IMAGENET = Preprocessing((0.485, 0.456, 0.406), (0.229, 0.224, 0.225), "ImageNet mean and std")
SIGNED = Preprocessing((0.5, 0.5, 0.5), (0.5, 0.5, 0.5), "scaled to [-1, 1]")

Namer = Callable[[str, ZooModel], str]  # zoo module name (Sequential lists unnested) -> the source's module name
Flattened = Callable[[ZooModel], Mapping[str, tuple[int, int, int]]]  # zoo dense module -> (h, w, c) it reads


def _none(model: ZooModel) -> Mapping[str, tuple[int, int, int]]:
    return {}


def _identity(tensors: dict) -> dict:
    return tensors


@dataclass(frozen=True)
class Convention:
    """One source's names for one zoo family."""

    source: str  # torchvision, timm or keras
    framework: str  # torch or keras: tensor names within a module and array layouts
    family: str
    module_name: Namer
    preprocessing: Preprocessing = IMAGENET
    flattened: Flattened = _none  # dense layers whose input is a flattened map, stored in the source's (C, H, W) order
    normalise: Callable[[dict], dict] = field(default=_identity)  # the file's names as module_name's (old layouts)
    caveat: str | None = None  # where the zoo model computes something other than the source's, said on import


CONVENTIONS: Registry[Convention] = Registry("weights convention")
SOURCES = ("torchvision", "timm", "keras")


def register(convention: Convention) -> Convention:
    """Add ``convention`` under ``<source>/<family>``."""
    return CONVENTIONS.register(f"{convention.source}/{convention.family}")(convention)


def get_convention(source: str, family: str) -> Convention:
    """The convention of ``source`` for ``family``; an error lists the families that source has."""
    key = f"{source}/{family}"
    if key not in CONVENTIONS:
        if source not in SOURCES:
            raise KeyError(f"unknown weights source {source!r}; known: {', '.join(SOURCES)}")
        have = sorted(k.split("/")[1] for k in CONVENTIONS if k.startswith(f"{source}/"))
        raise KeyError(f"cnnbench has no {source} names for the {family} family; {source} covers: {', '.join(have)}")
    return CONVENTIONS.get(key)


def families(source: str) -> list[str]:
    """The zoo families ``source`` has names for."""
    return [k.split("/")[1] for k in CONVENTIONS if k.startswith(f"{source}/")]


def rename(name: str, rules: tuple[tuple[str, str], ...]) -> str:
    """``name`` rewritten by the first rule whose pattern matches all of it, unchanged when none does."""
    for pattern, replacement in rules:
        if re.fullmatch(pattern, name):
            return re.sub(f"^{pattern}$", replacement, name)
    return name
