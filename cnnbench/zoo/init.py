"""The zoo's parameter initialisers: ``jax.nn.initializers``' weights, from a handful of compiled samplers.

JAX compiles a random sampler once per output shape, and XLA:CPU takes 0.3–8 s to compile a normal sampler: building
googlenet at benchmark scale compiled 47 of them, 42 s of its 49 s. With ``jax_threefry_partitionable`` (JAX's
default) a sample of shape ``s`` is bit for bit the first ``prod(s)`` values of a 1-d sample of any larger size, so
these initialisers draw a 1-d sample of the next power of two, cut and reshape it on the host, and scale it there
in the dtype's own arithmetic, as JAX's do on the device: the same weights (``tests/test_zoo_init.py`` checks each
against JAX's), from one compiled program per sampler and size class.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

TRUNCATED_STDDEV = 0.87962566103423978  # the standard deviation of a standard normal truncated to (-2, 2)


def _sample(sampler: str, key: jax.Array, shape: Sequence[int], dtype: Any, *args: Any) -> Any:
    """``jax.random.<sampler>(key, ..., shape, dtype, ...)`` on the host, drawn as the prefix of a flat sample whose
    size is the next power of two (``args``: the sampler's bounds, where it takes them). Traced (a model built
    under ``jit`` or ``nnx.eval_shape``), it stays a traced array: there is nothing per shape to compile."""
    n = math.prod(shape)
    size = (1 << max(n - 1, 0).bit_length(),)
    if sampler == "truncated_normal":
        flat = jax.random.truncated_normal(key, -2, 2, size, dtype)
    elif sampler == "uniform":
        flat = jax.random.uniform(key, size, dtype, *args)
    else:
        flat = jax.random.normal(key, size, dtype)
    if isinstance(flat, jax.core.Tracer):
        return flat[:n].reshape(shape)
    return np.asarray(flat)[:n].reshape(shape)


def _fans(shape: Sequence[int]) -> tuple[int, int]:
    """Fan-in and fan-out of a dense kernel ``(in, out)`` or a convolution kernel ``(*window, in, out)``, as
    ``jax.nn.initializers`` count them with their default axes."""
    if len(shape) < 2:
        raise ValueError(f"fans of a {len(shape)}-d array: variance scaling initialises kernels of 2 or more dims")
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


def variance_scaling(scale: float, mode: str, distribution: str) -> nnx.Initializer:
    """``jax.nn.initializers.variance_scaling`` with its default axes, for real dtypes: samples of variance
    ``scale / fan`` (``fan_in``, ``fan_out`` or ``fan_avg``), from a ``normal``, a ``truncated_normal`` (cut at two
    standard deviations) or a ``uniform`` distribution."""
    if mode not in ("fan_in", "fan_out", "fan_avg"):
        raise ValueError(f"unknown mode {mode!r}: one of fan_in, fan_out, fan_avg")
    if distribution not in ("normal", "truncated_normal", "uniform"):
        raise ValueError(f"unknown distribution {distribution!r}: one of normal, truncated_normal, uniform")

    def init(key: jax.Array, shape: Sequence[int], dtype: Any = jnp.float32) -> jax.Array:
        dtype = np.dtype(dtype)
        fan_in, fan_out = _fans(shape)
        denominator = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[mode]
        variance = dtype.type(scale / denominator)
        if distribution == "truncated_normal":
            values = _sample("truncated_normal", key, shape, dtype) * (np.sqrt(variance) / dtype.type(TRUNCATED_STDDEV))
        elif distribution == "normal":
            values = _sample("normal", key, shape, dtype) * np.sqrt(variance)
        else:
            values = _sample("uniform", key, shape, dtype, -1) * np.sqrt(dtype.type(3) * variance)
        return jnp.asarray(values, dtype)

    return init


def lecun_normal() -> nnx.Initializer:
    """flax's default kernel initialiser: truncated normal of variance ``1 / fan_in``."""
    return variance_scaling(1.0, "fan_in", "truncated_normal")


def glorot_uniform() -> nnx.Initializer:
    """Keras's default kernel initialiser: uniform of variance ``1 / fan_avg``."""
    return variance_scaling(1.0, "fan_avg", "uniform")


def normal(stddev: float) -> nnx.Initializer:
    """``jax.nn.initializers.normal(stddev)``: a normal of standard deviation ``stddev``."""

    def init(key: jax.Array, shape: Sequence[int], dtype: Any = jnp.float32) -> jax.Array:
        dtype = np.dtype(dtype)
        return jnp.asarray(_sample("normal", key, shape, dtype) * dtype.type(stddev), dtype)

    return init


def uniform(low: float, high: float) -> nnx.Initializer:
    """``jax.random.uniform`` on ``[low, high)``."""

    def init(key: jax.Array, shape: Sequence[int], dtype: Any = jnp.float32) -> jax.Array:
        return jnp.asarray(_sample("uniform", key, shape, dtype, low, high), dtype)

    return init
