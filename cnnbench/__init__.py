"""cnnbench: a pytest plugin and benchmark suite for CNN transfer learning (JAX + Flax NNX).

Importing the package is cheap: JAX and the model zoo load only when a submodule that needs them is used. The Python
API (docs/api.md) — ``list_models``, ``create_model``, ``run``, ``load_report`` — is reached from here, each name
imported from its module on first use (PEP 562).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_API = {"list_models": "cnnbench.zoo", "create_model": "cnnbench.api", "run": "cnnbench.api",
        "load_report": "cnnbench.api"}  # fmt: skip
__all__ = ["__version__", "create_model", "list_models", "load_report", "run"]


def __getattr__(name: str) -> Any:
    """An API name, imported (and kept) on first use; anything else is a missing attribute."""
    if name not in _API:
        raise AttributeError(f"module 'cnnbench' has no attribute {name!r}")
    value = getattr(importlib.import_module(_API[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_API})
