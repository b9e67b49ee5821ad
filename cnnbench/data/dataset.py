"""The target dataset container, the conversion of any image batch to the base's input format, and the
class-balanced index splits that keep train, validation and test disjoint.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Dataset:
    """A target: three disjoint splits of NHWC float32 images in [0, 1] (or :meth:`normalised`) with int32 labels,
    and how it was made.

    ``provenance`` is JSON-serialisable (source files, conversion, split sizes or regions) so a report can say
    exactly what the model saw. The arrays are made read-only: datasets are cached and shared.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]
    provenance: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for split in SPLITS:
            for a in (getattr(self, f"x_{split}"), getattr(self, f"y_{split}")):
                a.setflags(write=False)

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def n_train(self) -> int:
        return len(self.y_train)

    @property
    def n_val(self) -> int:
        return len(self.y_val)

    @property
    def n_test(self) -> int:
        return len(self.y_test)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """(H, W, C) of one image."""
        return tuple(self.x_train.shape[1:])

    def with_train_size(self, n: int, seed: int) -> Dataset:
        """The same dataset with a class-balanced, seeded subset of ``n`` training images (validation and test
        unchanged), e.g. to place a large user dataset in a small quadrant."""
        if not self.n_classes <= n <= self.n_train:
            raise ValueError(
                f"dataset {self.name!r}: n_train={n} is out of range; it has {self.n_train} training images and "
                f"{self.n_classes} classes"
            )
        (keep,) = stratified_split(self.y_train, [n], seed)
        provenance = {**self.provenance, "n_train_used": n, "n_train_available": self.n_train}
        return replace(self, x_train=self.x_train[keep], y_train=self.y_train[keep], provenance=provenance)

    def normalised(self, mean: tuple[float, ...], std: tuple[float, ...]) -> Dataset:
        """The images minus ``mean``, over ``std``, per channel: the input pretrained weights from another framework
        expect (ImageNet's statistics, say) from images in [0, 1]."""
        m, s = np.asarray(mean, np.float32), np.asarray(std, np.float32)
        if m.shape != (self.x_train.shape[-1],):
            raise ValueError(f"normalisation for {m.size} channels, images with {self.x_train.shape[-1]}")
        return replace(self, x_train=(self.x_train - m) / s, x_val=(self.x_val - m) / s, x_test=(self.x_test - m) / s)

    def validate(self) -> Dataset:
        """Raise ValueError naming the first problem found (shape, dtype, range, labels, empty split)."""
        for split in SPLITS:
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            where = f"dataset {self.name!r}, split {split!r}"
            if x.ndim != 4 or x.shape[1:] != self.input_shape:
                raise ValueError(f"{where}: images must be (N, H, W, C) like {self.input_shape}, got {x.shape}")
            if x.dtype != np.float32 or y.dtype != np.int32:
                raise ValueError(f"{where}: expected float32 images and int32 labels, got {x.dtype}, {y.dtype}")
            if len(x) != len(y):
                raise ValueError(f"{where}: {len(x)} images but {len(y)} labels")
            if len(y) == 0:
                raise ValueError(f"{where}: split is empty")
            if np.isnan(x).any() or x.min() < 0 or x.max() > 1:
                raise ValueError(f"{where}: pixels must be in [0, 1] without NaN")
            if y.min() < 0 or y.max() >= self.n_classes:
                raise ValueError(f"{where}: labels must be in [0, {self.n_classes}), got {y.min()}..{y.max()}")
        return self


def to_input_format(
    images: np.ndarray, img_size: int, in_chans: int, value_range: tuple[float, float] | None = None
) -> tuple[np.ndarray, dict[str, Any]]:
    """Convert a batch (N, H, W) or (N, H, W, C), C in 1/3/4, to (N, img_size, img_size, in_chans) float32 in
    [0, 1], so a pretrained base applies unchanged; also return a dict saying what was done, for reports.

    ``value_range`` is the input's (low, high); by default 0..255 for integers, 0..1 for floats already in
    that range, else the batch's own min..max.
    """
    x = np.asarray(images)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[-1] not in (1, 3, 4):
        raise ValueError(f"images must be (N, H, W) or (N, H, W, C) with C in 1/3/4, got shape {x.shape}")
    if in_chans not in (1, 3):
        raise ValueError(f"in_chans must be 1 or 3, got {in_chans}")
    info: dict[str, Any] = {"from_shape": list(x.shape[1:]), "from_dtype": str(x.dtype)}
    if value_range is None:
        if np.issubdtype(x.dtype, np.integer):
            value_range = (0.0, float(np.iinfo(x.dtype).max))
        elif x.size and (x.min() < 0 or x.max() > 1):
            value_range = (float(x.min()), float(x.max()))
        else:
            value_range = (0.0, 1.0)
    lo, hi = value_range
    x = x.astype(np.float32)  # a copy, so the steps below work in place and leave the caller's array alone
    x -= lo
    x /= max(hi - lo, 1e-12)
    steps = [f"values {lo:g}..{hi:g} -> 0..1"]
    if x.shape[-1] == 4:
        rgb = x[..., :3]
        rgb *= x[..., 3:]
        x = rgb
        steps.append("rgba->rgb (alpha composited on black)")
    if x.shape[-1] == 3 and in_chans == 1:
        x = x @ np.array([0.2125, 0.7154, 0.0721], np.float32)[:, None]
        steps.append("rgb->grey (ITU-R 709 luminance)")
    if x.shape[1:3] != (img_size, img_size):
        h, w = x.shape[1:3]
        rows, cols = _resize_matrix(h, img_size), _resize_matrix(w, img_size)
        x = np.einsum("sh,nhwc,tw->nstc", rows, x, cols, optimize=True)
        aa = ", anti-aliased" if h > img_size or w > img_size else ""
        steps.append(f"resize {h}x{w}->{img_size}x{img_size} (skimage.transform.resize, bilinear{aa})")
    np.clip(x, 0.0, 1.0, out=x)
    if x.shape[-1] == 1 and in_chans == 3:
        x = np.repeat(x, 3, axis=-1)
        steps.append("grey->rgb (channel repeated)")
    return np.ascontiguousarray(x), {**info, "value_range": [lo, hi], "steps": steps}


