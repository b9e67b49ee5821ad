"""GoogLeNet / Inception v1 (Szegedy et al. 2015) exactly as torchvision builds it.

torchvision's variant, reproduced here: every convolution is ``BasicConv2d`` (bias-free conv, BatchNorm with
eps 0.001, ReLU), the stride-2 max-pools use ``ceil_mode=True``, and the "5×5" branch of each inception module
is a 1×1 reduction followed by a **3×3** convolution (a known torchvision quirk kept for its weights; the
canonical count 6,624,904 depends on it). Weights are drawn like torchvision's ``init_weights``: conv and linear
kernels from a normal of std 0.01 (torchvision's ``trunc_normal_(std=0.01, a=-2, b=2)`` truncates at ±200 std,
so in effect untruncated), linear biases like ``torch.nn.Linear`` (uniform ±1/sqrt(fan_in)), BN scale 1, bias 0.

Stages: ``stem`` (conv1, pool, conv2, conv3, pool), ``inception3`` (3a, 3b, pool), ``inception4`` (4a–4e, pool)
and ``inception5`` (5a, 5b); at 224 px the feature map is 7×7×1024, at 32 px 1×1×1024 (no pool ever produces an
empty map: ceil-mode pooling keeps at least one window).

Auxiliary classifiers (``aux_logits=True``, registry entry ``googlenet_aux``): after inception4a and 4d,
adaptive avg-pool to 4×4 → 1×1 BasicConv2d 128 → fc 1024 → ReLU → dropout 0.7 → fc n, as torchvision. They
belong to the classifier side (``classifier.aux.aux1``, ``classifier.aux.aux2``), so ``num_classes=0`` has none;
a base built that way still knows it had them: ``new_aux_classifiers(n)`` makes fresh ones for a new head, which
``cnnbench.engine.train.TransferModel`` trains with the same 0.3-weighted loss.
``model(x)`` always returns the main logits only; training code that wants the auxiliary losses calls
``logits, aux = model.forward_train(x)``: ``aux`` is ``(aux1_logits, aux2_logits)`` when the model has aux heads
and is in train mode (``model.train()``), else ``()``, so ``loss = ce(logits) + 0.3 * sum(ce(a) for a in aux)``
(the paper's weight) works for every configuration. At inputs below 64 px the 4a/4d maps are smaller than 4×4
and the adaptive pool replicates cells (PyTorch's ``adaptive_avg_pool2d`` does the same).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from . import init
from ._base import ZooModel
from ._builder import register_model
from .layers import adaptive_avg_pool, batch_norm, conv2d, conv_out_size, scale_channels, torch_bias_init

# torchvision's init_weights: trunc_normal_(std=0.01, a=-2, b=2); the bounds are ±200 std, so a plain normal.
_weight_init = init.normal(0.01)


def _linear(in_features: int, out_features: int, rngs: nnx.Rngs) -> nnx.Linear:
    """torchvision GoogLeNet linear: weight N(0, 0.01²) (its init_weights), bias left at torch's default."""
    return nnx.Linear(
        in_features, out_features, kernel_init=_weight_init, bias_init=torch_bias_init(in_features), rngs=rngs
    )


