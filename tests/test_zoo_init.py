"""The zoo's initialisers draw ``jax.nn.initializers``' weights bit for bit, compiling one sampler per size class."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial

import jax
import numpy as np
import pytest

from cnnbench.zoo import init

# dense and convolution kernels, odd and power-of-two sizes; and, where the initialiser takes them, a bias vector and
# a single value
KERNELS = [(120, 84), (5, 5, 6, 16), (3, 3, 64, 64), (1, 1, 480, 192), (7, 7, 1, 16), (4, 256)]
VECTORS = [(10,), (1,)]

PAIRS: dict[str, tuple[Callable, Callable]] = {
    "kaiming fan_out normal": (
        init.variance_scaling(2.0, "fan_out", "normal"),
        jax.nn.initializers.variance_scaling(2.0, "fan_out", "normal"),
    ),
    "fan_in normal": (
        init.variance_scaling(2.0, "fan_in", "normal"),
        jax.nn.initializers.variance_scaling(2.0, "fan_in", "normal"),
    ),
    "torch uniform": (
        init.variance_scaling(1 / 3, "fan_in", "uniform"),
        jax.nn.initializers.variance_scaling(1 / 3, "fan_in", "uniform"),
    ),
    "lecun normal (flax's default)": (init.lecun_normal(), jax.nn.initializers.lecun_normal()),
    "glorot uniform": (init.glorot_uniform(), jax.nn.initializers.glorot_uniform()),
    "normal 0.01": (init.normal(0.01), jax.nn.initializers.normal(0.01)),
    "uniform ±0.2": (init.uniform(-0.2, 0.2), partial(jax.random.uniform, minval=-0.2, maxval=0.2)),
}


@pytest.mark.parametrize("name", PAIRS)
def test_the_same_weights_as_jax_initializers_bit_for_bit(name: str) -> None:
    ours, theirs = PAIRS[name]
    shapes = KERNELS + VECTORS if name in ("normal 0.01", "uniform ±0.2") else KERNELS
    for i, shape in enumerate(shapes):
        key = jax.random.key(i)
        a, b = np.asarray(ours(key, shape, np.float32)), np.asarray(theirs(key, shape, np.float32))
        assert a.shape == shape and a.dtype == np.float32
        np.testing.assert_array_equal(a, b, err_msg=f"{name} {shape}")


@pytest.fixture
def compiles() -> Iterator[list[float]]:
    """The XLA compiles that happen while a test runs."""
    seen: list[float] = []

    def listen(event: str, duration: float, **_: object) -> None:
        if event == "/jax/core/compile/backend_compile_duration":
            seen.append(duration)

    jax.monitoring.register_event_duration_secs_listener(listen)
    yield seen
    jax.monitoring.unregister_event_duration_listener(listen)


def test_shapes_of_one_size_class_share_one_compiled_sampler(compiles: list[float]) -> None:
    kaiming = init.variance_scaling(2.0, "fan_out", "normal")
    kaiming(jax.random.key(0), (3, 3, 16, 40), np.float32)  # 5,760 values: the 8,192 class
    before = len(compiles)
    for i, shape in enumerate([(3, 3, 32, 24), (1, 1, 96, 80), (5, 5, 12, 25), (60, 100), (3, 3, 28, 31)]):
        kaiming(jax.random.key(i), shape, np.float32)
    assert len(compiles) == before


def test_unknown_mode_or_distribution_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown mode 'fan_geo'"):
        init.variance_scaling(1.0, "fan_geo", "normal")
    with pytest.raises(ValueError, match="unknown distribution 'cauchy'"):
        init.variance_scaling(1.0, "fan_in", "cauchy")
    with pytest.raises(ValueError, match="fans of a 1-d array"):
        init.lecun_normal()(jax.random.key(0), (10,))
