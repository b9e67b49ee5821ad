"""Mixed precision (``cnnbench.config.precision``) applied to a model: the compute dtype of its layers.

``bf16`` sets the ``dtype`` of every layer that has one (``nnx.Conv``, ``nnx.Linear``, ``nnx.BatchNorm``), as
the flax ImageNet example builds its ResNet: operands are cast to bfloat16 inside the layer, while the parameters,
and so the optimizer state, keep their float32 ``param_dtype`` and BatchNorm reduces and stores its statistics
in float32. Losses are computed on float32 logits (``cnnbench.engine.train``). ``fp32`` leaves a model as built.
"""

from __future__ import annotations

from typing import TypeVar

import jax.numpy as jnp
from flax import nnx

from cnnbench.config.precision import PRECISIONS

M = TypeVar("M", bound=nnx.Module)
COMPUTE_DTYPES = {"fp32": jnp.float32, "bf16": jnp.bfloat16}  # by name in cnnbench.config.precision.PRECISIONS


def apply_precision(module: M, precision: str) -> M:
    """Set the compute dtype of ``precision`` on every layer of ``module`` (in place; returned for chaining);
    an unknown precision raises ValueError naming the valid ones."""
    if precision not in COMPUTE_DTYPES:
        raise ValueError(f"unknown precision {precision!r}; expected one of: {', '.join(PRECISIONS)}")
    if precision != "fp32":  # fp32 keeps the layers' own dtype (None: promote), so its programs stay as they were
        module.set_attributes(dtype=COMPUTE_DTYPES[precision], raise_if_not_found=False)
    return module
