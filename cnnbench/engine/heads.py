"""Classifier heads that replace a pretrained model's original classifier (SPEC §5).

A head is an ``nnx.Module`` built from the base's feature-map shape and the target's class count, with the
loss it is trained with and the weight decay its optimizer group uses. Adding a head is one class here (or in
its own module) plus one ``@HEADS.register`` line.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, cast

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from cnnbench.registry import Registry
from cnnbench.zoo import init

Loss = Callable[[jax.Array, jax.Array], jax.Array]


class Head(nnx.Module):
    """A classifier head: the loss it trains with and its optimizer group's weight decay are class attributes."""

    loss: Loss
    weight_decay: float


class HeadClass(Protocol):
    """What ``HEADS`` holds: a head class, built from the feature-map shape, the class count and ``rngs``."""

    def __call__(self, feature_shape: tuple[int, int, int], num_classes: int, *, rngs: nnx.Rngs) -> Head: ...


HEADS: Registry[HeadClass] = Registry("head")


def softmax_cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Mean softmax cross-entropy against integer labels."""
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


def squared_hinge(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """One-vs-rest L2-SVM loss (Tang 2013): squared hinge with targets ±1, summed over classes."""
    targets = 2.0 * jax.nn.one_hot(labels, logits.shape[-1]) - 1.0
    return jnp.square(jnp.maximum(0.0, 1.0 - targets * logits)).sum(-1).mean()


def _global_average_pool(x: jax.Array) -> jax.Array:
    return x.mean(axis=(1, 2))


@HEADS.register("fc")
class FCHead(Head):
    """Flatten → dense 256 → ReLU → dropout 0.5 → dense n: the Keras recipe of seed note 000."""

    loss: Loss = staticmethod(softmax_cross_entropy)
    weight_decay = 1e-4

    def __init__(self, feature_shape: tuple[int, int, int], num_classes: int, *, rngs: nnx.Rngs) -> None:
        h, w, c = feature_shape
        self.hidden = nnx.Linear(h * w * c, 256, kernel_init=init.lecun_normal(), rngs=rngs)
        self.dropout = nnx.Dropout(0.5, rngs=rngs)
        self.out = nnx.Linear(256, num_classes, kernel_init=init.lecun_normal(), rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = x.reshape(x.shape[0], -1)
        return self.out(self.dropout(nnx.relu(self.hidden(x))))


@HEADS.register("gap")
class GAPHead(Head):
    """Global average pooling → dense n (Lin 2013): few parameters, no spatial over-fitting."""

    loss: Loss = staticmethod(softmax_cross_entropy)
    weight_decay = 1e-4

    def __init__(self, feature_shape: tuple[int, int, int], num_classes: int, *, rngs: nnx.Rngs) -> None:
        self.out = nnx.Linear(feature_shape[-1], num_classes, kernel_init=init.lecun_normal(), rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.out(_global_average_pool(x))


@HEADS.register("svm")
class SVMHead(Head):
    """Global average pooling → linear one-vs-rest scores trained as an L2-SVM (Tang 2013).

    The margin needs a weight penalty to be meaningful, so this head's optimizer group decays its weights
    more strongly than the softmax heads do.
    """

    loss: Loss = staticmethod(squared_hinge)
    weight_decay = 1e-2

    def __init__(self, feature_shape: tuple[int, int, int], num_classes: int, *, rngs: nnx.Rngs) -> None:
        self.out = nnx.Linear(feature_shape[-1], num_classes, kernel_init=init.lecun_normal(), rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.out(_global_average_pool(x))


def create_head(name: str, feature_shape: tuple[int, int, int], num_classes: int, *, seed: int) -> Head:
    """Build the registered head ``name`` for a base whose feature map has ``feature_shape``."""
    shape = cast(tuple[int, int, int], tuple(feature_shape))  # a list (e.g. read from JSON) becomes the tuple
    return HEADS.get(name)(shape, num_classes, rngs=nnx.Rngs(seed))
