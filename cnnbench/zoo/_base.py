"""The contract every zoo model shares: named stages from input to output, then a classifier.

Transfer learning needs the same handles on every architecture: ``forward_features`` (the convolutional base),
``forward_head`` (the original classifier), the stage names that freezing selects by path prefix, and the
shape of the final feature map so a new head can be built without running the model. Archs trained with
auxiliary classifiers (GoogLeNet) also hand out their taps and fresh auxiliary classifiers for a new head.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import jax
from flax import nnx


class ZooModel(nnx.Module):
    """An NHWC CNN whose parameters all live under a stage attribute or under ``classifier``.

    Subclasses build one attribute per name in ``stage_names`` and set ``classifier`` (``None`` without one),
    ``num_features`` and ``feature_shape``.
    """

    stage_names: ClassVar[tuple[str, ...]]
    global_pool: ClassVar[Literal["avg", "flatten"]] = "avg"  # how the classifier consumes the final map
    classifier: nnx.Module | None
    num_features: int  # channels of the final feature map
    feature_shape: tuple[int, int, int]  # (h, w, c) of the final feature map at the configured img_size

    def forward_features(self, x: jax.Array) -> jax.Array:
        """Run the stages in order: images (N, H, W, C) to the final feature map (N, h, w, c)."""
        for name in self.stage_names:
            x = getattr(self, name)(x)
        return x

    def forward_features_aux(self, x: jax.Array) -> tuple[jax.Array, tuple[jax.Array, ...]]:
        """``forward_features`` plus the intermediate maps the arch's auxiliary classifiers read (none here)."""
        return self.forward_features(x), ()

    def new_aux_classifiers(self, num_classes: int, rngs: nnx.Rngs) -> nnx.Module | None:
        """Fresh auxiliary classifiers for ``num_classes`` that map ``forward_features_aux``'s taps to a tuple of
        logits, for training a new head with the arch's auxiliary losses; None for archs without them."""
        return None

    def forward_head(self, feats: jax.Array) -> jax.Array:
        """Pool or flatten the feature map and apply the classifier; without one, return what it would
        have consumed (timm's ``num_classes=0`` behaviour)."""
        pooled = feats.mean(axis=(1, 2)) if self.global_pool == "avg" else feats.reshape(feats.shape[0], -1)
        return pooled if self.classifier is None else self.classifier(pooled)

    def __call__(self, x: jax.Array) -> jax.Array:
        """Images (N, H, W, C) to logits (N, num_classes): ``forward_features`` then ``forward_head``."""
        return self.forward_head(self.forward_features(x))
