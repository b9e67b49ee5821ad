"""Blocks and helpers that several zoo families share, with PyTorch's defaults so counts and behaviour match
the reference implementations."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from . import init

# torchvision's conv init: kaiming_normal_(mode="fan_out", nonlinearity="relu").
kaiming_fan_out = init.variance_scaling(2.0, "fan_out", "normal")


def scale_channels(channels: int, width: float) -> int:
    """A channel count multiplied by the width multiplier, rounded, and never below 1."""
    return max(1, round(channels * width))


def conv_out_size(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    """Spatial size after a convolution or pooling window (PyTorch's floor formula)."""
    return (size + 2 * padding - kernel) // stride + 1


def batch_norm(num_features: int, *, epsilon: float = 1e-5, rngs: nnx.Rngs) -> nnx.BatchNorm:
    """BatchNorm with PyTorch's momentum, 0.1 (weight of the new batch), which is flax's 0.9 (weight of the running
    value), scale 1 and bias 0; epsilon PyTorch's 1e-5 unless the reference says otherwise (GoogLeNet and Xception:
    1e-3). Every zoo BatchNorm comes from here, so the running statistics settle within the benchmark's shortest
    budgets (60 steps) on every arch."""
    return nnx.BatchNorm(num_features, momentum=0.9, epsilon=epsilon, rngs=rngs)


def torch_bias_init(fan_in: int) -> nnx.Initializer:
    """PyTorch's default bias init for linear and conv layers: uniform in ±1/sqrt(fan_in)."""
    bound = fan_in**-0.5
    return init.uniform(-bound, bound)


def torch_linear(in_features: int, out_features: int, *, rngs: nnx.Rngs) -> nnx.Linear:
    """Dense layer initialised like ``torch.nn.Linear``: weight and bias uniform in ±1/sqrt(fan_in)."""
    kernel_init = init.variance_scaling(1 / 3, "fan_in", "uniform")
    return nnx.Linear(
        in_features, out_features, kernel_init=kernel_init, bias_init=torch_bias_init(in_features), rngs=rngs
    )


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None, round_limit: float = 0.9) -> int:
    """timm's ``make_divisible`` (torchvision's ``_make_divisible`` at the default ``round_limit``): round to the
    nearest multiple of ``divisor``, never below ``min_value`` (default ``divisor``) and, where rounding down
    lost more than ``1 - round_limit`` of ``value``, one multiple up."""
    min_value = divisor if min_value is None else min_value
    new = max(min_value, int(value + divisor / 2) // divisor * divisor)
    return new + divisor if new < round_limit * value else new


def _adaptive_matrix(size: int, out: int) -> np.ndarray:
    """(out, size) averaging matrix of PyTorch's adaptive pooling: output i averages inputs
    [floor(i·size/out), ceil((i+1)·size/out))."""
    m = np.zeros((out, size), np.float32)
    for i in range(out):
        start, end = (i * size) // out, -((-(i + 1) * size) // out)
        m[i, start:end] = 1.0 / (end - start)
    return m


def adaptive_avg_pool(x: jax.Array, output_size: int | tuple[int, int]) -> jax.Array:
    """``torch.nn.AdaptiveAvgPool2d`` on an NHWC map: any input size to ``output_size`` (a smaller input is
    upsampled by repetition, e.g. 1×1 to 6×6 copies the one value)."""
    oh, ow = (output_size, output_size) if isinstance(output_size, int) else output_size
    h, w = x.shape[1:3]
    if (h, w) == (oh, ow):
        return x
    mh = jnp.asarray(_adaptive_matrix(h, oh), x.dtype)
    mw = jnp.asarray(_adaptive_matrix(w, ow), x.dtype)
    return jnp.einsum("ih,nhwc,jw->nijc", mh, x, mw)


def shifted_depthwise(x: jax.Array, kernel: jax.Array, stride: int, pads: tuple[tuple[int, int], ...]) -> jax.Array:
    """An NHWC depthwise convolution (kernel (kh, kw, 1, C)) as kh·kw shifted per-channel products.

    Equal in value to XLA's grouped convolution, but its gradient is several times faster on XLA:CPU, where
    grouped convolutions dominate MobileNet and Xception train steps.
    """
    kh, kw = kernel.shape[:2]
    xp = jnp.pad(x, ((0, 0), *pads, (0, 0)))
    out_h = (xp.shape[1] - kh) // stride + 1
    out_w = (xp.shape[2] - kw) // stride + 1
    out = None
    for i in range(kh):
        for j in range(kw):
            window = xp[:, i : i + stride * (out_h - 1) + 1 : stride, j : j + stride * (out_w - 1) + 1 : stride]
            term = window * kernel[i, j, 0]
            out = term if out is None else out + term
    assert out is not None  # the kernel has at least one tap
    return out


PATCH_LIMIT = 1 << 16  # per-image patch elements (out_h · out_w · kh · kw · cin) up to which a k×k conv runs as a dot


@dataclass(frozen=True)
class ConvCall:
    """The arguments of one ``lax.conv_general_dilated`` call, as ``nnx.Conv`` passes them to its hook."""

    lhs: jax.Array
    rhs: jax.Array
    window_strides: tuple[int, ...]
    padding: str | tuple[tuple[int, int], ...]
    lhs_dilation: tuple[int, ...] | None
    rhs_dilation: tuple[int, ...] | None
    dimension_numbers: Any
    feature_group_count: int
    kwargs: dict[str, Any]  # precision, preferred_element_type

    @property
    def dilated(self) -> bool:
        return any(d != 1 for d in (self.lhs_dilation or ()) + (self.rhs_dilation or ()))

    def explicit_padding(self) -> tuple[tuple[int, int], ...]:
        """The padding as (low, high) per spatial dimension, a padding name resolved for these shapes."""
        if isinstance(self.padding, str):
            window = self.rhs.shape[: self.lhs.ndim - 2]
            return tuple(jax.lax.padtype_to_pads(self.lhs.shape[1:-1], window, self.window_strides, self.padding))
        return tuple(self.padding)


def conv_hook(fast: Callable[[ConvCall], jax.Array | None]) -> Callable[..., jax.Array]:
    """A drop-in for ``lax.conv_general_dilated`` (``nnx.Conv``'s ``conv_general_dilated`` hook) that computes a
    call with ``fast`` where ``fast`` handles it, and with ``lax.conv_general_dilated`` where it returns None."""

    @wraps(fast)
    def hook(
        lhs: jax.Array,
        rhs: jax.Array,
        window_strides: tuple[int, ...],
        padding: str | tuple[tuple[int, int], ...],
        lhs_dilation: tuple[int, ...] | None = None,
        rhs_dilation: tuple[int, ...] | None = None,
        dimension_numbers: Any = None,
        feature_group_count: int = 1,
        **kwargs: Any,
    ) -> jax.Array:
        call = ConvCall(lhs, rhs, tuple(window_strides), padding, lhs_dilation, rhs_dilation, dimension_numbers,
                        feature_group_count, kwargs)  # fmt: skip
        out = fast(call)
        if out is None:
            out = jax.lax.conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=lhs_dilation,
                                               rhs_dilation=rhs_dilation, dimension_numbers=dimension_numbers,
                                               feature_group_count=feature_group_count, **kwargs)  # fmt: skip
        return out

    return hook


