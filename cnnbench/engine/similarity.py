"""Measured similarity of a target to the source domain (SPEC §4): what share of the separability that
pretraining gave the base on the source domain it keeps on the target.

Separability is nearest-class-mean (NCM) accuracy on pooled base features: class means from one split, accuracy
on another. The *gain* of a base is its NCM accuracy minus that of a random-init base of the same arch and
config, which removes what the architecture alone gives (a random conv net is already a fair feature
extractor). The score is the target gain divided by the same gain measured on held-out source images:

    score = (NCM_target(pretrained) - NCM_target(random)) / (NCM_source(pretrained) - NCM_source(random))

so 1 means the target is separated as well as the source is, 0 means pretraining did not help, and below 0
that it hurt. Dividing by the source gain makes the score comparable across archs whose pretraining went far
(resnet18: source gain 0.81) or not (alexnet at 32 px: 0.10). NCM needs no training and no hyper-parameters:
the score is deterministic and costs one forward pass per split. ``THRESHOLD`` was set between the built-in
similar and dissimilar targets on every arch; docs/quadrants.md has the measurements.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

METHOD = "ncm-transfer-ratio"
THRESHOLD = 0.4  # measured on all 17 archs: similar targets 0.72..2.85, dissimilar -0.67..0.13 (docs/quadrants.md)
MIN_SOURCE_GAIN = 0.02  # below this the pretrained base separates the source no better than a random one


def pooled(feature_maps: np.ndarray, global_pool: str) -> np.ndarray:
    """(N, h, w, c) feature maps to the vectors a head would see: averaged for ``avg`` archs, else flattened."""
    if global_pool == "avg":
        return feature_maps.mean(axis=(1, 2))
    return feature_maps.reshape(len(feature_maps), -1)


def ncm_accuracy(train: np.ndarray, y_train: np.ndarray, test: np.ndarray, y_test: np.ndarray) -> float:
    """Accuracy of the nearest class mean by cosine similarity, after centring on the training mean (so a
    shared offset, e.g. from ReLU features, does not dominate the angle)."""

    def unit(v: np.ndarray) -> np.ndarray:
        return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)

    centre = train.mean(axis=0)
    train, test = unit(train - centre), unit(test - centre)
    classes = np.unique(y_train)
    means = unit(np.stack([train[y_train == c].mean(axis=0) for c in classes]))
    predicted = classes[np.argmax(test @ means.T, axis=1)]
    return float((predicted == y_test).mean())


@dataclass(frozen=True)
class Separability:
    """NCM accuracy of the pretrained and of the random-init base on one domain."""

    pretrained: float
    random: float

    @property
    def gain(self) -> float:
        return self.pretrained - self.random


def separability(
    pretrained: tuple[np.ndarray, ...], random: tuple[np.ndarray, ...], y_fit: np.ndarray, y_eval: np.ndarray
) -> Separability:
    """NCM accuracies from (fit, eval) pooled features of the pretrained and of the random-init base."""
    return Separability(
        ncm_accuracy(pretrained[0], y_fit, pretrained[1], y_eval), ncm_accuracy(random[0], y_fit, random[1], y_eval)
    )


@dataclass(frozen=True)
class Similarity:
    """One arch's similarity measurement of one target."""

    arch: str
    target: Separability
    source: Separability

    def __post_init__(self) -> None:
        if self.source.gain < MIN_SOURCE_GAIN:
            raise ValueError(
                f"{self.arch}: the pretrained base separates held-out source images no better than a random one "
                f"(NCM {self.source.pretrained:.1%} vs {self.source.random:.1%}), so it cannot measure similarity; "
                "pretrain longer (suite [pretrain] steps)"
            )

    @property
    def score(self) -> float:
        return self.target.gain / self.source.gain

    @property
    def similar(self) -> bool:
        return self.score >= THRESHOLD

    def to_dict(self) -> dict:
        return {
            "arch": self.arch,
            "score": self.score,
            "similar": self.similar,
            "target": asdict(self.target),
            "source": asdict(self.source),
        }


def detail(by_arch: list[dict]) -> dict:
    """A target's similarity for the report from its archs' ``Similarity.to_dict()`` rows: the mean score over
    them, the decision, and each arch's figures (recomputed when archs measured in several processes — pytest-xdist
    workers, shards — come together)."""
    score = float(np.mean([row["score"] for row in by_arch]))
    return {"method": METHOD, "score": score, "threshold": THRESHOLD, "similar": score >= THRESHOLD,
            "by_arch": list(by_arch)}  # fmt: skip
