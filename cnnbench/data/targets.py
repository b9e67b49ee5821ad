"""Built-in target datasets, registered by name: two similar to the glyph source (handwritten and held-out-font
digits) and one dissimilar (texture and photo patches), all from files that installed packages ship.

A factory maps (n_train, seed, img_size, in_chans) to a Dataset; the same arguments give a bit-identical
dataset and train, validation and test never share a source image, glyph stroke or image region.
"""

from __future__ import annotations

import functools
import importlib.util
import itertools
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cnnbench.data.dataset import Dataset, balanced_counts, stratified_split, to_input_format
from cnnbench.registry import Registry

TargetFactory = Callable[[int, int, int, int], Dataset]


@dataclass(frozen=True)
class TargetSpec:
    """A registered target: its factory and what a report needs to know before building it."""

    name: str
    factory: TargetFactory
    description: str
    similar_by_design: bool
    n_classes: int
    max_train: int


TARGETS: Registry[TargetSpec] = Registry("target")


def _target(name: str, description: str, *, similar_by_design: bool, n_classes: int, max_train: int):
    def add(factory: TargetFactory) -> TargetFactory:
        TARGETS.register(name)(TargetSpec(name, factory, description, similar_by_design, n_classes, max_train))
        return factory

    return add


@functools.lru_cache(maxsize=4)
def build_target(name: str, n_train: int, seed: int, img_size: int = 32, in_chans: int = 1) -> Dataset:
    """Build (or reuse from memory) target ``name`` with ``n_train`` class-balanced training images."""
    spec = TARGETS.get(name)
    if not spec.n_classes <= n_train <= spec.max_train:
        raise ValueError(f"target {name!r}: n_train={n_train} is out of range; use {spec.n_classes}..{spec.max_train}")
    if in_chans not in (1, 3):
        raise ValueError(f"target {name!r}: in_chans must be 1 or 3, got {in_chans}")
    return spec.factory(n_train, seed, img_size, in_chans).validate()


def val_size(n_train: int, cap: int) -> int:
    """Validation split size: 20% of the training size, at least 50, at most ``cap``."""
    return int(min(cap, max(50, round(0.2 * n_train))))


# --------------------------------------------------------------------------------------------- digits


_DIGITS_TEST = 540  # 54 per class: what the rarest class (174 images) leaves after 100 train + 20 val