def ceil_pool_size(size: int, kernel: int, stride: int) -> int:
    """Output size of an unpadded ``MaxPool2d(kernel, stride, ceil_mode=True)`` (PyTorch's rule: the last window
    must start inside the input)."""
    out = -(-max(size - kernel, 0) // stride) + 1
    return out - 1 if (out - 1) * stride >= size else out


def max_pool_ceil(x: jax.Array, kernel: int, stride: int) -> jax.Array:
    """``MaxPool2d(kernel, stride, ceil_mode=True)``: pad the bottom/right with -inf so the last partial window
    counts, as PyTorch does."""
    pads = []
    for size in x.shape[1:3]:
        out = ceil_pool_size(size, kernel, stride)
        pads.append((0, max(0, (out - 1) * stride + kernel - size)))
    return nnx.max_pool(x, (kernel, kernel), strides=(stride, stride), padding=tuple(pads))


class BasicConv2d(nnx.Module):
    """Bias-free conv (symmetric k//2 padding), BatchNorm (eps 0.001, torch momentum 0.1), ReLU."""

    def __init__(self, in_chs: int, out_chs: int, kernel: int, stride: int = 1, *, rngs: nnx.Rngs) -> None:
        self.conv = conv2d(in_chs, out_chs, kernel, stride, kernel_init=_weight_init, rngs=rngs)
        self.bn = batch_norm(out_chs, epsilon=1e-3, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return nnx.relu(self.bn(self.conv(x)))


class Inception(nnx.Module):
    """Four parallel branches concatenated on channels: 1×1; 1×1 → 3×3; 1×1 → 3×3 (torchvision's "5×5");
    3×3/1 max-pool → 1×1."""

    def __init__(
        self,
        in_chs: int,
        ch1x1: int,
        ch3x3red: int,
        ch3x3: int,
        ch5x5red: int,
        ch5x5: int,
        pool_proj: int,
        *,
        rngs: nnx.Rngs,
    ) -> None:
        self.branch1 = BasicConv2d(in_chs, ch1x1, 1, rngs=rngs)
        self.branch2 = nnx.Sequential(
            BasicConv2d(in_chs, ch3x3red, 1, rngs=rngs), BasicConv2d(ch3x3red, ch3x3, 3, rngs=rngs)
        )
        self.branch3 = nnx.Sequential(  # torchvision's "5x5" branch, with a 3x3 conv
            BasicConv2d(in_chs, ch5x5red, 1, rngs=rngs), BasicConv2d(ch5x5red, ch5x5, 3, rngs=rngs)
        )
        self.branch4 = BasicConv2d(in_chs, pool_proj, 1, rngs=rngs)
        self.out_chs = ch1x1 + ch3x3 + ch5x5 + pool_proj

    def __call__(self, x: jax.Array) -> jax.Array:
        pooled = nnx.max_pool(x, (3, 3), strides=(1, 1), padding=((1, 1), (1, 1)))
        return jnp.concatenate([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(pooled)], axis=-1)


class Stem(nnx.Module):
    """conv1 7×7/2 → max-pool 3/2 → conv2 1×1 → conv3 3×3 → max-pool 3/2 (both pools ceil-mode)."""

    def __init__(self, in_chans: int, width: float, *, rngs: nnx.Rngs) -> None:
        c64, c192 = scale_channels(64, width), scale_channels(192, width)
        self.conv1 = BasicConv2d(in_chans, c64, 7, 2, rngs=rngs)
        self.conv2 = BasicConv2d(c64, c64, 1, rngs=rngs)
        self.conv3 = BasicConv2d(c64, c192, 3, rngs=rngs)
        self.out_chs = c192

    def __call__(self, x: jax.Array) -> jax.Array:
        x = max_pool_ceil(self.conv1(x), 3, 2)
        return max_pool_ceil(self.conv3(self.conv2(x)), 3, 2)


class InceptionStage(nnx.Module):
    """Inception modules named ``a``, ``b``, … in order, then an optional ceil-mode max-pool (stride 2)."""

    def __init__(
        self, in_chs: int, configs: tuple[tuple[int, ...], ...], pool: int | None, width: float, *, rngs: nnx.Rngs
    ) -> None:
        self.block_names = tuple("abcde"[: len(configs)])
        for name, cfg in zip(self.block_names, configs, strict=True):
            block = Inception(in_chs, *(scale_channels(c, width) for c in cfg), rngs=rngs)
            setattr(self, name, block)
            in_chs = block.out_chs
        self.pool = pool  # kernel of the closing max-pool, None for none
        self.out_chs = in_chs

    def forward_taps(self, x: jax.Array, taps: tuple[str, ...] = ()) -> tuple[jax.Array, list[jax.Array]]:
        """The stage's output and the outputs of the blocks named in ``taps`` (for the auxiliary classifiers)."""
        tapped = []
        for name in self.block_names:
            x = getattr(self, name)(x)
            if name in taps:
                tapped.append(x)
        if self.pool is not None:
            x = max_pool_ceil(x, self.pool, 2)
        return x, tapped

    def block(self, name: str) -> Inception:
        """The Inception module called ``name`` (``a``, ``b``, …)."""
        block: Inception = getattr(self, name)
        return block

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.forward_taps(x)[0]


class InceptionAux(nnx.Module):
    """Adaptive avg-pool 4×4 → 1×1 BasicConv2d 128 → flatten → fc 1024 → ReLU → dropout 0.7 → fc n."""

    def __init__(self, in_chs: int, num_classes: int, width: float, *, rngs: nnx.Rngs) -> None:
        c128, c1024 = scale_channels(128, width), scale_channels(1024, width)
        self.conv = BasicConv2d(in_chs, c128, 1, rngs=rngs)
        self.fc1 = _linear(4 * 4 * c128, c1024, rngs)
        self.dropout = nnx.Dropout(0.7, rngs=rngs)
        self.fc2 = _linear(c1024, num_classes, rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = self.conv(adaptive_avg_pool(x, 4))
        x = nnx.relu(self.fc1(x.reshape(x.shape[0], -1)))
        return self.fc2(self.dropout(x))


class AuxClassifiers(nnx.Module):
    """The two auxiliary heads, ``aux1`` on inception4a's map and ``aux2`` on inception4d's."""

    def __init__(self, in_chs: tuple[int, int], num_classes: int, width: float, *, rngs: nnx.Rngs) -> None:
        self.aux1 = InceptionAux(in_chs[0], num_classes, width, rngs=rngs)
        self.aux2 = InceptionAux(in_chs[1], num_classes, width, rngs=rngs)

    @property
    def training(self) -> bool:
        return not self.aux1.dropout.deterministic

    def __call__(self, taps: tuple[jax.Array, ...]) -> tuple[jax.Array, jax.Array]:
        return self.aux1(taps[0]), self.aux2(taps[1])


class GoogLeNetClassifier(nnx.Module):
    """The main classifier (dropout 0.2 → fc on the pooled features) and, optionally, the auxiliary heads
    (``aux``), which ``GoogLeNet.forward_train`` feeds from inception4a and inception4d."""

    def __init__(
        self, num_features: int, num_classes: int, aux_in: tuple[int, int] | None, width: float, *, rngs: nnx.Rngs
    ) -> None:
        self.dropout = nnx.Dropout(0.2, rngs=rngs)
        self.fc = _linear(num_features, num_classes, rngs)
        self.aux = AuxClassifiers(aux_in, num_classes, width, rngs=rngs) if aux_in else None

    def __call__(self, pooled: jax.Array) -> jax.Array:
        return self.fc(self.dropout(pooled))


_INCEPTION3 = ((64, 96, 128, 16, 32, 32), (128, 128, 192, 32, 96, 64))
_INCEPTION4 = (
    (192, 96, 208, 16, 48, 64),
    (160, 112, 224, 24, 64, 64),
    (128, 128, 256, 24, 64, 64),
    (112, 144, 288, 32, 64, 64),
    (256, 160, 320, 32, 128, 128),
)
_INCEPTION5 = ((256, 160, 320, 32, 128, 128), (384, 192, 384, 48, 128, 128))
_AUX_TAPS = ("a", "d")  # inception4a, inception4d


class GoogLeNet(ZooModel):
    """GoogLeNet with stages ``stem, inception3, inception4, inception5``; ``width`` scales every channel count.

    ``model(x)`` returns the main logits; ``model.forward_train(x)`` returns ``(logits, aux_logits)`` with the
    auxiliary logits ``(aux1, aux2)`` only when built with ``aux_logits=True`` and in train mode.
    """

    stage_names = ("stem", "inception3", "inception4", "inception5")
    classifier: GoogLeNetClassifier | None

    def __init__(
        self,
        *,
        num_classes: int,
        in_chans: int,
        img_size: int,
        width: float,
        rngs: nnx.Rngs,
        aux_logits: bool = False,
    ) -> None:
        self.stem = Stem(in_chans, width, rngs=rngs)
        self.inception3 = InceptionStage(self.stem.out_chs, _INCEPTION3, 3, width, rngs=rngs)
        self.inception4 = InceptionStage(self.inception3.out_chs, _INCEPTION4, 2, width, rngs=rngs)
        self.inception5 = InceptionStage(self.inception4.out_chs, _INCEPTION5, None, width, rngs=rngs)
        size = conv_out_size(img_size, 7, 2, 3)
        for kernel in (3, 3, 3, 2):  # maxpool1, maxpool2, maxpool3, maxpool4
            size = ceil_pool_size(size, kernel, 2)
        chs = self.inception5.out_chs
        self.num_features = chs
        self.feature_shape = (size, size, chs)
        self.width = width
        self.aux_in = (self.inception4.block("a").out_chs, self.inception4.block("d").out_chs) if aux_logits else None
        self.classifier = GoogLeNetClassifier(chs, num_classes, self.aux_in, width, rngs=rngs) if num_classes else None

    @property
    def has_aux(self) -> bool:
        return self.classifier is not None and self.classifier.aux is not None

    def forward_features_aux(self, x: jax.Array) -> tuple[jax.Array, tuple[jax.Array, ...]]:
        """The final feature map and, when built with aux heads, the inception4a and 4d maps they read."""
        x = self.inception3(self.stem(x))
        x, taps = self.inception4.forward_taps(x, _AUX_TAPS if self.aux_in else ())
        return self.inception5(x), tuple(taps)

    def new_aux_classifiers(self, num_classes: int, rngs: nnx.Rngs) -> AuxClassifiers | None:
        """Fresh auxiliary heads for a new ``num_classes`` head (``googlenet_aux`` only)."""
        return AuxClassifiers(self.aux_in, num_classes, self.width, rngs=rngs) if self.aux_in else None

    def forward_train(self, x: jax.Array) -> tuple[jax.Array, tuple[jax.Array, ...]]:
        """``(logits, aux)``: the main logits as ``model(x)`` gives them, and the auxiliary logits ``(aux1, aux2)``
        when the model has aux heads and is in train mode (their dropout active), else ``()``."""
        aux = self.classifier.aux if self.classifier is not None else None
        if not (aux is not None and aux.training):
            return self(x), ()
        feats, taps = self.forward_features_aux(x)
        return self.forward_head(feats), aux(taps)


_GOOGLENET: dict[str, Any] = dict(
    family="googlenet",
    paper="Szegedy et al., Going Deeper with Convolutions, CVPR 2015",
    year=2015,
    num_classes=1000,
    in_chans=3,
    img_size=224,
    stages=GoogLeNet.stage_names,
    bench_config=dict(in_chans=1, img_size=32, width=0.25),
)


@register_model(params=6_624_904, **_GOOGLENET)
def googlenet(aux_logits: bool = False, **kwargs: Any) -> GoogLeNet:
    """GoogLeNet as torchvision, without the auxiliary classifiers (pass ``aux_logits=True`` to add them)."""
    return GoogLeNet(aux_logits=aux_logits, **kwargs)


@register_model(params=13_004_888, **_GOOGLENET)
def googlenet_aux(**kwargs: Any) -> GoogLeNet:
    """GoogLeNet with torchvision's two auxiliary classifiers (``aux_logits=True``), used by ``forward_train``."""
    return GoogLeNet(aux_logits=True, **kwargs)