_CACHED_ENTRIES = 2**18  # resize matrices up to this size (1 MiB) are kept: at most 64 MiB in all


def _resize_matrix(n_in: int, n_out: int) -> np.ndarray:
    """The resize map of one axis (_build_resize_matrix), kept for reuse unless it is large."""
    if n_in * n_out <= _CACHED_ENTRIES:
        return _cached_resize_matrix(n_in, n_out)
    return _build_resize_matrix(n_in, n_out)


def resize_bytes(n_in: int, n_out: int) -> int:
    """An upper bound on the memory building one axis's resize map takes (measured: at most 0.86 of it), for
    estimates made before an image is decoded: the dense map plus the taps it is built from."""
    return 12 * n_in * n_out + 600 * max(n_in, n_out) + 4096


@functools.lru_cache(maxsize=64)
def _cached_resize_matrix(n_in: int, n_out: int) -> np.ndarray:
    return _build_resize_matrix(n_in, n_out)


def _build_resize_matrix(n_in: int, n_out: int) -> np.ndarray:
    """The (n_out, n_in) linear map that ``skimage.transform.resize(order=1, anti_aliasing=n_out < n_in)`` applies
    along one axis (a Gaussian of sigma (n_in / n_out - 1) / 2 when shrinking, then bilinear sampling, both
    mirroring at the edges), built from its few non-zero taps per row: memory and time grow with n_out * n_in
    (resize_bytes), never with n_in squared, and the map is bit-identical, after rounding to float32, to
    resizing an identity matrix with scikit-image. Resizing a batch as two such matrix products is exact and far
    faster than a 4-D resize."""
    scale = n_in / n_out
    at = (np.arange(n_out) + 0.5) * scale - 0.5  # ndimage.zoom(grid_mode=True): pixel centres map to centres
    left = np.floor(at)
    taps = np.stack([left, left + 1], axis=1).astype(np.int64)  # (n_out, 2): bilinear's two neighbours
    weights = np.stack([1 - (at - left), at - left], axis=1)
    if n_out < n_in:  # anti-aliasing: ndimage.gaussian_filter's kernel (truncate=4) around each neighbour
        sigma = (scale - 1) / 2
        radius = int(4.0 * sigma + 0.5)
        offsets = np.arange(-radius, radius + 1)
        kernel = np.exp(-0.5 / (sigma * sigma) * offsets**2)
        kernel /= kernel.sum()
        taps = (_mirror(taps, n_in)[:, :, None] + offsets).reshape(n_out, -1)
        weights = (weights[:, :, None] * kernel).reshape(n_out, -1)
    matrix = np.zeros((n_out, n_in))
    np.add.at(matrix, (np.repeat(np.arange(n_out), taps.shape[1]), _mirror(taps, n_in).ravel()), weights.ravel())
    return matrix.astype(np.float32)


def _mirror(index: np.ndarray, n: int) -> np.ndarray:
    """Indices reflected into 0..n-1 about the edge pixels' centres (ndimage's ``mirror``: d c b | a b c d | c b)."""
    if n == 1:
        return np.zeros_like(index)
    period = 2 * n - 2
    index = np.abs(index) % period
    return np.where(index >= n, period - index, index)


def balanced_counts(total: int, n_classes: int) -> np.ndarray:
    """Split ``total`` over ``n_classes`` as evenly as possible; the first ``total % n_classes`` get one more."""
    counts = np.full(n_classes, total // n_classes)
    counts[: total % n_classes] += 1
    return counts


def stratified_split(y: np.ndarray, sizes: Sequence[int], seed: int | Sequence[int]) -> list[np.ndarray]:
    """Disjoint, class-balanced index sets into ``y``, one per entry of ``sizes``, each in shuffled order.

    Within each class the indices are permuted once with ``seed`` and cut into consecutive chunks, so the
    splits cannot overlap and a split's content does not depend on the sizes of the splits after it.
    """
    y = np.asarray(y)
    classes = np.unique(y)
    rng = np.random.default_rng(seed)
    per_class = np.stack([balanced_counts(s, len(classes)) for s in sizes])  # (splits, classes)
    parts: list[list[np.ndarray]] = [[] for _ in sizes]
    for j, c in enumerate(classes):
        members = rng.permutation(np.flatnonzero(y == c))
        need = per_class[:, j].sum()
        if need > len(members):
            raise ValueError(f"class {c!r} has {len(members)} examples; the split sizes {list(sizes)} need {need}")
        bounds = np.concatenate([[0], np.cumsum(per_class[:, j])])
        for i in range(len(sizes)):
            parts[i].append(members[bounds[i] : bounds[i + 1]])
    return [rng.permutation(np.concatenate(p)) for p in parts]
