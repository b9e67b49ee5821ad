"""MobileNetV2 (Sandler et al. 2018) exactly as torchvision builds it.

A 3×3/2 conv-BN-ReLU6 stem, seven groups of inverted residual blocks (1×1 expansion by ``t`` with ReLU6, 3×3
depthwise conv with ReLU6, linear 1×1 projection — no activation: the "linear bottleneck" — and an identity
skip where stride is 1 and channels are kept), a 1×1 conv-BN-ReLU6 to 1280 channels, then GAP, dropout 0.2, fc.
``width`` is torchvision's ``width_mult``: every channel count is rounded with ``_make_divisible(c * width, 8)``
and the last conv has ``_make_divisible(1280 * max(1, width), 8)`` channels. Init as torchvision: kaiming-normal
(fan_out) convs, BN scale 1 bias 0, linear weight N(0, 0.01²) and bias 0.

Stages: ``stem``, ``stage1`` … ``stage7`` (the seven bottleneck groups) and ``head`` (the 1×1 conv to 1280);
at 224 px the feature map is 7×7×1280, at 32 px 1×1×1280.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
from flax import nnx
from flax.nnx.nn.dtypes import promote_dtype

from . import init
from ._base import ZooModel
from ._builder import register_model
from .layers import batch_norm, conv2d, conv_out_size, make_divisible, shifted_depthwise

# (expansion t, output channels c, repeats n, first stride s) per bottleneck group, as in the paper's Table 2.
_SETTING = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


def depthwise_conv(x: jax.Array, kernel: jax.Array, stride: int) -> jax.Array:
    """What ``nnx.Conv(C, C, (k, k), strides=stride, padding=(k-1)//2, feature_group_count=C, use_bias=False)``
    computes, evaluated as shifted multiply-adds (``layers.shifted_depthwise``: a faster gradient on CPU)."""
    pad = (kernel.shape[0] - 1) // 2
    return shifted_depthwise(x, kernel, stride, ((pad, pad), (pad, pad)))


class ConvBNAct(nnx.Module):
    """torchvision's ``Conv2dNormActivation``: bias-free k×k conv (padding (k-1)//2, optional groups), BN, act."""

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        kernel: int = 1,
        stride: int = 1,
        *,
        groups: int = 1,
        act: Callable[[jax.Array], jax.Array] | None = jax.nn.relu6,
        rngs: nnx.Rngs,
    ) -> None:
        self.conv = conv2d(in_chs, out_chs, kernel, stride, groups=groups, rngs=rngs)
        self.bn = batch_norm(out_chs, rngs=rngs)
        self.act = act
        self.depthwise = groups > 1 and groups == in_chs == out_chs
        self.stride = stride

    def __call__(self, x: jax.Array) -> jax.Array:
        # A depthwise conv keeps its nnx.Conv (kernel (k, k, 1, C)) but is evaluated by depthwise_conv (faster), in
        # the conv's compute dtype as nnx.Conv would (bfloat16 under mixed precision, cnnbench.engine.precision).
        if self.depthwise:
            x, kernel = promote_dtype((x, self.conv.kernel[...]), dtype=self.conv.dtype)
            x = depthwise_conv(x, kernel, self.stride)
        else:
            x = self.conv(x)
        x = self.bn(x)
        return x if self.act is None else self.act(x)


class InvertedResidual(nnx.Module):
    """1×1 expand (skipped when ``t == 1``) → 3×3 depthwise (strided) → linear 1×1 project, plus the identity
    where ``stride == 1`` and ``in_chs == out_chs``."""

    def __init__(self, in_chs: int, out_chs: int, stride: int, expand_ratio: int, *, rngs: nnx.Rngs) -> None:
        hidden = round(in_chs * expand_ratio)
        self.expand = ConvBNAct(in_chs, hidden, rngs=rngs) if expand_ratio != 1 else None
        self.depthwise = ConvBNAct(hidden, hidden, 3, stride, groups=hidden, rngs=rngs)
        self.project = ConvBNAct(hidden, out_chs, act=None, rngs=rngs)
        self.use_residual = stride == 1 and in_chs == out_chs

    def __call__(self, x: jax.Array) -> jax.Array:
        y = x if self.expand is None else self.expand(x)
        y = self.project(self.depthwise(y))
        return x + y if self.use_residual else y


class MobileNetV2(ZooModel):
    """MobileNetV2 with stages ``stem, stage1..stage7, head``; ``width`` is torchvision's ``width_mult``."""

    stage_names = ("stem", "stage1", "stage2", "stage3", "stage4", "stage5", "stage6", "stage7", "head")

    def __init__(self, *, num_classes: int, in_chans: int, img_size: int, width: float, rngs: nnx.Rngs) -> None:
        chs = make_divisible(32 * width)
        last = make_divisible(1280 * max(1.0, width))
        self.stem = ConvBNAct(in_chans, chs, 3, 2, rngs=rngs)
        size = conv_out_size(img_size, 3, 2, 1)
        for i, (t, c, n, s) in enumerate(_SETTING):
            out_chs = make_divisible(c * width)
            blocks = []
            for j in range(n):
                blocks.append(InvertedResidual(chs, out_chs, s if j == 0 else 1, t, rngs=rngs))
                chs = out_chs
            setattr(self, f"stage{i + 1}", nnx.Sequential(*blocks))
            size = conv_out_size(size, 3, s, 1)
        self.head = ConvBNAct(chs, last, rngs=rngs)
        self.num_features = last
        self.feature_shape = (size, size, last)
        self.classifier = (
            nnx.Sequential(
                nnx.Dropout(0.2, rngs=rngs),
                nnx.Linear(
                    last,
                    num_classes,
                    kernel_init=init.normal(0.01),
                    bias_init=nnx.initializers.zeros_init(),
                    rngs=rngs,
                ),
            )
            if num_classes
            else None
        )


@register_model(
    family="mobilenetv2",
    paper="Sandler et al., MobileNetV2: Inverted Residuals and Linear Bottlenecks, CVPR 2018",
    year=2018,
    num_classes=1000,
    in_chans=3,
    img_size=224,
    params=3_504_872,
    stages=MobileNetV2.stage_names,
    bench_config=dict(in_chans=1, img_size=32, width=0.5),
)
def mobilenetv2(**kwargs: Any) -> MobileNetV2:
    """MobileNetV2 1.0 as torchvision (``width`` is ``width_mult``)."""
    return MobileNetV2(**kwargs)
