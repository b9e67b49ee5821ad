"""Xception (Chollet 2017) exactly as Keras applications builds it: entry, middle (8 repeats) and exit flows of
depthwise separable convolutions with strided 1×1 residual projections, then GAP and fc.

Keras conventions are kept so counts and behaviour match ``keras.applications.Xception``: unpadded ("valid")
3×3 stem convolutions, TensorFlow "same" padding elsewhere (asymmetric on strided layers, -inf for max-pool),
bias-free convolutions, BatchNorm epsilon 1e-3, glorot-uniform kernels and zero biases. BatchNorm's momentum is
PyTorch's (0.1 there, flax's 0.9), as timm's Xception port, not Keras's 0.99: that averages the running statistics
over ~100 steps, as long as the benchmark's 60–150-step target budgets, so trained from scratch the statistics
evaluation used still described the untrained network and xception's ``scratch`` scored at chance on 8 of 12 cells
while its training loss fell (docs/benchmarks.md).
A separable convolution is a depthwise 3×3 (``feature_group_count`` = channels, depth multiplier 1) followed by
a pointwise 1×1, with nothing between them, as in Keras ``SeparableConv2D``. The depthwise convolution is an
ordinary ``nnx.Conv`` with ``feature_group_count`` = channels (kernel (3, 3, 1, C)), but it runs through
:func:`depthwise_conv`, which computes the same thing as nine shifted multiply-adds: XLA's CPU grouped
convolution is about 10× slower (forward and gradient) on the small maps of the benchmark scale.

No adaptation is needed for small inputs: at 32 px the map goes 32 → 15 → 13 (stem) → 7 → 4 → 2 (entry) → 2
(middle) → 1 (exit); 7 px is the smallest input the unpadded stem accepts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
from flax import nnx

from . import init
from ._base import ZooModel
from ._builder import register_model
from .layers import ConvCall, batch_norm, conv, conv_hook, conv_out_size, scale_channels, shifted_depthwise

glorot_uniform = init.glorot_uniform()


@conv_hook
def depthwise_conv(call: ConvCall) -> jax.Array | None:
    """An NHWC depthwise convolution (multiplier 1, stride 1, no dilation, odd kernel, "SAME" or explicit
    padding) as a sum of shifted per-channel products, identical in value; anything else goes to
    ``lax.conv_general_dilated``."""
    kh, kw, kin, kout = call.rhs.shape
    simple = (
        call.lhs.ndim == 4
        and kin == 1
        and call.feature_group_count == call.lhs.shape[-1] == kout
        and all(s == 1 for s in call.window_strides)
        and not call.dilated
        and kh % 2 == 1
        and kw % 2 == 1
        and (call.padding == "SAME" or not isinstance(call.padding, str))
    )
    return shifted_depthwise(call.lhs, call.rhs, 1, call.explicit_padding()) if simple else None


def _same_size(size: int, stride: int) -> int:
    """Spatial size after a TensorFlow "same"-padded window: ceil(size / stride)."""
    return -(-size // stride)


class SeparableConv(nnx.Module):
    """Keras ``SeparableConv2D(out, 3, padding="same", use_bias=False)``: depthwise 3×3, then pointwise 1×1."""

    def __init__(self, in_chs: int, out_chs: int, *, rngs: nnx.Rngs) -> None:
        self.depthwise = nnx.Conv(
            in_chs,
            in_chs,
            (3, 3),
            padding="SAME",
            feature_group_count=in_chs,
            use_bias=False,
            kernel_init=glorot_uniform,
            conv_general_dilated=depthwise_conv,
            rngs=rngs,
        )
        self.pointwise = conv(in_chs, out_chs, (1, 1), use_bias=False, kernel_init=glorot_uniform, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.pointwise(self.depthwise(x))


class SepConvBN(nnx.Module):
    """``[ReLU →] SeparableConv → BN [→ ReLU]``: Keras Xception applies the ReLU before most separable convs
    (pre-activation inside the residual branch) and after the two final ones."""

    def __init__(
        self, in_chs: int, out_chs: int, *, pre_act: bool = True, post_act: bool = False, rngs: nnx.Rngs
    ) -> None:
        self.sepconv = SeparableConv(in_chs, out_chs, rngs=rngs)
        self.bn = batch_norm(out_chs, epsilon=1e-3, rngs=rngs)
        self.pre_act = pre_act
        self.post_act = post_act

    def __call__(self, x: jax.Array) -> jax.Array:
        x = self.bn(self.sepconv(nnx.relu(x) if self.pre_act else x))
        return nnx.relu(x) if self.post_act else x


class ConvBNKeras(nnx.Module):
    """Bias-free plain convolution + Keras BN (+ ReLU): the stem's valid 3×3 convs and the 1×1 residual projections."""

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        kernel: int,
        stride: int = 1,
        *,
        padding: str,
        act: Callable[[jax.Array], jax.Array] | None = None,
        rngs: nnx.Rngs,
    ) -> None:
        self.conv = conv(
            in_chs,
            out_chs,
            (kernel, kernel),
            strides=stride,
            padding=padding,
            use_bias=False,
            kernel_init=glorot_uniform,
            rngs=rngs,
        )
        self.bn = batch_norm(out_chs, epsilon=1e-3, rngs=rngs)
        self.act = act

    def __call__(self, x: jax.Array) -> jax.Array:
        x = self.bn(self.conv(x))
        return x if self.act is None else self.act(x)


