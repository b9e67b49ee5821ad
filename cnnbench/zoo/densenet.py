"""DenseNet (Huang et al. 2017) exactly as torchvision builds it: a 7×7/2 stem with max-pool, dense blocks of
BN-ReLU-1×1 conv (bottleneck, ``bn_size`` × growth) - BN-ReLU-3×3 conv (growth) layers whose outputs are
concatenated to their inputs, transitions (BN-ReLU-1×1 conv halving the channels, 2×2 average pool) between
blocks, a final BN + ReLU, then GAP and fc.

Init follows torchvision's DenseNet: convolutions ``kaiming_normal_`` with its defaults (fan-in, ReLU gain),
BatchNorm 1/0, the classifier PyTorch's default weight and a zero bias. Dropout (``drop_rate``) is 0 in every
torchvision variant and is left out.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from . import init
from ._base import ZooModel
from ._builder import register_model
from .layers import batch_norm, conv2d, conv_out_size, scale_channels

# torchvision densenet: nn.init.kaiming_normal_(m.weight) -> mode="fan_in", gain sqrt(2).
kaiming_fan_in = init.variance_scaling(2.0, "fan_in", "normal")
torch_linear_kernel = init.variance_scaling(1 / 3, "fan_in", "uniform")


def _conv(in_chs: int, out_chs: int, kernel: int, stride: int, rngs: nnx.Rngs) -> nnx.Conv:
    """Bias-free k×k convolution with torchvision DenseNet's fan-in kaiming init."""
    return conv2d(in_chs, out_chs, kernel, stride, kernel_init=kaiming_fan_in, rngs=rngs)


class DenseLayer(nnx.Module):
    """BN-ReLU-1×1 conv to ``bn_size * growth``, BN-ReLU-3×3 conv to ``growth``; returns the input with the new
    ``growth`` channels concatenated (torchvision concatenates all earlier outputs: the same tensor)."""

    def __init__(self, in_chs: int, growth: int, bn_size: int, *, rngs: nnx.Rngs) -> None:
        self.norm1 = batch_norm(in_chs, rngs=rngs)
        self.conv1 = _conv(in_chs, bn_size * growth, 1, 1, rngs)
        self.norm2 = batch_norm(bn_size * growth, rngs=rngs)
        self.conv2 = _conv(bn_size * growth, growth, 3, 1, rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        y = self.conv1(nnx.relu(self.norm1(x)))
        y = self.conv2(nnx.relu(self.norm2(y)))
        return jnp.concatenate([x, y], axis=-1)


class DenseBlock(nnx.Module):
    """``num_layers`` dense layers: ``in_chs + num_layers * growth`` output channels. With ``final_norm`` (the last
    block) torchvision's ``norm5`` and the ReLU of its forward follow, so the feature map is post-activation."""

    def __init__(
        self, num_layers: int, in_chs: int, growth: int, bn_size: int, *, final_norm: bool = False, rngs: nnx.Rngs
    ) -> None:
        layers = [DenseLayer(in_chs + i * growth, growth, bn_size, rngs=rngs) for i in range(num_layers)]
        self.layers = nnx.Sequential(*layers)
        self.out_chs = in_chs + num_layers * growth
        self.norm = batch_norm(self.out_chs, rngs=rngs) if final_norm else None

    def __call__(self, x: jax.Array) -> jax.Array:
        x = self.layers(x)
        return x if self.norm is None else nnx.relu(self.norm(x))


class Transition(nnx.Module):
    """BN-ReLU-1×1 conv to ``out_chs`` (half the input in torchvision), then 2×2/2 average pooling."""

    def __init__(self, in_chs: int, out_chs: int, *, rngs: nnx.Rngs) -> None:
        self.norm = batch_norm(in_chs, rngs=rngs)
        self.conv = _conv(in_chs, out_chs, 1, 1, rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return nnx.avg_pool(self.conv(nnx.relu(self.norm(x))), (2, 2), strides=(2, 2))


class Stem(nnx.Module):
    """7×7/2 conv-BN-ReLU, then 3×3/2 max-pool (torchvision's conv0, norm0, relu0, pool0)."""

    def __init__(self, in_chans: int, out_chs: int, *, rngs: nnx.Rngs) -> None:
        self.conv = _conv(in_chans, out_chs, 7, 2, rngs)
        self.norm = batch_norm(out_chs, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = nnx.relu(self.norm(self.conv(x)))
        return nnx.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))


class DenseNet(ZooModel):
    """DenseNet with stages ``stem, dense1, trans1, dense2, trans2, dense3, trans3, dense4`` (the last holds the
    final BN + ReLU); ``width`` scales the growth rate and the stem's channels."""

    stage_names = ("stem", "dense1", "trans1", "dense2", "trans2", "dense3", "trans3", "dense4")

    def __init__(
        self,
        block_config: tuple[int, int, int, int],
        *,
        growth_rate: int = 32,
        num_init_features: int = 64,
        bn_size: int = 4,
        num_classes: int,
        in_chans: int,
        img_size: int,
        width: float,
        rngs: nnx.Rngs,
    ) -> None:
        growth = scale_channels(growth_rate, width)
        chs = scale_channels(num_init_features, width)
        self.stem = Stem(in_chans, chs, rngs=rngs)
        size = conv_out_size(conv_out_size(img_size, 7, 2, 3), 3, 2, 1)
        last = len(block_config) - 1
        for i, num_layers in enumerate(block_config):
            block = DenseBlock(num_layers, chs, growth, bn_size, final_norm=i == last, rngs=rngs)
            setattr(self, f"dense{i + 1}", block)
            chs = block.out_chs
            if i != last:
                setattr(self, f"trans{i + 1}", Transition(chs, chs // 2, rngs=rngs))
                chs //= 2
                size = conv_out_size(size, 2, 2)
        if size < 1:
            raise ValueError(f"densenet: img_size={img_size} is too small for three 2×2 transitions")
        self.num_features = chs
        self.feature_shape = (size, size, chs)
        # torchvision: PyTorch's default Linear weight (uniform ±1/sqrt(fan_in)), bias constant 0.
        self.classifier = (
            nnx.Linear(chs, num_classes, kernel_init=torch_linear_kernel, rngs=rngs) if num_classes else None
        )


@register_model(
    family="densenet",
    paper="Huang et al., Densely Connected Convolutional Networks, CVPR 2017",
    year=2017,
    num_classes=1000,
    in_chans=3,
    img_size=224,
    params=7_978_856,
    stages=DenseNet.stage_names,
    bench_config=dict(in_chans=1, img_size=32, width=0.25),
    min_img_size=29,  # smaller images leave a stage with an empty map
)
def densenet121(**kwargs: Any) -> DenseNet:
    """DenseNet-121: growth 32, block config (6, 12, 24, 16), bn_size 4, 64 initial features."""
    return DenseNet((6, 12, 24, 16), **kwargs)
