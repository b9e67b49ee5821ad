"""The four quadrants (SPEC §4): target size × similarity to the source, and the seed notes' strategy for each."""

from __future__ import annotations

QUADRANTS = ("q1", "q2", "q3", "q4")
SMALL_MAX = 1000  # SPEC §4: a small target has at most 1,000 training images (seed note 001)

RECOMMENDED = {"q1": "s1", "q2": "s2", "q3": "s2", "q4": "s3"}

QUADRANT_LABELS = {
    "q1": "large, dissimilar",
    "q2": "large, similar",
    "q3": "small, dissimilar",
    "q4": "small, similar",
}

REASONS = {
    "q1": "plenty of data, but far from the source: fine-tune the whole pretrained network.",
    "q2": "plenty of data close to the source: keep the generic lower stages frozen, retrain the upper ones.",
    "q3": "little data far from the source: freeze only the lowest stages (deeper unfreezing than in q2) and "
    "augment the data.",
    "q4": "little data close to the source: the pretrained features already fit, so train the head only.",
}


def size_class(n_train: int) -> str:
    """ "small" (at most SMALL_MAX training images) or "large"."""
    return "small" if n_train <= SMALL_MAX else "large"


def placement(n_train: int, similar: bool) -> str:
    """The quadrant a target of ``n_train`` training images and this measured similarity belongs in (SPEC §4)."""
    return {("large", False): "q1", ("large", True): "q2", ("small", False): "q3", ("small", True): "q4"}[
        (size_class(n_train), similar)
    ]
