"""How a user dataset is split and packed, alike for both formats: HELD_OUT of each class (at least one example)
held out class by class, and the Dataset assembled from the split arrays with the provenance every user dataset
records (source, class counts overall and per split). The folder and .npz loaders both use it, so a folder and an
.npz of the same images split the same way and describe themselves the same way.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cnnbench.data.dataset import SPLITS, Dataset, stratified_split

HELD_OUT = 0.2  # share of each class (at least one example) held out for test, then for validation


def hold_out(y: np.ndarray, seed: int, stage: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices into ``y``: HELD_OUT of each class (at least one) and the rest, both sorted. Each class is cut
    by stratified_split under its own seed, so classes of any size split in proportion."""
    held, rest = [], []
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        k = max(1, round(HELD_OUT * len(members)))
        a, b = stratified_split(y[members], [k, len(members) - k], [seed, stage, int(c)])
        held.append(members[a])
        rest.append(members[b])
    return np.sort(np.concatenate(held)), np.sort(np.concatenate(rest))


def assemble(
    name: str, x: dict[str, np.ndarray], y: dict[str, np.ndarray], class_names: tuple[str, ...], **provenance: Any
) -> Dataset:
    """The Dataset with the provenance both formats share: source, class counts overall and per split."""
    counts = {split: np.bincount(y[split], minlength=len(class_names)).tolist() for split in SPLITS}
    return Dataset(
        name,
        x["train"],
        y["train"],
        x["val"],
        y["val"],
        x["test"],
        y["test"],
        class_names=class_names,
        provenance={
            "source": "user",
            **provenance,
            "classes": {n: sum(counts[s][c] for s in SPLITS) for c, n in enumerate(class_names)},
            "sizes": {split: len(y[split]) for split in SPLITS},
            "class_counts": counts,
        },
    )