class Stem(nnx.Module):
    """Keras ``block1``: two unpadded 3×3 conv-BN-ReLU, the first with stride 2 (299 → 149 → 147)."""

    def __init__(self, in_chans: int, chs1: int, chs2: int, *, rngs: nnx.Rngs) -> None:
        self.conv1 = ConvBNKeras(in_chans, chs1, 3, 2, padding="VALID", act=nnx.relu, rngs=rngs)
        self.conv2 = ConvBNKeras(chs1, chs2, 3, padding="VALID", act=nnx.relu, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.conv2(self.conv1(x))


class DownBlock(nnx.Module):
    """Entry-flow and exit-flow block (Keras ``block2``–``block4``, ``block13``): two separable conv-BN, a 3×3/2
    "same" max-pool, plus a strided 1×1 conv-BN projection of the input. ``first_act=False`` drops the ReLU
    before the first separable conv (``block2``, whose input already went through the stem's ReLU)."""

    def __init__(self, in_chs: int, mid_chs: int, out_chs: int, *, first_act: bool = True, rngs: nnx.Rngs) -> None:
        self.residual = ConvBNKeras(in_chs, out_chs, 1, 2, padding="SAME", rngs=rngs)
        self.sep1 = SepConvBN(in_chs, mid_chs, pre_act=first_act, rngs=rngs)
        self.sep2 = SepConvBN(mid_chs, out_chs, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        y = self.sep2(self.sep1(x))
        y = nnx.max_pool(y, (3, 3), strides=(2, 2), padding="SAME")
        return y + self.residual(x)


class MiddleBlock(nnx.Module):
    """Middle-flow block (Keras ``block5``–``block12``): three ReLU-separable conv-BN plus the identity."""

    def __init__(self, chs: int, *, rngs: nnx.Rngs) -> None:
        self.sep1 = SepConvBN(chs, chs, rngs=rngs)
        self.sep2 = SepConvBN(chs, chs, rngs=rngs)
        self.sep3 = SepConvBN(chs, chs, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.sep3(self.sep2(self.sep1(x))) + x


class ExitFlow(nnx.Module):
    """Keras ``block13`` (the last down block) and ``block14`` (two separable conv-BN-ReLU widening to 2048)."""

    def __init__(self, in_chs: int, mid_chs: int, out_chs: int, chs14a: int, chs14b: int, *, rngs: nnx.Rngs) -> None:
        self.block13 = DownBlock(in_chs, mid_chs, out_chs, rngs=rngs)
        self.sep1 = SepConvBN(out_chs, chs14a, pre_act=False, post_act=True, rngs=rngs)
        self.sep2 = SepConvBN(chs14a, chs14b, pre_act=False, post_act=True, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.sep2(self.sep1(self.block13(x)))


class Xception(ZooModel):
    """Xception with stages ``stem`` (block1), ``entry1``–``entry3`` (block2–4), ``middle`` (block5–12) and
    ``exit`` (block13–14, ending in ReLU); ``width`` scales every channel count."""

    stage_names = ("stem", "entry1", "entry2", "entry3", "middle", "exit")

    def __init__(
        self,
        *,
        num_classes: int,
        in_chans: int,
        img_size: int,
        width: float,
        middle_repeats: int = 8,
        rngs: nnx.Rngs,
    ) -> None:
        if img_size < 7:
            raise ValueError(f"xception: img_size={img_size}, need img_size >= 7 (two unpadded 3×3 stem convs)")
        c = {n: scale_channels(n, width) for n in (32, 64, 128, 256, 728, 1024, 1536, 2048)}
        self.stem = Stem(in_chans, c[32], c[64], rngs=rngs)
        self.entry1 = DownBlock(c[64], c[128], c[128], first_act=False, rngs=rngs)
        self.entry2 = DownBlock(c[128], c[256], c[256], rngs=rngs)
        self.entry3 = DownBlock(c[256], c[728], c[728], rngs=rngs)
        self.middle = nnx.Sequential(*[MiddleBlock(c[728], rngs=rngs) for _ in range(middle_repeats)])
        self.exit = ExitFlow(c[728], c[728], c[1024], c[1536], c[2048], rngs=rngs)
        size = conv_out_size(conv_out_size(img_size, 3, 2), 3)
        for _ in range(4):  # entry1-3 and block13 each halve ("same": ceil)
            size = _same_size(size, 2)
        self.num_features = c[2048]
        self.feature_shape = (size, size, c[2048])
        self.classifier = (
            nnx.Linear(c[2048], num_classes, kernel_init=glorot_uniform, rngs=rngs) if num_classes else None
        )


@register_model(
    family="xception",
    paper="Chollet, Xception: Deep Learning with Depthwise Separable Convolutions, CVPR 2017",
    year=2017,
    num_classes=1000,
    in_chans=3,
    img_size=299,
    params=22_855_952,
    stages=Xception.stage_names,
    bench_config=dict(in_chans=1, img_size=32, width=0.25),
    min_img_size=7,  # smaller images leave a stage with an empty map
)
def xception(**kwargs: Any) -> Xception:
    """Xception: entry flow, 8 middle-flow blocks of 728 channels, exit flow to 2048 (Keras applications)."""
    return Xception(**kwargs)
