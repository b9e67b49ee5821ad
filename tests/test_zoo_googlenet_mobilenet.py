"""GoogLeNet (with and without its auxiliary classifiers) and MobileNetV2 against torchvision: exact parameter
counts, aux logits only in training, depthwise convs, inverted-residual skips, and benchmark-scale training."""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from cnnbench.zoo import count_params, create_model, get_spec
from cnnbench.zoo.googlenet import GoogLeNet, adaptive_avg_pool, ceil_pool_size, max_pool_ceil
from cnnbench.zoo.mobilenetv2 import InvertedResidual, MobileNetV2, depthwise_conv, make_divisible


@functools.cache
def bench_model(name: str, num_classes: int = 10) -> nnx.Module:
    return create_model(name, num_classes=num_classes, **get_spec(name).bench_config)


def bench_input(batch: int = 2) -> jax.Array:
    return jax.random.normal(jax.random.key(1), (batch, 32, 32, 1))


# --- canonical counts (torchvision 0.29.1) -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "params"), [("googlenet", 6_624_904), ("googlenet_aux", 13_004_888), ("mobilenetv2", 3_504_872)]
)
def test_canonical_trainable_counts(abstract: Callable[..., nnx.Module], name: str, params: int) -> None:
    assert get_spec(name).params == params
    assert count_params(abstract(name))[0] == params


def test_googlenet_aux_is_also_a_build_option() -> None:
    spec = get_spec("googlenet")
    config = dict(num_classes=1000, in_chans=3, img_size=224, width=1.0)
    model = nnx.eval_shape(lambda: spec.build(**config, aux_logits=True, rngs=nnx.Rngs(0)))
    assert count_params(model)[0] == 13_004_888
    assert model.classifier.aux.aux1.fc1.kernel.shape == (2048, 1024)
    assert model.classifier.aux.aux2.conv.conv.kernel.shape == (1, 1, 528, 128)  # fed from inception4d


def test_stages_and_feature_maps(abstract: Callable[..., nnx.Module]) -> None:
    g, m = abstract("googlenet"), abstract("mobilenetv2")
    assert g.stage_names == ("stem", "inception3", "inception4", "inception5")
    assert m.stage_names == ("stem", *(f"stage{i}" for i in range(1, 8)), "head")
    assert g.feature_shape == (7, 7, 1024) and m.feature_shape == (7, 7, 1280)
    assert isinstance(g, GoogLeNet) and isinstance(m, MobileNetV2)


def test_aux_heads_belong_to_the_classifier(abstract: Callable[..., nnx.Module]) -> None:
    model = abstract("googlenet_aux", num_classes=0)
    assert model.classifier is None and count_params(model)[0] == 6_624_904 - (1024 * 1000 + 1000)


# --- GoogLeNet building blocks -------------------------------------------------------------------------------


def test_ceil_mode_pooling_matches_pytorch(abstract: Callable[..., nnx.Module]) -> None:
    # torchvision's pools at 224 px: 112 -> 56 -> 28 -> 14 -> 7; at 32 px: 16 -> 8 -> 4 -> 2 -> 1, never empty.
    assert [ceil_pool_size(n, 3, 2) for n in (112, 56, 28, 16, 8, 4)] == [56, 28, 14, 8, 4, 2]
    assert ceil_pool_size(14, 2, 2) == 7 and ceil_pool_size(2, 2, 2) == 1 and ceil_pool_size(1, 2, 2) == 1
    x = jnp.arange(5 * 5, dtype=jnp.float32).reshape(1, 5, 5, 1)
    y = max_pool_ceil(x, 2, 2)  # ceil mode keeps the last partial window (row/column 4)
    assert y.shape == (1, 3, 3, 1) and float(y[0, 2, 2, 0]) == 24.0
    assert abstract("googlenet", img_size=32, in_chans=1).feature_shape == (1, 1, 1024)


def test_adaptive_avg_pool_matches_pytorch_bins() -> None:
    x = jax.random.normal(jax.random.key(0), (1, 14, 14, 3))
    y = adaptive_avg_pool(x, 4)  # PyTorch bins of 14 -> 4: [0,4), [3,7), [7,11), [10,14)
    np.testing.assert_allclose(y[0, 1, 2], x[0, 3:7, 7:11].mean(axis=(0, 1)), rtol=1e-5, atol=1e-6)
    small = jnp.arange(4.0).reshape(1, 2, 2, 1)  # smaller than 4x4 (32 px input): cells are replicated
    replicated = np.repeat(np.repeat([[0, 1], [2, 3]], 2, 0), 2, 1)
    np.testing.assert_array_equal(adaptive_avg_pool(small, 4)[0, :, :, 0], replicated)


@nnx.jit
def forward_train(model: GoogLeNet, x: jax.Array) -> tuple[jax.Array, tuple[jax.Array, ...]]:
    return model.forward_train(x)


@nnx.jit
def forward_train_and_call(model: GoogLeNet, x: jax.Array) -> tuple[tuple[jax.Array, tuple[jax.Array, ...]], jax.Array]:
    """``forward_train`` and ``__call__`` on the same input, in one compiled program."""
    return model.forward_train(x), model(x)


