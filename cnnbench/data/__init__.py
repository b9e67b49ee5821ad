"""Data: the procedural glyph source domain for pretraining and the registered target datasets.

Importing this package loads only numpy; the JAX-backed source domain loads on first use of its names.
"""

import importlib

from cnnbench.data.dataset import Dataset, balanced_counts, stratified_split, to_input_format
from cnnbench.data.targets import TARGETS, TargetSpec, build_target

_LAZY = {"SourceConfig": "cnnbench.data.source", "SourceDomain": "cnnbench.data.source"}

__all__ = [
    "TARGETS",
    "Dataset",
    "SourceConfig",
    "SourceDomain",
    "TargetSpec",
    "balanced_counts",
    "build_target",
    "stratified_split",
    "to_input_format",
]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'cnnbench.data' has no attribute {name!r}")
