"""Data augmentation of target batches, the seed notes' remedy for small datasets (q3): random horizontal flips,
random crops of a reflect-padded image, and small affine jitter. A suite chooses what fits its data per quadrant
(flips suit textures, not digits). Batches are augmented on the device, in JAX, inside the program that gathers
them, seeded by (scenario seed, step), so a scenario stays reproducible and the compiled train step is unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp

AUGMENTATIONS = ("flip", "crop", "affine")
CROP_PAD = 1 / 8  # crops shift the image by up to 1/8 of its side (4 px at 32 px), as in the CIFAR recipe
MAX_ROTATION_DEG, SCALE_RANGE, MAX_SHIFT = 10.0, (0.9, 1.1), 1 / 16


def check_ops(ops: Sequence[str]) -> tuple[str, ...]:
    """``ops`` as a tuple, or a ValueError naming the unknown ones and the known ones."""
    unknown = set(ops) - set(AUGMENTATIONS)
    if unknown:
        raise ValueError(f"unknown augmentation(s) {sorted(unknown)}; known: {', '.join(AUGMENTATIONS)}")
    return tuple(ops)


def augment(x: jax.Array, ops: Sequence[str], key: jax.Array) -> jax.Array:
    """A new (N, H, W, C) float32 batch with each op in ``ops`` applied per image with fresh random parameters
    drawn from ``key``; traceable, so it runs inside a compiled program."""
    ops = check_ops(ops)
    x = jnp.asarray(x, jnp.float32)
    k_flip, k_crop, k_affine = jax.random.split(key, 3)
    n, h = x.shape[:2]
    if "flip" in ops:
        x = jnp.where((jax.random.uniform(k_flip, (n,)) < 0.5)[:, None, None, None], x[:, :, ::-1], x)
    if "crop" in ops:
        x = _random_crop(x, max(1, round(CROP_PAD * h)), k_crop)
    if "affine" in ops:
        x = _random_affine(x, k_affine)
    return x


def _random_crop(x: jax.Array, pad: int, key: jax.Array) -> jax.Array:
    n, h, w, c = x.shape
    padded = jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="reflect")
    offsets = jax.random.randint(key, (n, 2), 0, 2 * pad + 1)
    window = jax.vmap(lambda img, o: jax.lax.dynamic_slice(img, (o[0], o[1], 0), (h, w, c)))
    return window(padded, offsets)


def _random_affine(x: jax.Array, key: jax.Array) -> jax.Array:
    """Per image: rotate by up to ±10°, scale by 0.9–1.1 and shift by up to 1/16 of the side about the centre;
    bilinear, edges extended, vectorised over the batch."""
    n, h, w, _ = x.shape
    k_angle, k_scale, k_shift = jax.random.split(key, 3)
    max_angle = jnp.deg2rad(MAX_ROTATION_DEG)
    angle = jax.random.uniform(k_angle, (n, 1, 1), minval=-max_angle, maxval=max_angle)
    scale = jax.random.uniform(k_scale, (n, 1, 1), minval=SCALE_RANGE[0], maxval=SCALE_RANGE[1])
    shift = jax.random.uniform(k_shift, (2, n, 1, 1), minval=-MAX_SHIFT, maxval=MAX_SHIFT)
    shift_y, shift_x = shift[0] * h, shift[1] * w
    yy, xx = jnp.meshgrid(jnp.arange(h) - (h - 1) / 2, jnp.arange(w) - (w - 1) / 2, indexing="ij")
    cos, sin = jnp.cos(angle) / scale, jnp.sin(angle) / scale  # output -> input coordinates
    rows = cos * (yy - shift_y) - sin * (xx - shift_x) + (h - 1) / 2
    cols = sin * (yy - shift_y) + cos * (xx - shift_x) + (w - 1) / 2
    rows, cols = jnp.clip(rows, 0, h - 1), jnp.clip(cols, 0, w - 1)  # edges extended
    r0, c0 = jnp.minimum(rows.astype(jnp.int32), h - 2), jnp.minimum(cols.astype(jnp.int32), w - 2)
    fr, fc = (rows - r0)[..., None], (cols - c0)[..., None]
    i = jnp.arange(n)[:, None, None]
    top = x[i, r0, c0] * (1 - fc) + x[i, r0, c0 + 1] * fc
    bottom = x[i, r0 + 1, c0] * (1 - fc) + x[i, r0 + 1, c0 + 1] * fc
    return top * (1 - fr) + bottom * fr
