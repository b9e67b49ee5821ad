"""MAC counting (``cnnbench.engine.macs``): the zoo against SPEC §2's published figures, exact counts for hand-checked
convolutions and dense layers, and what is not a MAC. Abstract tracing only: nothing is compiled."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest
from flax import nnx

from cnnbench.engine.macs import canonical_gmacs, count_macs, jaxpr_macs
from cnnbench.zoo import create_model
from cnnbench.zoo.layers import adaptive_avg_pool, shifted_depthwise

# SPEC §2: GMACs per image at each model's canonical input size, as torchvision and timm publish them
SPEC_GMACS = {
    "lenet5": 0.000417,
    "alexnet": 0.714,
    "vgg11": 7.61,
    "vgg16": 15.47,
    "vgg19": 19.63,
    "googlenet": 1.50,
    "resnet18": 1.81,
    "resnet34": 3.66,
    "resnet50": 4.09,
    "seresnet50": 4.09,
    "densenet121": 2.83,
    "mobilenetv2": 0.301,
}

NHWC = ("NHWC", "HWIO", "NHWC")


def _f32(*shape: int) -> jax.ShapeDtypeStruct:
    return jax.ShapeDtypeStruct(shape, jnp.float32)


def _conv_macs(x_shape: tuple[int, ...], w_shape: tuple[int, ...], **kwargs) -> tuple[int, tuple[int, ...]]:
    """MACs and output shape of one ``conv_general_dilated`` with its kernel as an argument (a learned weight)."""

    def conv(x: jax.Array, w: jax.Array) -> jax.Array:
        return jax.lax.conv_general_dilated(x, w, dimension_numbers=NHWC, **kwargs)

    closed = jax.make_jaxpr(conv)(_f32(*x_shape), _f32(*w_shape))
    return jaxpr_macs(closed), tuple(closed.out_avals[0].shape)


@pytest.mark.parametrize("name", sorted(SPEC_GMACS))
def test_zoo_within_5_percent_of_spec(name: str) -> None:
    gmacs = canonical_gmacs(name)
    assert gmacs == pytest.approx(SPEC_GMACS[name], rel=0.05)


class Tiny(nnx.Module):
    """3×3 "same" conv (3 → 8, bias) → BN → ReLU → adaptive average pool to 2×2 → dense 32 → 10."""

    def __init__(self, *, rngs: nnx.Rngs) -> None:
        self.conv = nnx.Conv(3, 8, (3, 3), padding="SAME", rngs=rngs)
        self.bn = nnx.BatchNorm(8, rngs=rngs)
        self.fc = nnx.Linear(32, 10, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = adaptive_avg_pool(nnx.relu(self.bn(self.conv(x))), 2)  # an einsum with constant matrices: pooling
        return self.fc(x.reshape(x.shape[0], -1))


def test_tiny_conv_dense_model_exact() -> None:
    model = nnx.eval_shape(lambda: Tiny(rngs=nnx.Rngs(0)))
    model.eval()
    # conv: 8·8 positions × 8 out channels × 3·3 taps × 3 in channels (padded taps count); dense: 32 × 10.
    # BN's per-channel scale, the ReLU, the bias adds and the pooling einsum are not MACs.
    assert count_macs(model, (1, 8, 8, 3)) == 8 * 8 * 8 * 9 * 3 + 32 * 10 == 14_144


def test_count_is_independent_of_the_trace_batch() -> None:
    tiny = nnx.eval_shape(lambda: Tiny(rngs=nnx.Rngs(0)))
    tiny.eval()
    assert count_macs(tiny, (5, 8, 8, 3)) == 5 * count_macs(tiny, (1, 8, 8, 3))
    resnet = nnx.eval_shape(lambda: create_model("resnet18", num_classes=10, in_chans=1, img_size=32))
    resnet.eval()
    assert count_macs(resnet, (3, 32, 32, 1)) == 3 * count_macs(resnet, (1, 32, 32, 1))


def test_grouped_and_depthwise_conv_count_per_group() -> None:
    # 2 groups of 2 → 3 channels: 8·8 positions × 6 out channels × 9 taps × 2 in channels per group
    macs, shape = _conv_macs((1, 8, 8, 4), (3, 3, 2, 6), window_strides=(1, 1), padding="SAME", feature_group_count=2)
    assert shape == (1, 8, 8, 6) and macs == 64 * 6 * 9 * 2 == 6_912
    # depthwise: one input channel per group
    macs, _ = _conv_macs((1, 8, 8, 4), (3, 3, 1, 4), window_strides=(1, 1), padding="SAME", feature_group_count=4)
    assert macs == 64 * 4 * 9 == 2_304


@pytest.mark.parametrize("stride", [1, 2])
def test_shifted_depthwise_counts_as_the_grouped_conv_it_replaces(stride: int) -> None:
    pads = ((1, 1), (1, 1))
    x, w = _f32(2, 9, 9, 5), _f32(3, 3, 1, 5)
    shifted = jaxpr_macs(jax.make_jaxpr(lambda x, w: shifted_depthwise(x, w, stride, pads))(x, w))
    grouped, shape = _conv_macs(
        (2, 9, 9, 5), (3, 3, 1, 5), window_strides=(stride, stride), padding=pads, feature_group_count=5
    )
    side = 9 if stride == 1 else 5
    assert shape == (2, side, side, 5) and shifted == grouped == 2 * side * side * 5 * 9


def test_stride_padding_and_dilation_exact() -> None:
    # H: (9 + 1 + 0 − (2·(3−1) + 1)) // 2 + 1 = 3 rows; W: (9 + 2 + 2 − 3) // 2 + 1 = 6 columns; padded taps count
    macs, shape = _conv_macs(
        (1, 9, 9, 2), (3, 3, 2, 5), window_strides=(2, 2), padding=((1, 0), (2, 2)), rhs_dilation=(2, 1)
    )
    assert shape == (1, 3, 6, 5) and macs == 3 * 6 * 5 * 9 * 2 == 1_620
    # valid, stride 3: 3×3 outputs of 9 taps × 2 channels
    macs, shape = _conv_macs((1, 9, 9, 2), (3, 3, 2, 1), window_strides=(3, 3), padding="VALID")
    assert shape == (1, 3, 3, 1) and macs == 9 * 9 * 2 == 162


def test_transposed_conv_counts_input_taps_not_inserted_zeros() -> None:
    def up(x: jax.Array, w: jax.Array) -> jax.Array:
        return jax.lax.conv_transpose(x, w, (2, 2), "VALID", dimension_numbers=NHWC)

    closed = jax.make_jaxpr(up)(_f32(1, 4, 4, 2), _f32(3, 3, 2, 5))
    assert closed.out_avals[0].shape == (1, 9, 9, 5)
    # every input element meets every tap once: 16 inputs × 9 taps × 2 in × 5 out channels (ConvTranspose's count)
    assert jaxpr_macs(closed) == 16 * 9 * 2 * 5 == 1_440


def test_dense_jit_scan_and_cond() -> None:
    x, w = _f32(2, 4), _f32(4, 4)
    assert jaxpr_macs(jax.make_jaxpr(jax.jit(lambda x, w: x @ w))(x, w)) == 2 * 4 * 4

    def scanned(x: jax.Array, w: jax.Array) -> jax.Array:
        return jax.lax.scan(lambda h, _: (jnp.tanh(h @ w), None), x, None, length=3)[0]

    assert jaxpr_macs(jax.make_jaxpr(scanned)(x, w)) == 3 * 2 * 4 * 4

    def branches(x: jax.Array, w: jax.Array) -> jax.Array:
        return jax.lax.cond(x.sum() > 0, lambda: x @ w @ w, lambda: x)

    assert jaxpr_macs(jax.make_jaxpr(branches)(x, w)) == 2 * 2 * 4 * 4  # the dearer branch


def test_pooling_and_constants_are_not_macs() -> None:
    assert count_macs(lambda x: adaptive_avg_pool(x, 3), (1, 8, 8, 4)) == 0
    assert count_macs(lambda x: jnp.mean(x, axis=(1, 2)) * 2.0 + x.max(), (1, 8, 8, 4)) == 0