@conv_hook
def patch_conv(call: ConvCall) -> jax.Array | None:
    """A small NHWC convolution as one matrix product of the padded input's ``kh·kw`` strided slices, side by
    side, with the kernel reshaped to ``(kh·kw·cin, cout)``. On XLA:CPU the dot and its gradients beat the
    convolution's for the small channel counts and maps of the benchmark-scale zoo (``benchmarks/conv_as_matmul.py``,
    docs/benchmarks.md). Grouped, dilated or non-2-D convolutions, and any larger than 1×1 whose patches would exceed
    ``PATCH_LIMIT`` elements per image (the canonical-scale maps), go to ``lax.conv_general_dilated``. A 1×1
    convolution's patches are its input, strided, never larger, and XLA:CPU's 1×1 convolutions at canonical scale
    are 4–16× slower than the dot: every 1×1 convolution runs as one."""
    lhs, rhs = call.lhs, call.rhs
    if lhs.ndim != 4 or call.feature_group_count != 1 or call.dilated or call.dimension_numbers != _NHWC:
        return None
    kh, kw, cin, cout = rhs.shape
    (top, bottom), (left, right) = call.explicit_padding()
    sh, sw = call.window_strides
    out_h = (lhs.shape[1] + top + bottom - kh) // sh + 1
    out_w = (lhs.shape[2] + left + right - kw) // sw + 1
    if kh * kw > 1 and out_h * out_w * kh * kw * cin > PATCH_LIMIT:
        return None
    xp = jnp.pad(lhs, ((0, 0), (top, bottom), (left, right), (0, 0)))
    slices = [
        xp[:, i : i + sh * (out_h - 1) + 1 : sh, j : j + sw * (out_w - 1) + 1 : sw, :]
        for i in range(kh)
        for j in range(kw)
    ]
    patches = slices[0] if len(slices) == 1 else jnp.concatenate(slices, axis=-1)
    kernel = rhs.reshape(kh * kw * cin, cout)
    return jnp.matmul(patches, kernel, precision=call.kwargs.get("precision"),
                      preferred_element_type=call.kwargs.get("preferred_element_type"))  # fmt: skip


_NHWC = jax.lax.conv_dimension_numbers((1, 1, 1, 1), (1, 1, 1, 1), ("NHWC", "HWIO", "NHWC"))  # what nnx.Conv passes


def conv(in_chs: int, out_chs: int, kernel_size: tuple[int, int], **kwargs: Any) -> nnx.Conv:
    """``nnx.Conv`` (same arguments, same parameters, flax's default kernel initialiser drawn by ``init``) evaluated
    by ``patch_conv``: every zoo convolution is built here, so each family gets the faster small-convolution path."""
    kwargs.setdefault("kernel_init", init.lecun_normal())
    return nnx.Conv(in_chs, out_chs, kernel_size, conv_general_dilated=patch_conv, **kwargs)


def conv2d(
    in_chs: int,
    out_chs: int,
    kernel: int,
    stride: int = 1,
    *,
    groups: int = 1,
    kernel_init: nnx.Initializer = kaiming_fan_out,
    rngs: nnx.Rngs,
) -> nnx.Conv:
    """Bias-free k×k convolution with PyTorch's symmetric k//2 padding (odd kernels), the zoo's common conv."""
    pad = kernel // 2
    return conv(
        in_chs,
        out_chs,
        (kernel, kernel),
        strides=stride,
        padding=((pad, pad), (pad, pad)),
        feature_group_count=groups,
        use_bias=False,
        kernel_init=kernel_init,
        rngs=rngs,
    )


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
        self.conv = conv2d(in_chs, out_chs, kernel, stride, rngs=rngs)
        self.bn = batch_norm(out_chs, rngs=rngs)
        self.act = act

    def __call__(self, x: jax.Array) -> jax.Array:
        x = self.bn(self.conv(x))
        return x if self.act is None else self.act(x)
