"""Data augmentation of target batches, the seed notes' remedy for small datasets (q3): random horizontal flips,
random crops of a reflect-padded image, and small affine jitter. A suite chooses what fits its data per quadrant
(flips suit textures, not digits). Batches are augmented on the host, seeded by (scenario seed, step), so a
scenario stays reproducible and the compiled train step is unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

AUGMENTATIONS = ("flip", "crop", "affine")
CROP_PAD = 1 / 8  # crops shift the image by up to 1/8 of its side (4 px at 32 px), as in the CIFAR recipe
MAX_ROTATION_DEG, SCALE_RANGE, MAX_SHIFT = 10.0, (0.9, 1.1), 1 / 16


def augment(x: np.ndarray, ops: Sequence[str], rng: np.random.Generator) -> np.ndarray:
    """A new (N, H, W, C) batch with each op in ``ops`` applied per image with fresh random parameters."""
    unknown = set(ops) - set(AUGMENTATIONS)
    if unknown:
        raise ValueError(f"unknown augmentation(s) {sorted(unknown)}; known: {', '.join(AUGMENTATIONS)}")
    if "flip" in ops:
        x = np.where((rng.random(len(x)) < 0.5)[:, None, None, None], x[:, :, ::-1], x)
    if "crop" in ops:
        x = _random_crop(x, max(1, round(CROP_PAD * x.shape[1])), rng)
    if "affine" in ops:
        x = _random_affine(x, rng)
    return np.ascontiguousarray(x, dtype=np.float32)


def _random_crop(x: np.ndarray, pad: int, rng: np.random.Generator) -> np.ndarray:
    n, h, w, _ = x.shape
    padded = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="reflect")
    dy, dx = rng.integers(0, 2 * pad + 1, size=(2, n))
    rows = dy[:, None] + np.arange(h)[None, :]  # (n, h)
    cols = dx[:, None] + np.arange(w)[None, :]  # (n, w)
    return padded[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]


def _random_affine(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Per image: rotate by up to ±10°, scale by 0.9–1.1 and shift by up to 1/16 of the side about the centre;
    bilinear, edges extended, vectorised over the batch."""
    n, h, w, _ = x.shape
    angle = np.deg2rad(rng.uniform(-MAX_ROTATION_DEG, MAX_ROTATION_DEG, n))[:, None, None]
    scale = rng.uniform(*SCALE_RANGE, (n,))[:, None, None]  # size (n,): stubs take an Any n for the scalar case
    shift_y, shift_x = (rng.uniform(-MAX_SHIFT, MAX_SHIFT, (2, n)) * np.array([[h], [w]]))[:, :, None, None]
    yy, xx = np.meshgrid(np.arange(h) - (h - 1) / 2, np.arange(w) - (w - 1) / 2, indexing="ij")
    cos, sin = np.cos(angle) / scale, np.sin(angle) / scale  # output -> input coordinates
    rows = cos * (yy - shift_y) - sin * (xx - shift_x) + (h - 1) / 2
    cols = sin * (yy - shift_y) + cos * (xx - shift_x) + (w - 1) / 2
    rows, cols = np.clip(rows, 0, h - 1), np.clip(cols, 0, w - 1)  # edges extended
    r0, c0 = np.minimum(rows.astype(int), h - 2), np.minimum(cols.astype(int), w - 2)
    fr, fc = (rows - r0)[..., None], (cols - c0)[..., None]
    i = np.arange(n)[:, None, None]
    top = x[i, r0, c0] * (1 - fc) + x[i, r0, c0 + 1] * fc
    bottom = x[i, r0 + 1, c0] * (1 - fc) + x[i, r0 + 1, c0 + 1] * fc
    return top * (1 - fr) + bottom * fr
