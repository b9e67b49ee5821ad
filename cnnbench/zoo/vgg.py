"""VGG (Simonyan & Zisserman 2014) exactly as torchvision builds it: five blocks of 3×3 convolutions (padding 1)
with ReLU, each ending in a 2×2/2 max-pool, then adaptive average pooling to 7×7 and the
4096-ReLU-dropout-4096-ReLU-dropout-n classifier. The ``_bn`` variants put BatchNorm after every convolution
(the conv keeps its bias, as in torchvision).

A variant is a row of the depth table below and a one-line builder. Init as torchvision: kaiming normal
(fan_out) convolutions, normal(0, 0.01) linear layers, zero biases.

The adaptive 7×7 pool belongs to the head (``forward_head``), not to the base, as in timm's VGG head and
torchvision's ``features``/``avgpool`` split (Keras' ``include_top=False`` base also ends at block5's pool): the
transfer heads get the real block5 map (1×1×c at 32 px) rather than 49 copies of it. At 224 px the map is
already 7×7 and the pool is the identity. Inputs below 32 px would pool to nothing and are refused.
"""

from __future__ import annotations

import math
from typing import Any

import jax
from flax import nnx

from . import init
from ._base import ZooModel
from ._builder import register_model
from .layers import adaptive_avg_pool, batch_norm, conv, kaiming_fan_out, scale_channels

POOL_SIZE = 7  # torchvision's AdaptiveAvgPool2d((7, 7))
BLOCK_CHANNELS = (64, 128, 256, 512, 512)
# Convolutions per block: torchvision's configs A (vgg11), D (vgg16) and E (vgg19).
DEPTHS: dict[str, tuple[int, int, int, int, int]] = {
    "vgg11": (1, 1, 2, 2, 2),
    "vgg16": (2, 2, 3, 3, 3),
    "vgg19": (2, 2, 4, 4, 4),
}

_linear_init = init.normal(0.01)


def _max_pool(x: jax.Array) -> jax.Array:
    return nnx.max_pool(x, (2, 2), strides=(2, 2))


def _block(in_chs: int, out_chs: int, depth: int, use_bn: bool, rngs: nnx.Rngs) -> nnx.Sequential:
    """``depth`` × (3×3 conv [+ BN] + ReLU), then the 2×2 max-pool."""
    layers: list[Any] = []
    for _ in range(depth):
        layers.append(conv(in_chs, out_chs, (3, 3), padding=((1, 1), (1, 1)), kernel_init=kaiming_fan_out, rngs=rngs))
        if use_bn:
            layers.append(batch_norm(out_chs, rngs=rngs))
        layers.append(nnx.relu)
        in_chs = out_chs
    layers.append(_max_pool)
    return nnx.Sequential(*layers)


def _linear(in_features: int, out_features: int, rngs: nnx.Rngs) -> nnx.Linear:
    return nnx.Linear(in_features, out_features, kernel_init=_linear_init, rngs=rngs)  # bias: zeros by default


class VGG(ZooModel):
    """VGG with stages ``block1..block5`` (each ending in its max-pool); the classifier reads the 7×7
    adaptive-pooled, flattened block5 map. ``width`` scales every channel count and the 4096-wide hidden layers."""

    stage_names = ("block1", "block2", "block3", "block4", "block5")
    global_pool = "flatten"

    def __init__(
        self,
        depths: tuple[int, int, int, int, int],
        *,
        batch_norm: bool = False,
        num_classes: int,
        in_chans: int,
        img_size: int,
        width: float,
        rngs: nnx.Rngs,
    ) -> None:
        size = img_size // 32
        if size < 1:
            raise ValueError(f"vgg needs img_size >= 32 (five 2×2 pools), got {img_size}")
        chs = in_chans
        for i, (depth, out_chs) in enumerate(zip(depths, BLOCK_CHANNELS, strict=True)):
            out_chs = scale_channels(out_chs, width)
            setattr(self, f"block{i + 1}", _block(chs, out_chs, depth, batch_norm, rngs))
            chs = out_chs
        self.num_features = chs
        self.feature_shape = (size, size, chs)
        hidden = scale_channels(4096, width)
        self.classifier = (
            nnx.Sequential(
                _linear(POOL_SIZE * POOL_SIZE * chs, hidden, rngs),
                nnx.relu,
                nnx.Dropout(0.5, rngs=rngs),
                _linear(hidden, hidden, rngs),
                nnx.relu,
                nnx.Dropout(0.5, rngs=rngs),
                _linear(hidden, num_classes, rngs),
            )
            if num_classes
            else None
        )

    def forward_head(self, feats: jax.Array) -> jax.Array:
        """Adaptive-average-pool the block5 map to 7×7, flatten, classify; without a classifier, return the
        flattened 7×7 map it would have consumed."""
        pooled = adaptive_avg_pool(feats, POOL_SIZE)
        pooled = pooled.reshape(pooled.shape[0], math.prod(pooled.shape[1:]))
        return pooled if self.classifier is None else self.classifier(pooled)


_VGG: dict[str, Any] = dict(
    family="vgg",
    paper="Simonyan & Zisserman, Very Deep Convolutional Networks for Large-Scale Image Recognition, ICLR 2015",
    year=2014,
    num_classes=1000,
    in_chans=3,
    img_size=224,
    stages=VGG.stage_names,
    bench_config=dict(in_chans=1, img_size=32, width=0.125),
    min_img_size=32,  # smaller images leave a stage with an empty map
)


@register_model(params=132_863_336, **_VGG)
def vgg11(**kwargs: Any) -> VGG:
    """VGG-11 (config A)."""
    return VGG(DEPTHS["vgg11"], **kwargs)


@register_model(params=138_357_544, **_VGG)
def vgg16(**kwargs: Any) -> VGG:
    """VGG-16 (config D)."""
    return VGG(DEPTHS["vgg16"], **kwargs)


@register_model(params=143_667_240, **_VGG)
def vgg19(**kwargs: Any) -> VGG:
    """VGG-19 (config E)."""
    return VGG(DEPTHS["vgg19"], **kwargs)


@register_model(params=132_868_840, **_VGG)
def vgg11_bn(**kwargs: Any) -> VGG:
    """VGG-11 (config A) with BatchNorm after every convolution."""
    return VGG(DEPTHS["vgg11"], batch_norm=True, **kwargs)


@register_model(params=138_365_992, **_VGG)
def vgg16_bn(**kwargs: Any) -> VGG:
    """VGG-16 (config D) with BatchNorm after every convolution."""
    return VGG(DEPTHS["vgg16"], batch_norm=True, **kwargs)


@register_model(params=143_678_248, **_VGG)
def vgg19_bn(**kwargs: Any) -> VGG:
    """VGG-19 (config E) with BatchNorm after every convolution."""
    return VGG(DEPTHS["vgg19"], batch_norm=True, **kwargs)
