"""Target augmentation (in JAX, on the device): each op does what it says on every image, nothing else changes,
and it is seeded; the batches of a training set are gathered and augmented per step, whatever the chunking."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from cnnbench.data.augment import augment
from cnnbench.engine import batches as batches_module
from cnnbench.engine.batches import TargetBatches
from cnnbench.engine.train import epoch_batches


def _batch(n: int = 16) -> np.ndarray:
    return np.random.default_rng(0).random((n, 32, 32, 3), dtype=np.float32)


def test_flip_mirrors_some_images_left_right_and_leaves_the_others() -> None:
    x = _batch()
    y = np.asarray(augment(x, ["flip"], jax.random.key(1)))
    flipped = [np.array_equal(b, a[:, ::-1]) for a, b in zip(x, y, strict=False)]
    kept = [np.array_equal(b, a) for a, b in zip(x, y, strict=False)]
    assert all(f or k for f, k in zip(flipped, kept, strict=False)) and any(flipped) and any(kept)


def test_crop_is_a_window_of_the_reflect_padded_image() -> None:
    x = _batch()
    y = np.asarray(augment(x, ["crop"], jax.random.key(2)))
    padded = np.pad(x, ((0, 0), (4, 4), (4, 4), (0, 0)), mode="reflect")
    shifts = []
    for a, b in zip(padded, y, strict=False):
        match = [(dy, dx) for dy in range(9) for dx in range(9) if np.array_equal(a[dy : dy + 32, dx : dx + 32], b)]
        assert len(match) == 1
        shifts.append(match[0])
    assert len(set(shifts)) > 4  # each image gets its own offset


def test_affine_jitter_is_small_keeps_constants_and_moves_pixels() -> None:
    flat = np.full((4, 32, 32, 1), 0.25, np.float32)
    np.testing.assert_allclose(augment(flat, ["affine"], jax.random.key(3)), 0.25, rtol=1e-6)
    x = np.zeros((8, 32, 32, 1), np.float32)
    x[:, 12:20, 12:20] = 1.0  # a centred square: rotation ≤ 10°, scale 0.9–1.1, shift ≤ 2 px keep it near the centre
    y = np.asarray(augment(x, ["affine"], jax.random.key(4)))
    assert not np.array_equal(x, y) and y.min() >= 0 and y.max() <= 1
    assert all(0.7 < b.sum() / a.sum() < 1.3 for a, b in zip(x, y, strict=False))  # area changes by at most the scale²
    assert np.all(y[:, 15:17, 15:17] > 0.5)  # the centre stays inside the square


def test_seeded_typed_and_unknown_ops_rejected() -> None:
    x = _batch()
    ops = ["flip", "crop", "affine"]
    a, b = np.asarray(augment(x, ops, jax.random.key(5))), np.asarray(augment(x, ops, jax.random.key(5)))
    assert np.array_equal(a, b) and not np.array_equal(a, augment(x, ops, jax.random.key(6)))
    assert a.shape == x.shape and a.dtype == np.float32
    with pytest.raises(ValueError, match=r"unknown augmentation\(s\) \['mixup'\]; known: flip, crop, affine"):
        augment(x, ["mixup"], jax.random.key(0))


def test_a_step_gets_the_same_batch_whatever_chunk_it_falls_in() -> None:
    x = _batch(40)
    y = np.arange(40, dtype=np.int32)
    order = epoch_batches(len(x), 8, 12, seed=0)
    batches = TargetBatches.of(x, y, order, ["flip", "crop", "affine"], seed=3)
    xs, ys = (np.asarray(a) for a in batches.chunk(0, 6, 8))  # steps 0-5, two rows of padding
    assert xs.shape == (8, 8, 32, 32, 3) and ys.shape == (8, 8)
    assert np.array_equal(ys[:6], order[:6])  # labels follow the rows each step draws
    later_x, later_y = (np.asarray(a) for a in batches.after(4).chunk(0, 2, 8))  # steps 4-5 on their own
    np.testing.assert_array_equal(later_x[:2], xs[4:6])
    np.testing.assert_array_equal(later_y[:2], ys[4:6])
    assert not np.array_equal(xs[0], xs[1])  # each step its own augmentation
    other = np.asarray(TargetBatches.of(x, y, order, ["flip", "crop", "affine"], seed=4).chunk(0, 6, 8)[0])
    assert not np.array_equal(other[:6], xs[:6])  # and each seed its own
    plain = np.asarray(TargetBatches.of(x, y, order).chunk(0, 6, 8)[0])
    np.testing.assert_array_equal(plain[:6], x[order[:6]])  # no augmentation: the rows themselves


def test_a_training_set_too_large_for_the_device_is_gathered_on_the_host_to_the_same_batches(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    x, y = _batch(40), np.arange(40, dtype=np.int32)
    order = epoch_batches(len(x), 8, 6, seed=0)
    on_device = TargetBatches.of(x, y, order, ["crop"], seed=2)
    monkeypatch.setattr(batches_module, "DEVICE_DATA_BYTES", 0)
    on_host = TargetBatches.of(x, y, order, ["crop"], seed=2)
    assert isinstance(on_host.x, np.ndarray) and not isinstance(on_device.x, np.ndarray)
    for a, b in zip(on_device.chunk(1, 4, 8), on_host.chunk(1, 4, 8), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
