"""LeNet-5 (LeCun et al. 1998), the common variant: tanh, plain 2×2 average pooling and a fully connected C3.

The paper's partial C3 connection table and trainable subsampling (60,840 parameters) are left out, as in most
modern re-implementations; this variant has 61,706.
"""

from __future__ import annotations

from typing import Any

import jax
from flax import nnx

from . import init
from ._base import ZooModel
from ._builder import register_model
from .layers import conv, scale_channels


def _subsample(x: jax.Array) -> jax.Array:
    """S2/S4: non-overlapping 2×2 average pooling."""
    return nnx.avg_pool(x, (2, 2), strides=(2, 2))


def _conv5(in_chs: int, out_chs: int, rngs: nnx.Rngs) -> nnx.Conv:
    """An unpadded 5×5 convolution with bias, as in every LeNet-5 C layer."""
    return conv(in_chs, out_chs, (5, 5), padding="VALID", rngs=rngs)


class LeNet5(ZooModel):
    """LeNet-5 with stages ``c1`` (C1 + S2), ``c3`` (C3 + S4) and ``c5``; the classifier is F6 + output.

    At other input sizes the flattened C5 map that F6 reads grows with it; 32 px is the smallest input. Weights
    use flax's default LeCun-normal (fan-in) init, the scaling LeCun recommends for tanh.
    """

    stage_names = ("c1", "c3", "c5")
    global_pool = "flatten"

    def __init__(self, *, num_classes: int, in_chans: int, img_size: int, width: float, rngs: nnx.Rngs) -> None:
        size = ((img_size - 4) // 2 - 4) // 2 - 4
        if size < 1:
            raise ValueError(f"lenet5 needs img_size >= 32, got {img_size}; pad smaller images to 32 px (as LeCun did)")
        c1, c3, c5, f6 = (scale_channels(c, width) for c in (6, 16, 120, 84))
        self.c1 = nnx.Sequential(_conv5(in_chans, c1, rngs), nnx.tanh, _subsample)
        self.c3 = nnx.Sequential(_conv5(c1, c3, rngs), nnx.tanh, _subsample)
        self.c5 = nnx.Sequential(_conv5(c3, c5, rngs), nnx.tanh)
        self.num_features = c5
        self.feature_shape = (size, size, c5)
        self.classifier = (
            nnx.Sequential(
                nnx.Linear(size * size * c5, f6, kernel_init=init.lecun_normal(), rngs=rngs),
                nnx.tanh,
                nnx.Linear(f6, num_classes, kernel_init=init.lecun_normal(), rngs=rngs),
            )
            if num_classes
            else None
        )


@register_model(
    family="lenet",
    paper="LeCun et al., Gradient-Based Learning Applied to Document Recognition, Proc. IEEE 1998",
    year=1998,
    num_classes=10,
    in_chans=1,
    img_size=32,
    params=61_706,
    stages=LeNet5.stage_names,
    bench_config=dict(in_chans=1, img_size=32, width=1.0),
    min_img_size=32,  # smaller images leave a stage with an empty map
)
def lenet5(**kwargs: Any) -> LeNet5:
    """LeNet-5 at the canonical 32×32×1 input and 10 classes."""
    return LeNet5(**kwargs)