def test_googlenet_aux_init_follows_torchvision_and_aux_logits_only_in_train_mode() -> None:
    """One benchmark-scale GoogLeNet with auxiliary classifiers (building it compiles every initialiser, so it is
    built once for both checks): torchvision's init, and auxiliary logits in training mode only."""
    model, x = bench_model("googlenet_aux"), bench_input()
    kernel = np.asarray(model.inception4.c.branch2.layers[1].conv.kernel[...])
    assert kernel.std() == pytest.approx(0.01, rel=0.05) and abs(kernel.mean()) < 1e-3
    bn = model.stem.conv1.bn
    assert (bn.epsilon, bn.momentum) == (1e-3, 0.9)
    assert model.stem.conv1.conv.bias is None
    fc = model.classifier.fc
    assert np.asarray(fc.kernel[...]).std() == pytest.approx(0.01, rel=0.2)

    model.train()
    logits, aux = forward_train(model, x)
    assert logits.shape == (2, 10) and len(aux) == 2
    assert all(a.shape == (2, 10) and bool(jnp.isfinite(a).all()) for a in aux)
    model.eval()
    (eval_logits, aux), called = forward_train_and_call(model, x)
    assert aux == () and eval_logits.shape == (2, 10)
    np.testing.assert_allclose(eval_logits, called, rtol=1e-5, atol=1e-6)
    model.train()


def test_googlenet_without_aux_heads_never_returns_aux() -> None:
    model = bench_model("googlenet")
    assert model.classifier.aux is None and not model.has_aux
    model.train()
    logits, aux = forward_train(model, bench_input())
    assert aux == () and logits.shape == (2, 10)


# --- MobileNetV2 building blocks -----------------------------------------------------------------------------


def blocks(model: MobileNetV2) -> list[InvertedResidual]:
    return [block for i in range(1, 8) for block in getattr(model, f"stage{i}").layers]


def test_make_divisible_matches_torchvision(abstract: Callable[..., nnx.Module]) -> None:
    assert [make_divisible(32 * w) for w in (1.0, 0.75, 0.5, 0.35)] == [32, 24, 16, 16]
    assert make_divisible(1280 * max(1.0, 0.5)) == 1280 and make_divisible(1280 * 1.4) == 1792
    assert abstract("mobilenetv2", width=0.5).stage6.layers[0].project.conv.kernel.shape == (1, 1, 288, 80)


def test_depthwise_convs_are_depthwise(abstract: Callable[..., nnx.Module]) -> None:
    model = abstract("mobilenetv2")
    found = blocks(model)
    assert len(found) == 17
    for block in found:
        kernel = block.depthwise.conv.kernel
        c = kernel.shape[-1]
        assert kernel.shape == (3, 3, 1, c) and block.depthwise.conv.feature_group_count == c
        assert block.project.act is None  # linear bottleneck
    assert found[0].expand is None and found[1].expand.conv.kernel.shape == (1, 1, 16, 96)  # t = 1, then t = 6


def test_mobilenetv2_blocks_and_init_at_benchmark_scale(abstract: Callable[..., nnx.Module]) -> None:
    """One benchmark-scale MobileNetV2 (building it compiles every initialiser, so it is built once for all three
    checks): the depthwise conv evaluates as the grouped conv, inverted residuals add the skip where shapes match,
    and the init follows torchvision."""
    model = bench_model("mobilenetv2")

    # depthwise evaluation equals the grouped conv
    conv = model.stage3.layers[0].depthwise.conv  # 3x3/2 depthwise over 96 channels
    x = jax.random.normal(jax.random.key(2), (2, 9, 8, conv.in_features))
    for stride in (1, 2):
        reference = jax.lax.conv_general_dilated(
            x,
            conv.kernel[...],
            (stride, stride),
            ((1, 1), (1, 1)),
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
            feature_group_count=conv.in_features,
        )
        np.testing.assert_allclose(depthwise_conv(x, conv.kernel[...], stride), reference, rtol=1e-5, atol=1e-5)
    # and what the nnx.Conv module itself computes (stride 2)
    np.testing.assert_allclose(depthwise_conv(x, conv.kernel[...], 2), conv(x), rtol=1e-5, atol=1e-5)

    # the inverted residual adds the skip where shapes match
    found = blocks(abstract("mobilenetv2"))
    assert sum(b.use_residual for b in found) == 10  # as torchvision: every repeat after a group's first block
    model.eval()
    block = model.stage3.layers[1]  # 32 -> 32 channels at stride 1 (at width 0.5: 16 -> 16)
    assert block.use_residual and not model.stage3.layers[0].use_residual
    x = jax.random.normal(jax.random.key(3), (2, 4, 4, block.expand.conv.in_features))
    branch = block.project(block.depthwise(block.expand(x)))
    np.testing.assert_allclose(block(x), x + branch, rtol=1e-5, atol=1e-5)
    model.train()

    # the init follows torchvision
    kernel = np.asarray(model.head.conv.kernel[...])  # 1x1, 80 -> 1280: fan_out = 1280
    assert kernel.std() == pytest.approx((2 / 1280) ** 0.5, rel=0.05)
    fc = model.classifier.layers[1]
    assert np.asarray(fc.kernel[...]).std() == pytest.approx(0.01, rel=0.1)
    assert (np.asarray(fc.bias[...]) == 0).all()
    assert model.stem.bn.epsilon == 1e-5


# --- benchmark scale ------------------------------------------------------------------------------------------

# Pinned so a change to the benchmark-scale models is deliberate (10 classes, as tests/test_zoo.py builds them).
BENCH_PARAMS = {"googlenet": (355_490, 359_130), "mobilenetv2": (700_202, 718_746)}


@pytest.mark.parametrize("name", sorted(BENCH_PARAMS))
def test_benchmark_scale_param_counts_and_base(abstract: Callable[..., nnx.Module], name: str) -> None:
    assert count_params(abstract(name, num_classes=10, **get_spec(name).bench_config)) == BENCH_PARAMS[name]
    base = abstract(name, num_classes=0, **get_spec(name).bench_config)
    assert base.feature_shape[:2] == (1, 1)
