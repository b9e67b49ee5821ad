"""AlexNet and VGG: reference counts, LRN and adaptive pooling against their formulas, dropout and BatchNorm
modes, init, and a benchmark-scale train step. Canonical models are only built abstractly (``nnx.eval_shape``)."""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from cnnbench.zoo import count_params, create_model, get_spec
from cnnbench.zoo.alexnet import LocalResponseNorm, adaptive_avg_pool, local_response_norm

CANONICAL = {
    "alexnet": 61_100_840,
    "vgg11": 132_863_336,
    "vgg16": 138_357_544,
    "vgg19": 143_667_240,
    "vgg11_bn": 132_868_840,
    "vgg16_bn": 138_365_992,
    "vgg19_bn": 143_678_248,
}
# Benchmark scale (in_chans=1, img_size=32, bench width), base only (num_classes=0): (trainable, total).
BENCH_BASE = {
    "alexnet": (155_056, 155_056),
    "vgg11": (144_416, 144_416),
    "vgg16": (230_424, 230_424),
    "vgg19": (313_528, 313_528),
    "vgg16_bn": (231_480, 232_536),
}


@functools.cache
def bench_model(name: str) -> nnx.Module:
    """The benchmark-scale model with 10 classes, built once per session (building compiles its initialisers)."""
    return create_model(name, num_classes=10, **get_spec(name).bench_config)


@pytest.mark.parametrize("name", sorted(CANONICAL))
def test_canonical_counts(abstract: Callable[..., nnx.Module], name: str) -> None:
    assert get_spec(name).params == CANONICAL[name]
    model = abstract(name)
    trainable, total = count_params(model)
    assert trainable == CANONICAL[name]
    bn = name.endswith("_bn")
    assert (total > trainable) == bn
    assert bool(nnx.state(model, nnx.BatchStat)) == bn


@pytest.mark.parametrize("name", sorted(BENCH_BASE))
def test_benchmark_scale_base(abstract: Callable[..., nnx.Module], name: str) -> None:
    base = abstract(name, num_classes=0, **get_spec(name).bench_config)
    assert count_params(base) == BENCH_BASE[name]
    assert base.feature_shape == (1, 1, 64)  # a small map: heads see the real 1×1 map, not its 6×6/7×7 copies


def test_stages(abstract: Callable[..., nnx.Module]) -> None:
    assert get_spec("alexnet").stages == ("conv1", "conv2", "conv3", "conv4", "conv5")
    assert all(get_spec(n).stages == tuple(f"block{i}" for i in range(1, 6)) for n in CANONICAL if n != "alexnet")
    model = abstract("vgg16")
    assert [len([m for m in getattr(model, s).layers if isinstance(m, nnx.Conv)]) for s in model.stage_names] == [
        2,
        2,
        3,
        3,
        3,
    ]