@functools.lru_cache(maxsize=4)
def _digits_converted(img_size: int, in_chans: int) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    images, labels = load_digits()
    x, info = to_input_format(images, img_size, in_chans, value_range=(0.0, 16.0))
    return x, labels, info


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits, ``(images 1797×8×8 float64, labels int32)``, read from the file scikit-learn ships
    (``sklearn/datasets/data/digits.csv.gz``) as ``sklearn.datasets.load_digits`` reads it, without importing
    scikit-learn: importing ``sklearn.datasets`` (and with it SciPy) took 1.5 of the 1.6 s this target took to build,
    in every run that uses it."""
    spec = importlib.util.find_spec("sklearn")  # finds the package without running it
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("the digits target needs scikit-learn: pip install scikit-learn")
    data = np.loadtxt(Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "digits.csv.gz", delimiter=",")
    return data[:, :-1].reshape(-1, 8, 8), data[:, -1].astype(np.int32)


@_target(
    "digits",
    "scikit-learn's 1,797 handwritten 8x8 digits (UCI), upsampled; disjoint image index sets per split",
    similar_by_design=True,
    n_classes=10,
    max_train=1000,
)
def digits(n_train: int, seed: int, img_size: int, in_chans: int) -> Dataset:
    """Handwritten digits; the test set (540 images) depends only on ``seed``, not on ``n_train``."""
    x, y, info = _digits_converted(img_size, in_chans)
    test, val, train = stratified_split(y, [_DIGITS_TEST, val_size(n_train, 200), n_train], seed)
    idx = {"train": train, "val": val, "test": test}
    return Dataset(
        "digits",
        x[train],
        y[train],
        x[val],
        y[val],
        x[test],
        y[test],
        class_names=tuple(str(d) for d in range(10)),
        provenance={
            "source": "sklearn.datasets.load_digits (1,797 images, 8x8, values 0..16)",
            "seed": seed,
            "split": "class-balanced disjoint index sets of the 1,797 images (test drawn first)",
            "sizes": {k: len(v) for k, v in idx.items()},
            "indices": {k: v.tolist() for k, v in idx.items()},
            "conversion": info,
        },
    )


# ---------------------------------------------------------------------------------------- font-digits


_FONT_DIGITS_STROKES = {"train": ("thin", "bold"), "val": ("normal",), "test": ("normal",)}
_CHUNK = 1024  # images per jitted call: one compiled shape whatever the split sizes


@_target(
    "font-digits",
    "digits 0-9 rendered from fonts held out of pretraining, augmented like the source; "
    "train strokes thin/bold, val/test stroke normal",
    similar_by_design=True,
    n_classes=10,
    max_train=20_000,
)
def font_digits(n_train: int, seed: int, img_size: int, in_chans: int) -> Dataset:
    """Rendered digits from HELDOUT_FONTS; each split has its own key stream and its own stroke weights, so no
    test image can equal a training image."""
    import jax  # the rendered digits need JAX; importing the target registry does not

    from cnnbench.data.glyphs import (
        DIGITS,
        HELDOUT_FONTS,
        STROKES,
        Augment,
        augment_glyphs,
        glyph_bank,
        render_size,
    )

    aug, size = Augment(), render_size(img_size)
    bank = glyph_bank(HELDOUT_FONTS, DIGITS, STROKES, size, img_size)
    n_fonts, n_strokes = len(HELDOUT_FONTS), len(STROKES)
    sizes = {"train": n_train, "val": val_size(n_train, 1000), "test": 2000}
    arrays = []
    for split_id, (split, n) in enumerate(sizes.items()):
        rng = np.random.default_rng([seed, split_id])
        y = rng.permutation(np.repeat(np.arange(10), balanced_counts(n, 10))).astype(np.int32)
        font = rng.integers(n_fonts, size=n)
        stroke = rng.choice([STROKES.index(s) for s in _FONT_DIGITS_STROKES[split]], size=n)
        ids = np.pad((y * n_fonts + font) * n_strokes + stroke, (0, -n % _CHUNK))
        key = jax.random.fold_in(jax.random.key(seed), split_id)
        chunks = [
            augment_glyphs(bank, ids[i : i + _CHUNK], jax.random.fold_in(key, i // _CHUNK), img_size=img_size, aug=aug)
            for i in range(0, len(ids), _CHUNK)
        ]
        x = np.concatenate([np.asarray(c) for c in chunks])[:n, :, :, None]
        arrays += [np.repeat(x, in_chans, axis=-1) if in_chans > 1 else x, y]
    x_train, y_train, x_val, y_val, x_test, y_test = arrays
    return Dataset(
        "font-digits",
        x_train,
        y_train,
        x_val,
        y_val,
        x_test,
        y_test,
        class_names=tuple(DIGITS),
        provenance={
            "source": "digits rendered with matplotlib's FT2Font from fonts not used for pretraining",
            "seed": seed,
            "fonts": list(HELDOUT_FONTS),
            "strokes": {k: list(v) for k, v in _FONT_DIGITS_STROKES.items()},
            "render_size": size,
            "augment": asdict(aug),
            "split": "separate PRNG streams per split; training strokes differ from validation/test strokes",
            "sizes": sizes,
            "conversion": {
                "steps": [f"rendered at {size}px, sampled to {img_size}px"]
                + (["grey->rgb (channel repeated)"] if in_chans == 3 else [])
            },
        },
    )


# ------------------------------------------------------------------------------------------- textures


TEXTURE_IMAGES = ("brick", "grass", "gravel", "camera", "coins", "moon", "astronaut", "coffee", "chelsea", "rocket")
_PATCH_FOOTPRINT = 64  # original-image pixels covered by one patch side, whatever img_size is
_GAP = 4  # pixels trimmed from each side of a region, so regions of different splits never touch


@dataclass(frozen=True)
class TextureLayout:
    """The greyscale images rescaled so a patch covers ``_PATCH_FOOTPRINT`` original pixels, and per class
    and split the [y0, x0, y1, x1) boxes (in rescaled pixels) that patches of that split are cut from."""

    images: tuple[np.ndarray, ...]
    scale: float
    boxes: dict[str, tuple[tuple[tuple[int, int, int, int], ...], ...]]  # split -> class -> boxes


@functools.lru_cache(maxsize=2)
def texture_layout(img_size: int) -> TextureLayout:
    """Load the images once per size and cut each into a grid of cells, ~25% test, ~15% val, the rest
    train. The assignment is fixed per class (not per seed), so regions are stable across runs."""
    import skimage.data  # each target loads its own source library when it is built
    from skimage.color import rgb2gray
    from skimage.transform import rescale

    scale = img_size / _PATCH_FOOTPRINT
    images: list[np.ndarray] = []
    boxes: dict[str, list[tuple[tuple[int, int, int, int], ...]]] = {"train": [], "val": [], "test": []}
    for c, name in enumerate(TEXTURE_IMAGES):
        img = getattr(skimage.data, name)()
        img = rgb2gray(img) if img.ndim == 3 else img / 255.0
        img = rescale(img, scale, anti_aliasing=scale < 1).astype(np.float32)
        img.setflags(write=False)
        images.append(img)
        rows, cols = (max(1, s // (2 * img_size)) for s in img.shape)
        ys, xs = (np.linspace(0, s, k + 1).astype(int) for s, k in zip(img.shape, (rows, cols), strict=True))
        spans = [(y0, y1, x0, x1) for y0, y1 in itertools.pairwise(ys) for x0, x1 in itertools.pairwise(xs)]
        cells = [(int(y0) + _GAP, int(x0) + _GAP, int(y1) - _GAP, int(x1) - _GAP) for y0, y1, x0, x1 in spans]
        order = np.random.default_rng(c).permutation(len(cells))
        n_test, n_val = max(1, round(0.25 * len(cells))), max(1, round(0.15 * len(cells)))
        parts = {"test": order[:n_test], "val": order[n_test : n_test + n_val], "train": order[n_test + n_val :]}
        for split, members in parts.items():
            boxes[split].append(tuple(cells[i] for i in sorted(members)))
    return TextureLayout(tuple(images), scale, {k: tuple(v) for k, v in boxes.items()})


def texture_patches(split: str, n: int, seed: int, img_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` class-balanced patches of ``split``: images (n, S, S) float32, labels int32 and, per patch,
    (class, y, x, flipped) with (y, x) its top-left corner in the rescaled image."""
    layout = texture_layout(img_size)
    rng = np.random.default_rng([seed, ("train", "val", "test").index(split)])
    y = rng.permutation(np.repeat(np.arange(len(TEXTURE_IMAGES)), balanced_counts(n, len(TEXTURE_IMAGES))))
    out = np.empty((n, img_size, img_size), np.float32)
    where = np.empty((n, 4), np.int64)
    for c in range(len(TEXTURE_IMAGES)):
        members = np.flatnonzero(y == c)
        k = len(members)
        boxes = np.array(layout.boxes[split][c])
        corners = (boxes[:, 2:] - boxes[:, :2] - img_size + 1).prod(axis=1)  # valid top-left corners per box
        box = boxes[rng.choice(len(boxes), size=k, p=corners / corners.sum())]
        top = rng.integers(box[:, 0], box[:, 2] - img_size + 1)
        left = rng.integers(box[:, 1], box[:, 3] - img_size + 1)
        flip = rng.random(k) < 0.5
        grid = np.arange(img_size)
        patches = layout.images[c][top[:, None, None] + grid[:, None], left[:, None, None] + grid]
        patches[flip] = patches[flip, :, ::-1]
        out[members], where[members] = patches, np.stack([np.full(k, c), top, left, flip], axis=1)
    return out, y.astype(np.int32), where


