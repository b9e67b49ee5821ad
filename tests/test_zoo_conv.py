"""The zoo's convolution as a matrix product (``layers.patch_conv``): the same numbers as XLA's convolution, forward
and backward, on every geometry the zoo uses; the fallback where it does not apply; every family built with it."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from cnnbench.zoo import create_model, layers, list_models
from cnnbench.zoo.xception import depthwise_conv

DN = ("NHWC", "HWIO", "NHWC")


def _value_and_grads(conv, x, w, strides, padding):
    dn = jax.lax.conv_dimension_numbers(x.shape, w.shape, DN)

    def loss(x, w):  # tanh: every output element gets its own cotangent
        return jnp.sum(jnp.tanh(conv(x, w, strides, padding, dimension_numbers=dn)))

    return jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))(x, w)


@pytest.mark.parametrize(
    ("x_shape", "kernel", "strides", "padding"),
    [
        ((2, 32, 32, 1), (5, 5, 1, 6), (1, 1), "VALID"),  # LeNet C1
        ((2, 32, 32, 1), (7, 7, 1, 16), (2, 2), ((3, 3), (3, 3))),  # a ResNet stem
        ((2, 8, 8, 16), (3, 3, 16, 32), (2, 2), ((1, 1), (1, 1))),  # a strided 3×3
        ((2, 7, 9, 5), (3, 3, 5, 4), (1, 1), "SAME"),  # odd, non-square map
        ((2, 8, 8, 16), (1, 1, 16, 32), (2, 2), ((0, 0), (0, 0))),  # a projection shortcut
        ((2, 9, 9, 3), (3, 3, 3, 8), (2, 2), ((0, 1), (0, 1))),  # asymmetric padding (Keras's "same" at stride 2)
        ((1, 6, 6, 2), (6, 6, 2, 3), (1, 1), "VALID"),  # a kernel as large as the map: one output pixel
    ],
)
def test_patch_conv_gives_xla_convolutions_values_and_gradients(x_shape, kernel, strides, padding) -> None:
    x = jax.random.normal(jax.random.key(0), x_shape)
    w = jax.random.normal(jax.random.key(1), kernel) / np.sqrt(np.prod(kernel[:3]))
    (value, grads), (expected, expected_grads) = (
        _value_and_grads(fn, x, w, strides, padding) for fn in (layers.patch_conv, jax.lax.conv_general_dilated)
    )
    np.testing.assert_allclose(value, expected, rtol=1e-5)
    for g, e in zip(grads, expected_grads, strict=True):
        assert g.shape == e.shape
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-5)
    dn = jax.lax.conv_dimension_numbers(x_shape, kernel, DN)
    jaxpr = str(jax.make_jaxpr(lambda x, w: layers.patch_conv(x, w, strides, padding, dimension_numbers=dn))(x, w))
    assert "conv_general_dilated" not in jaxpr and "dot_general" in jaxpr  # really a product, not a convolution


def test_patch_conv_leaves_grouped_dilated_and_large_convolutions_to_xla() -> None:
    def ops(x_shape, kernel, **kw):
        x, w = jnp.zeros(x_shape), jnp.zeros(kernel)
        dn = jax.lax.conv_dimension_numbers(x_shape, kernel, DN)
        return str(
            jax.make_jaxpr(lambda x, w: layers.patch_conv(x, w, (1, 1), "SAME", dimension_numbers=dn, **kw))(x, w)
        )

    assert "conv_general_dilated" in ops((1, 8, 8, 4), (3, 3, 2, 4), feature_group_count=2)
    assert "conv_general_dilated" in ops((1, 8, 8, 4), (3, 3, 4, 4), rhs_dilation=(2, 2))
    big = (1, 224, 224, 64)  # a canonical-scale VGG map: 224·224·9·64 patch elements per image
    assert layers.PATCH_LIMIT < 224 * 224 * 9 * 64
    assert "conv_general_dilated" in ops(big, (3, 3, 64, 64))
    assert "conv_general_dilated" not in ops(big, (1, 1, 64, 256))  # a 1×1's patches are its input: always a dot
    assert "conv_general_dilated" not in ops((1, 8, 8, 4), (3, 3, 4, 4))


@pytest.mark.parametrize("arch", list_models())
def test_every_zoo_convolution_runs_through_patch_conv_or_the_depthwise_path(arch) -> None:
    model = nnx.eval_shape(lambda: create_model(arch, num_classes=0, img_size=32, in_chans=1, width=0.25))
    convs = [m for _, m in nnx.iter_modules(model) if isinstance(m, nnx.Conv)]
    assert convs
    for conv in convs:
        grouped = conv.feature_group_count > 1
        expected = (layers.patch_conv, depthwise_conv) if grouped else (layers.patch_conv,)
        assert conv.conv_general_dilated in expected, (arch, conv.kernel_shape)
