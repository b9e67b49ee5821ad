"""ResNet (He et al. 2015) exactly as torchvision builds it: a 7×7/2 stem with max-pool, four stages of basic
(ResNet-18/34) or bottleneck (ResNet-50, stride on the 3×3 as in "v1.5") residual blocks, then GAP and fc.
SE-ResNet-50 (Hu et al. 2018) is timm's ``seresnet50``: the same bottlenecks with a squeeze-and-excitation module
after the last BN, before the residual add.

A variant is a block type and a stage depth tuple in its one-line builder below.
"""

from __future__ import annotations

from typing import Any, ClassVar

import jax
from flax import nnx

from ._base import ZooModel
from ._builder import register_model
from .layers import (
    ConvBN,
    conv,
    conv_out_size,
    kaiming_fan_out,
    make_divisible,
    scale_channels,
    torch_bias_init,
    torch_linear,
)


class SEModule(nnx.Module):
    """timm's ``SEModule``: global average pool, 1×1 conv C → C/16 (bias), ReLU, 1×1 conv back to C (bias),
    sigmoid; the input is scaled channel-wise by that gate."""

    def __init__(self, chs: int, rd_ratio: float = 1 / 16, *, rngs: nnx.Rngs) -> None:
        rd_chs = make_divisible(chs * rd_ratio, round_limit=0.0)  # timm: round_limit=0.
        self.fc1 = conv(chs, rd_chs, (1, 1), kernel_init=kaiming_fan_out, bias_init=torch_bias_init(chs), rngs=rngs)
        self.fc2 = conv(rd_chs, chs, (1, 1), kernel_init=kaiming_fan_out, bias_init=torch_bias_init(rd_chs), rngs=rngs)

    def gate(self, x: jax.Array) -> jax.Array:
        """The per-channel excitation (N, 1, 1, C) in (0, 1)."""
        s = x.mean(axis=(1, 2), keepdims=True)
        return nnx.sigmoid(self.fc2(nnx.relu(self.fc1(s))))

    def __call__(self, x: jax.Array) -> jax.Array:
        return x * self.gate(x)


def _shortcut(in_chs: int, out_chs: int, stride: int, rngs: nnx.Rngs) -> ConvBN | None:
    """torchvision's downsample: a 1×1 conv + BN where the block changes shape, else the identity (``None``)."""
    return ConvBN(in_chs, out_chs, 1, stride, rngs=rngs) if stride != 1 or in_chs != out_chs else None