@_target(
    "textures",
    "patches of 10 scikit-image photos and textures (brick, grass, gravel, camera, coins, moon, astronaut, "
    "coffee, chelsea, rocket), each split cut from its own image regions",
    similar_by_design=False,
    n_classes=10,
    max_train=5000,
)
def textures(n_train: int, seed: int, img_size: int, in_chans: int) -> Dataset:
    """Greyscale texture/photo patches with random horizontal flips; splits come from disjoint regions."""
    layout = texture_layout(img_size)
    sizes = {"train": n_train, "val": val_size(n_train, 1000), "test": 2000}
    arrays = []
    for split, n in sizes.items():
        x, y, _ = texture_patches(split, n, seed, img_size)
        arrays += [np.repeat(x[..., None], in_chans, axis=-1), y]
    x_train, y_train, x_val, y_val, x_test, y_test = arrays
    return Dataset(
        "textures",
        x_train,
        y_train,
        x_val,
        y_val,
        x_test,
        y_test,
        class_names=TEXTURE_IMAGES,
        provenance={
            "source": "skimage.data images, converted to grey (ITU-R 709 luminance)",
            "seed": seed,
            "image_scale": layout.scale,
            "patch_footprint_px": _PATCH_FOOTPRINT,
            "split": "grid cells of each image assigned to one split, trimmed by a gap; every patch lies inside "
            "a cell of its own split; random horizontal flips",
            "regions": {
                split: {name: [list(b) for b in layout.boxes[split][c]] for c, name in enumerate(TEXTURE_IMAGES)}
                for split in sizes
            },
            "regions_coords": "[y0, x0, y1, x1) in pixels of the image rescaled by image_scale",
            "sizes": sizes,
            "conversion": {
                "steps": [f"rescale x{layout.scale:g} (anti-aliased)", f"crop {img_size}x{img_size}"]
                + (["grey->rgb (channel repeated)"] if in_chans == 3 else [])
            },
        },
    )
