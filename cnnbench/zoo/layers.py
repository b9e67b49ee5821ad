"""Blocks and helpers that several zoo families share, with PyTorch's defaults so counts and behaviour match
the reference implementations."""

from __future__ import annotations

from collections.abc import Callable

import jax
from flax import nnx

# torchvision's conv init: kaiming_normal_(mode="fan_out", nonlinearity="relu").
kaiming_fan_out = nnx.initializers.variance_scaling(2.0, "fan_out", "normal")


def scale_channels(channels: int, width: float) -> int:
    """A channel count multiplied by the width multiplier, rounded, and never below 1."""
    return max(1, round(channels * width))


def conv_out_size(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    """Spatial size after a convolution or pooling window (PyTorch's floor formula)."""
    return (size + 2 * padding - kernel) // stride + 1


def batch_norm(num_features: int, *, rngs: nnx.Rngs) -> nnx.BatchNorm:
    """BatchNorm matching PyTorch's defaults: its momentum 0.1 (weight of the new batch) is flax's 0.9 (weight of
    the running value), epsilon 1e-5, scale 1 and bias 0."""
    return nnx.BatchNorm(num_features, momentum=0.9, epsilon=1e-5, rngs=rngs)


def torch_linear(in_features: int, out_features: int, *, rngs: nnx.Rngs) -> nnx.Linear:
    """Dense layer initialised like ``torch.nn.Linear``: weight and bias uniform in ±1/sqrt(fan_in)."""
    bound = in_features**-0.5

    def bias_init(key: jax.Array, shape: tuple[int, ...], dtype: jax.typing.DTypeLike = float) -> jax.Array:
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    kernel_init = nnx.initializers.variance_scaling(1 / 3, "fan_in", "uniform")
    return nnx.Linear(in_features, out_features, kernel_init=kernel_init, bias_init=bias_init, rngs=rngs)


class ConvBN(nnx.Module):
    """Bias-free k×k convolution with PyTorch's symmetric k//2 padding, BatchNorm, then ``act`` if given."""

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        kernel: int,
        stride: int = 1,
        *,
        act: Callable[[jax.Array], jax.Array] | None = None,
        rngs: nnx.Rngs,
    ) -> None:
        pad = kernel // 2
        self.conv = nnx.Conv(
            in_chs,
            out_chs,
            (kernel, kernel),
            strides=stride,
            padding=((pad, pad), (pad, pad)),
            use_bias=False,
            kernel_init=kaiming_fan_out,
            rngs=rngs,
        )
        self.bn = batch_norm(out_chs, rngs=rngs)
        self.act = act

    def __call__(self, x: jax.Array) -> jax.Array:
        x = self.bn(self.conv(x))
        return x if self.act is None else self.act(x)