class BasicBlock(nnx.Module):
    """Two 3×3 conv-BN layers plus the shortcut, then ReLU (ResNet-18/34)."""

    expansion: ClassVar[int] = 1

    def __init__(self, in_chs: int, planes: int, stride: int, *, rngs: nnx.Rngs) -> None:
        self.conv1 = ConvBN(in_chs, planes, 3, stride, act=nnx.relu, rngs=rngs)
        self.conv2 = ConvBN(planes, planes, 3, rngs=rngs)
        self.downsample = _shortcut(in_chs, planes, stride, rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        shortcut = x if self.downsample is None else self.downsample(x)
        return nnx.relu(self.conv2(self.conv1(x)) + shortcut)


class Bottleneck(nnx.Module):
    """1×1 reduce, 3×3 (strided), 1×1 expand by 4, [squeeze-and-excitation,] plus the shortcut, then ReLU
    (ResNet-50; with ``se=True`` SE-ResNet-50, the SE module applied after conv3's BN, before the add)."""

    expansion: ClassVar[int] = 4

    def __init__(self, in_chs: int, planes: int, stride: int, *, se: bool = False, rngs: nnx.Rngs) -> None:
        out_chs = planes * self.expansion
        self.conv1 = ConvBN(in_chs, planes, 1, act=nnx.relu, rngs=rngs)
        self.conv2 = ConvBN(planes, planes, 3, stride, act=nnx.relu, rngs=rngs)
        self.conv3 = ConvBN(planes, out_chs, 1, rngs=rngs)
        self.se = SEModule(out_chs, rngs=rngs) if se else None
        self.downsample = _shortcut(in_chs, out_chs, stride, rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        shortcut = x if self.downsample is None else self.downsample(x)
        y = self.conv3(self.conv2(self.conv1(x)))
        if self.se is not None:
            y = self.se(y)
        return nnx.relu(y + shortcut)


class SEBottleneck(Bottleneck):
    """A :class:`Bottleneck` with squeeze-and-excitation (timm's ``seresnet50`` block)."""

    def __init__(self, in_chs: int, planes: int, stride: int, *, rngs: nnx.Rngs) -> None:
        super().__init__(in_chs, planes, stride, se=True, rngs=rngs)


class Stem(nnx.Module):
    """7×7/2 conv-BN-ReLU, then 3×3/2 max-pool: a quarter of the input resolution."""

    def __init__(self, in_chans: int, out_chs: int, *, rngs: nnx.Rngs) -> None:
        self.conv = ConvBN(in_chans, out_chs, 7, 2, act=nnx.relu, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return nnx.max_pool(self.conv(x), (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))


class ResNet(ZooModel):
    """ResNet with stages ``stem, layer1..layer4``; ``width`` scales every channel count."""

    stage_names = ("stem", "layer1", "layer2", "layer3", "layer4")

    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        layers: tuple[int, int, int, int],
        *,
        num_classes: int,
        in_chans: int,
        img_size: int,
        width: float,
        rngs: nnx.Rngs,
    ) -> None:
        chs = scale_channels(64, width)
        self.stem = Stem(in_chans, chs, rngs=rngs)
        size = conv_out_size(conv_out_size(img_size, 7, 2, 3), 3, 2, 1)
        for i, (depth, planes) in enumerate(zip(layers, (64, 128, 256, 512), strict=True)):
            stride = 1 if i == 0 else 2
            planes = scale_channels(planes, width)
            blocks = []
            for j in range(depth):
                blocks.append(block(chs, planes, stride if j == 0 else 1, rngs=rngs))
                chs = planes * block.expansion
            setattr(self, f"layer{i + 1}", nnx.Sequential(*blocks))
            size = conv_out_size(size, 3, stride, 1)
        self.num_features = chs
        self.feature_shape = (size, size, chs)
        self.classifier = torch_linear(chs, num_classes, rngs=rngs) if num_classes else None


_RESNET: dict[str, Any] = dict(
    family="resnet",
    paper="He et al., Deep Residual Learning for Image Recognition, CVPR 2016",
    year=2015,
    num_classes=1000,
    in_chans=3,
    img_size=224,
    stages=ResNet.stage_names,
    bench_config=dict(in_chans=1, img_size=32, width=0.25),
)


@register_model(params=11_689_512, **_RESNET)
def resnet18(**kwargs: Any) -> ResNet:
    """ResNet-18: basic blocks, stage depths (2, 2, 2, 2)."""
    return ResNet(BasicBlock, (2, 2, 2, 2), **kwargs)


@register_model(params=21_797_672, **_RESNET)
def resnet34(**kwargs: Any) -> ResNet:
    """ResNet-34: basic blocks, stage depths (3, 4, 6, 3)."""
    return ResNet(BasicBlock, (3, 4, 6, 3), **kwargs)


@register_model(params=25_557_032, **_RESNET)
def resnet50(**kwargs: Any) -> ResNet:
    """ResNet-50: bottleneck blocks, stage depths (3, 4, 6, 3)."""
    return ResNet(Bottleneck, (3, 4, 6, 3), **kwargs)


@register_model(
    params=28_088_024,
    **{
        **_RESNET,
        "family": "senet",
        "paper": "Hu et al., Squeeze-and-Excitation Networks, CVPR 2018",
        "year": 2018,
    },
)
def seresnet50(**kwargs: Any) -> ResNet:
    """SE-ResNet-50 (timm): ResNet-50 bottlenecks with SE, reduction 16, stage depths (3, 4, 6, 3)."""
    return ResNet(SEBottleneck, (3, 4, 6, 3), **kwargs)
