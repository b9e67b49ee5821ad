"""Xception, DenseNet-121 and SE-ResNet-50: reference counts, the blocks that define each family, and the
benchmark scale (forward and one jitted training step at 32×32×1).

Canonical models are only built abstractly (``nnx.eval_shape``).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax import lax

from cnnbench.zoo import count_params, create_model, get_spec
from cnnbench.zoo.densenet import DenseBlock
from cnnbench.zoo.resnet import SEModule, make_divisible
from cnnbench.zoo.xception import SeparableConv, depthwise_conv

NEW = ("xception", "densenet121", "seresnet50")


@pytest.mark.parametrize(
    ("name", "params"),
    [("xception", 22_855_952), ("densenet121", 7_978_856), ("seresnet50", 28_088_024), ("resnet50", 25_557_032)],
)
def test_reference_trainable_counts(abstract: Callable[..., nnx.Module], name: str, params: int) -> None:
    assert count_params(abstract(name))[0] == params == get_spec(name).params


def test_xception_is_separable_with_keras_layout(abstract: Callable[..., nnx.Module]) -> None:
    model = abstract("xception")
    sep = model.entry1.sep1.sepconv  # block2_sepconv1: 64 -> 128
    assert sep.depthwise.kernel.shape == (3, 3, 1, 64) and sep.depthwise.feature_group_count == 64
    assert sep.pointwise.kernel.shape == (1, 1, 64, 128) and sep.pointwise.feature_group_count == 1
    assert sep.depthwise.bias is None and sep.pointwise.bias is None
    assert model.middle.layers[7].sep3.sepconv.depthwise.kernel.shape == (3, 3, 1, 728)
    assert model.exit.sep2.sepconv.pointwise.kernel.shape == (1, 1, 1536, 2048)
    assert model.entry3.residual.conv.kernel.shape == (1, 1, 256, 728) and model.entry3.residual.conv.strides == 2
    assert len(model.middle.layers) == 8
    bn = model.stem.conv1.bn
    assert (bn.momentum, bn.epsilon) == (0.9, 1e-3)  # Keras's epsilon, PyTorch's momentum (layers.batch_norm)
    assert model.feature_shape == (10, 10, 2048)  # 299 -> 149 -> 147 -> 74 -> 37 -> 19 -> 10
    assert abstract("xception", img_size=32, in_chans=1, width=0.25).feature_shape == (1, 1, 512)


def test_depthwise_conv_matches_grouped_convolution() -> None:
    x = jax.random.normal(jax.random.key(0), (2, 5, 6, 7))
    k = jax.random.normal(jax.random.key(1), (3, 3, 1, 7))
    expected = lax.conv_general_dilated(
        x, k, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=7
    )
    np.testing.assert_allclose(depthwise_conv(x, k, (1, 1), "SAME", feature_group_count=7), expected, atol=1e-5)
    sep = SeparableConv(7, 4, rngs=nnx.Rngs(0))
    one_channel = x * (jnp.arange(7) == 2)  # depthwise: channel 2 stays channel 2
    dw = sep.depthwise(one_channel)
    assert bool((dw[..., 2] != 0).any()) and bool((jnp.delete(dw, 2, axis=-1) == 0).all())
    pw = sep.pointwise.kernel[...][0, 0]
    np.testing.assert_allclose(sep(x), jnp.einsum("nhwc,cd->nhwd", sep.depthwise(x), pw), atol=1e-5)


def test_se_module_scales_channels_by_a_sigmoid_gate() -> None:
    se = SEModule(32, rngs=nnx.Rngs(0))
    assert se.fc1.kernel.shape == (1, 1, 32, 8) and se.fc2.kernel.shape == (1, 1, 8, 32)  # make_divisible(2) = 8
    assert se.fc1.bias.shape == (8,) and se.fc2.bias.shape == (32,)
    x = jax.random.normal(jax.random.key(2), (2, 3, 3, 32))
    s = x.mean(axis=(1, 2))
    hidden = jnp.maximum(s @ se.fc1.kernel[...][0, 0] + se.fc1.bias[...], 0)
    gate = jax.nn.sigmoid(hidden @ se.fc2.kernel[...][0, 0] + se.fc2.bias[...])
    np.testing.assert_allclose(se(x), x * gate[:, None, None, :], rtol=1e-5, atol=1e-6)
    assert [make_divisible(c / 16) for c in (256, 512, 1024, 2048, 64)] == [16, 32, 64, 128, 8]


def test_se_sits_in_seresnet50_bottlenecks_only(abstract: Callable[..., nnx.Module]) -> None:
    se_model, plain = abstract("seresnet50"), abstract("resnet50")
    assert se_model.layer4.layers[2].se.fc1.kernel.shape == (1, 1, 2048, 128)
    assert se_model.layer1.layers[0].se.fc2.kernel.shape == (1, 1, 16, 256)
    assert all(block.se is None for stage in ("layer1", "layer4") for block in getattr(plain, stage).layers)
    assert se_model.stage_names == plain.stage_names


def test_dense_block_concatenates_growth_channels(abstract: Callable[..., nnx.Module]) -> None:
    block = DenseBlock(3, 10, 4, 4, rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(3), (2, 6, 6, 10))
    y = block(x)
    assert y.shape == (2, 6, 6, 10 + 3 * 4) and block.out_chs == 22
    np.testing.assert_array_equal(y[..., :10], x)  # the input passes through unchanged
    model = abstract("densenet121")
    assert model.dense1.out_chs == 64 + 6 * 32 and model.trans1.conv.kernel.shape == (1, 1, 256, 128)
    assert model.dense4.out_chs == 512 + 16 * 32 == model.num_features and model.feature_shape == (7, 7, 1024)
    assert model.dense1.layers.layers[0].conv1.kernel.shape == (1, 1, 64, 128)  # bn_size 4 × growth 32
    small = abstract("densenet121", width=0.25, in_chans=1, img_size=32)
    assert small.dense1.layers.layers[0].conv2.kernel.shape == (3, 3, 32, 8)  # growth 8
    assert small.feature_shape == (1, 1, 256)


def test_xception_init_follows_keras() -> None:
    xc = create_model("xception", num_classes=10, in_chans=1, img_size=32, width=0.25)
    pw = np.asarray(xc.middle.layers[0].sep1.sepconv.pointwise.kernel[...])  # glorot uniform, 182 -> 182
    assert np.abs(pw).max() <= (6 / (182 + 182)) ** 0.5 and (np.asarray(xc.classifier.bias[...]) == 0).all()


def test_densenet_init_follows_torchvision() -> None:
    dn = create_model("densenet121", num_classes=10, in_chans=1, img_size=32, width=0.25)
    k = np.asarray(dn.dense3.layers.layers[5].conv2.kernel[...])  # kaiming normal, fan_in = 3*3*32
    assert k.std() == pytest.approx((2 / (3 * 3 * 32)) ** 0.5, rel=0.05)
    assert (np.asarray(dn.classifier.bias[...]) == 0).all()
