"""AlexNet (Krizhevsky et al. 2012) as torchvision's single-tower model, plus the paper's local response
normalization: five conv layers (11×11/4, 5×5, three 3×3) with ReLU, LRN after the first two, overlapping 3×3/2
max-pooling after conv1, conv2 and conv5, then adaptive average pooling to 6×6 and a dropout/4096/4096 classifier.

Differences from torchvision, all parameter-free (the canonical count stays 61,100,840):

- LRN follows the ReLU of conv1 and conv2, as in the paper (torchvision drops it). It uses the paper's formula,
  ``b = a / (k + alpha * sum(a²))**beta`` over a window of 5 neighbouring channels; ``torch.nn.LocalResponseNorm``
  divides ``alpha`` by the window size, so it matches with ``alpha=5e-4``.
- Small inputs: an overlapping max-pool whose input is smaller than its 3×3 window pools the whole map (the
  window is padded with -inf, so the output is 1×1) instead of producing an empty map. At the canonical 224 px
  no pool is affected; at the benchmark's 32 px the last pool sees a 1×1 map.

The adaptive average pool to 6×6 belongs to the head, not to the base (``forward_head`` applies it before the
flatten, as timm's VGG head does and as torchvision's ``features``/``avgpool`` split implies): the transfer heads
get the real conv5 map (1×1×c at 32 px) rather than a 6×6 map of 36 copies of it. At 224 px the map is already
6×6 and the pool is the identity.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from . import init
from ._base import ZooModel
from ._builder import register_model
from .layers import adaptive_avg_pool, conv, conv_out_size, scale_channels, torch_linear

POOL_SIZE = 6  # torchvision's AdaptiveAvgPool2d((6, 6))


def torch_conv(
    in_chs: int, out_chs: int, kernel: int, stride: int = 1, padding: int = 0, *, rngs: nnx.Rngs
) -> nnx.Conv:
    """Convolution initialised like ``torch.nn.Conv2d``: kaiming_uniform(a=√5) weights, i.e. uniform in
    ±1/sqrt(fan_in), and bias uniform in ±1/sqrt(fan_in), with fan_in = in_chs·k·k."""
    bound = (in_chs * kernel * kernel) ** -0.5
    return conv(
        in_chs,
        out_chs,
        (kernel, kernel),
        strides=stride,
        padding=((padding, padding), (padding, padding)),
        kernel_init=init.variance_scaling(1 / 3, "fan_in", "uniform"),
        bias_init=init.uniform(-bound, bound),
        rngs=rngs,
    )


def local_response_norm(
    x: jax.Array, size: int = 5, alpha: float = 1e-4, beta: float = 0.75, k: float = 2.0
) -> jax.Array:
    """Krizhevsky's LRN across the channels of an NHWC map: ``x / (k + alpha * Σ x²)**beta``, the sum over the
    ``size`` channels centred on each one (clipped at the ends)."""
    sq = jnp.square(x)
    lo, hi = (size - 1) // 2, size // 2
    padded = jnp.pad(sq, ((0, 0), (0, 0), (0, 0), (lo, hi)))
    c = x.shape[-1]
    window = sum(padded[..., i : i + c] for i in range(size))
    return x / (k + alpha * window) ** beta


class LocalResponseNorm(nnx.Module):
    """Parameter-free LRN layer (paper defaults: size 5, alpha 1e-4, beta 0.75, k 2)."""

    def __init__(self, size: int = 5, alpha: float = 1e-4, beta: float = 0.75, k: float = 2.0) -> None:
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k

    def __call__(self, x: jax.Array) -> jax.Array:
        return local_response_norm(x, self.size, self.alpha, self.beta, self.k)


def _pool_pad(size: int, window: int = 3) -> int:
    """How much -inf padding a map of ``size`` needs so a ``window`` pool yields at least one output."""
    return max(0, window - size)


def _pooled_size(size: int) -> int:
    return conv_out_size(size + _pool_pad(size), 3, 2)


def overlapping_max_pool(x: jax.Array) -> jax.Array:
    """3×3 stride-2 max-pool (the paper's overlapping pooling); a map smaller than the window is padded with
    -inf at the bottom/right so it pools to 1×1 instead of vanishing."""
    ph, pw = _pool_pad(x.shape[1]), _pool_pad(x.shape[2])
    return nnx.max_pool(x, (3, 3), strides=(2, 2), padding=((0, ph), (0, pw)))


class AlexNet(ZooModel):
    """AlexNet with stages ``conv1..conv5`` (one per conv layer; conv1, conv2 and conv5 end in their max-pool);
    the classifier reads the 6×6 adaptive-pooled, flattened conv5 map. ``width`` scales every channel count and
    the 4096-wide hidden layers."""

    stage_names = ("conv1", "conv2", "conv3", "conv4", "conv5")
    global_pool = "flatten"

    def __init__(self, *, num_classes: int, in_chans: int, img_size: int, width: float, rngs: nnx.Rngs) -> None:
        c1, c2, c3, c4, c5 = (scale_channels(c, width) for c in (64, 192, 384, 256, 256))
        size = conv_out_size(img_size, 11, 4, 2)
        if size < 1:
            raise ValueError(f"alexnet needs img_size >= 7, got {img_size}")
        size = _pooled_size(size)  # conv2..conv5 keep the size; pools after conv1, conv2, conv5
        size = _pooled_size(size)
        size = _pooled_size(size)
        self.conv1 = nnx.Sequential(
            torch_conv(in_chans, c1, 11, 4, 2, rngs=rngs), nnx.relu, LocalResponseNorm(), overlapping_max_pool
        )
        self.conv2 = nnx.Sequential(
            torch_conv(c1, c2, 5, 1, 2, rngs=rngs), nnx.relu, LocalResponseNorm(), overlapping_max_pool
        )
        self.conv3 = nnx.Sequential(torch_conv(c2, c3, 3, 1, 1, rngs=rngs), nnx.relu)
        self.conv4 = nnx.Sequential(torch_conv(c3, c4, 3, 1, 1, rngs=rngs), nnx.relu)
        self.conv5 = nnx.Sequential(torch_conv(c4, c5, 3, 1, 1, rngs=rngs), nnx.relu, overlapping_max_pool)
        self.num_features = c5
        self.feature_shape = (size, size, c5)
        hidden = scale_channels(4096, width)
        self.classifier = (
            nnx.Sequential(
                nnx.Dropout(0.5, rngs=rngs),
                torch_linear(POOL_SIZE * POOL_SIZE * c5, hidden, rngs=rngs),
                nnx.relu,
                nnx.Dropout(0.5, rngs=rngs),
                torch_linear(hidden, hidden, rngs=rngs),
                nnx.relu,
                torch_linear(hidden, num_classes, rngs=rngs),
            )
            if num_classes
            else None
        )

    def forward_head(self, feats: jax.Array) -> jax.Array:
        """Adaptive-average-pool the conv5 map to 6×6, flatten, classify; without a classifier, return the
        flattened 6×6 map it would have consumed."""
        pooled = adaptive_avg_pool(feats, POOL_SIZE)
        pooled = pooled.reshape(pooled.shape[0], math.prod(pooled.shape[1:]))
        return pooled if self.classifier is None else self.classifier(pooled)


@register_model(
    family="alexnet",
    paper="Krizhevsky et al., ImageNet Classification with Deep Convolutional Neural Networks, NeurIPS 2012",
    year=2012,
    num_classes=1000,
    in_chans=3,
    img_size=224,
    params=61_100_840,
    stages=AlexNet.stage_names,
    bench_config=dict(in_chans=1, img_size=32, width=0.25),
    min_img_size=7,  # smaller images leave a stage with an empty map
)
def alexnet(**kwargs: Any) -> AlexNet:
    """AlexNet: torchvision's single-tower layout with the paper's LRN."""
    return AlexNet(**kwargs)