def test_lrn_matches_the_paper_formula() -> None:
    x = np.asarray(jax.random.normal(jax.random.key(0), (2, 3, 3, 7))) * 30  # large enough for the sum to matter
    n, alpha, beta, k = 5, 1e-4, 0.75, 2.0
    expected = np.empty_like(x)
    c = x.shape[-1]
    for i in range(c):
        lo, hi = max(0, i - n // 2), min(c - 1, i + n // 2)
        expected[..., i] = x[..., i] / (k + alpha * (x[..., lo : hi + 1] ** 2).sum(-1)) ** beta
    np.testing.assert_allclose(local_response_norm(jnp.asarray(x)), expected, rtol=1e-5)
    np.testing.assert_allclose(LocalResponseNorm()(jnp.asarray(x)), expected, rtol=1e-5)
    assert not nnx.state(LocalResponseNorm(), nnx.Param)
    assert not nnx.state(LocalResponseNorm())


def test_alexnet_applies_lrn_after_the_first_two_convs(abstract: Callable[..., nnx.Module]) -> None:
    model = abstract("alexnet")
    assert isinstance(model.conv1.layers[2], LocalResponseNorm) and isinstance(model.conv2.layers[2], LocalResponseNorm)
    upper = [m for s in ("conv3", "conv4", "conv5") for m in getattr(model, s).layers]
    assert not any(isinstance(m, LocalResponseNorm) for m in upper)


def torch_adaptive_avg_pool(x: np.ndarray, out: int) -> np.ndarray:
    """PyTorch's AdaptiveAvgPool2d written out: cell i spans [floor(i·in/out), ceil((i+1)·in/out))."""
    n, h, w, c = x.shape
    y = np.empty((n, out, out, c), x.dtype)
    for i in range(out):
        h0, h1 = int(np.floor(i * h / out)), int(np.ceil((i + 1) * h / out))
        for j in range(out):
            w0, w1 = int(np.floor(j * w / out)), int(np.ceil((j + 1) * w / out))
            y[:, i, j] = x[:, h0:h1, w0:w1].mean(axis=(1, 2))
    return y


@pytest.mark.parametrize(("size", "out"), [(13, 6), (1, 6), (2, 7), (5, 7), (7, 7), (14, 7)])
def test_adaptive_avg_pool_matches_pytorch(size: int, out: int) -> None:
    x = np.asarray(jax.random.normal(jax.random.key(size), (2, size, size, 3)))
    expected = torch_adaptive_avg_pool(x, out)
    np.testing.assert_allclose(adaptive_avg_pool(jnp.asarray(x), out), expected, rtol=1e-5, atol=1e-6)


def test_adaptive_pool_of_a_1x1_map_repeats_it() -> None:
    x = jnp.arange(3.0).reshape(1, 1, 1, 3)
    y = adaptive_avg_pool(x, 6)
    assert y.shape == (1, 6, 6, 3) and bool((y == x).all())


def test_alexnet_small_input_pools_to_1x1(abstract: Callable[..., nnx.Module]) -> None:
    # 32 px: conv1 7×7, pool 3×3, conv2 3×3, pool 1×1, conv5 1×1 -> padded last pool keeps 1×1 (not 0×0).
    assert abstract("alexnet", img_size=32, in_chans=1).feature_shape == (1, 1, 256)
    assert abstract("alexnet").feature_shape == (6, 6, 256)
    with pytest.raises(ValueError, match="img_size"):
        create_model("alexnet", img_size=6)


def test_vgg_refuses_inputs_below_32(abstract: Callable[..., nnx.Module]) -> None:
    assert abstract("vgg11", img_size=64).feature_shape == (2, 2, 512)
    with pytest.raises(ValueError, match="img_size >= 32"):
        create_model("vgg11", img_size=31)


@pytest.mark.parametrize("name", ["alexnet", "vgg11"])
def test_dropout_only_in_train_mode(name: str) -> None:
    model = bench_model(name)
    feats = jax.random.normal(jax.random.key(0), (4, *model.feature_shape))
    assert sum(isinstance(m, nnx.Dropout) for m in model.classifier.layers) == 2
    model.train()
    a, b = model.forward_head(feats), model.forward_head(feats)
    assert not np.allclose(a, b)
    model.eval()
    c, d = model.forward_head(feats), model.forward_head(feats)
    np.testing.assert_array_equal(c, d)
    # Eval equals the classifier with dropout removed.
    layers = [m for m in model.classifier.layers if not isinstance(m, nnx.Dropout)]
    x = adaptive_avg_pool(feats, 6 if name == "alexnet" else 7).reshape(4, -1)
    for layer in layers:
        x = layer(x)
    np.testing.assert_allclose(c, x, rtol=1e-5, atol=1e-6)


def test_head_pool_is_identity_at_canonical_size(abstract: Callable[..., nnx.Module]) -> None:
    assert abstract("alexnet").feature_shape == (6, 6, 256) and abstract("vgg11").feature_shape == (7, 7, 512)
    for name, size in (("alexnet", 6), ("vgg11", 7)):
        base = abstract(name, num_classes=0, width=0.03)  # without a classifier, forward_head reads no variable
        feats = jax.random.normal(jax.random.key(0), (2, size, size, base.num_features))
        np.testing.assert_array_equal(base.forward_head(feats), feats.reshape(2, -1))


def test_init_follows_torchvision() -> None:
    a = bench_model("alexnet")
    conv = a.conv3.layers[0]  # 3×3×48 -> 96; torch default: uniform ±1/sqrt(fan_in) for weight and bias
    bound = (3 * 3 * 48) ** -0.5
    for p in (conv.kernel, conv.bias):
        v = np.asarray(p[...])
        assert np.abs(v).max() <= bound and v.std() == pytest.approx(bound / 3**0.5, rel=0.1)
    v = bench_model("vgg11_bn")
    conv = v.block4.layers[0]  # 3×3×32 -> 64, kaiming normal fan_out
    assert np.asarray(conv.kernel[...]).std() == pytest.approx((2 / (3 * 3 * 64)) ** 0.5, rel=0.1)
    assert (np.asarray(conv.bias[...]) == 0).all()
    assert (v.block4.layers[1].momentum, v.block4.layers[1].epsilon) == (0.9, 1e-5)
    fc = v.classifier.layers[0]
    assert np.asarray(fc.kernel[...]).std() == pytest.approx(0.01, rel=0.05)
    assert (np.asarray(fc.bias[...]) == 0).all()
