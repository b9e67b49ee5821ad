"""Glyphs rendered from the TrueType fonts that matplotlib ships, and a jitted augmentation that turns them
into training images.

Nothing is downloaded: every glyph comes from ``matplotlib/mpl-data/fonts/ttf``. A glyph is rendered once
per (font, character, size, stroke) at a resolution above the output size, then many random affine views of
it are sampled on the fly, so an unlimited source domain costs one bank of bitmaps.
"""

from __future__ import annotations

import functools
import os
import string
from dataclasses import dataclass
from typing import cast

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np
from matplotlib.ft2font import FT2Font, LoadFlags
from scipy import ndimage

LETTERS = string.ascii_lowercase + string.ascii_uppercase
DIGITS = string.digits

# Fonts with real, distinct glyphs for a-z, A-Z and 0-9 (checked by tests/test_data.py). matplotlib's other
# fonts (DejaVu*Display, STIXNonUni*, STIXSiz*, cmsy10, cmex10, LastResortHE) hold symbols or .notdef boxes.
SOURCE_FONTS: tuple[str, ...] = (
    "DejaVuSans", "DejaVuSans-Bold", "DejaVuSans-Oblique",
    "DejaVuSansMono", "DejaVuSansMono-Bold", "DejaVuSansMono-BoldOblique",
    "DejaVuSerif", "DejaVuSerif-Bold", "DejaVuSerif-Italic",
    "STIXGeneral", "STIXGeneralItalic", "STIXGeneralBolIta",
    "cmr10", "cmss10", "cmtt10", "cmti10", "cmb10", "cmmi10",
)  # fmt: skip
# Never seen in pretraining: used only for the ``font-digits`` target.
HELDOUT_FONTS: tuple[str, ...] = (
    "DejaVuSans-BoldOblique", "DejaVuSansMono-Oblique", "DejaVuSerif-BoldItalic", "STIXGeneralBol",
)  # fmt: skip

STROKES: tuple[str, ...] = ("thin", "normal", "bold")

_CAP_HEIGHT = 0.44  # height of "H" as a fraction of the canvas; leaves room for ascenders and descenders
_BASELINE = 0.5 + 0.375 * _CAP_HEIGHT  # baseline row (fraction) that centres the ascender-descender span


def font_path(font: str) -> str:
    """Path of one of matplotlib's bundled ``.ttf`` fonts, given its file stem (e.g. ``"DejaVuSans"``)."""
    folder = os.path.join(matplotlib.get_data_path(), "fonts", "ttf")
    path = os.path.join(folder, font + ".ttf")
    if not os.path.isfile(path):
        known = sorted(f[:-4] for f in os.listdir(folder) if f.endswith(".ttf"))
        raise ValueError(f"unknown font {font!r}; matplotlib ships: {', '.join(known)}")
    return path


@functools.cache
def _face(font: str):  # one FT2Font per font: opening a face costs more than rendering a glyph
    return FT2Font(font_path(font))


def has_glyph(font: str, char: str) -> bool:
    """Whether ``font`` maps ``char`` to a real glyph rather than the .notdef box."""
    return _face(font).get_char_index(ord(char), _fallback=False) != 0


@functools.cache
def render_glyph(font: str, char: str, size: int = 64, stroke: str = "normal") -> np.ndarray:
    """``char`` in ``font`` as a read-only (size, size) float32 bitmap in [0, 1], ink = 1.

    Every font is scaled to the same cap height and drawn on a common baseline, centred horizontally, so
    relative size and position (``o`` vs ``O``, ``p`` vs ``P``) carry over between fonts. ``stroke`` thins or
    thickens the strokes with grey-scale erosion / dilation.
    """
    if stroke not in STROKES:
        raise ValueError(f"unknown stroke {stroke!r}; known: {', '.join(STROKES)}")
    if not has_glyph(font, char):
        raise ValueError(f"font {font!r} has no glyph for {char!r}")
    face = _face(font)
    face.set_size(100, 72)  # cap height as a fraction of the em, measured at 100 px per em
    cap = face.load_char(ord("H"), LoadFlags.NO_HINTING).horiBearingY / 64 / 100
    face.set_size(_CAP_HEIGHT * size / cap, 72)
    glyph = face.load_char(ord(char), LoadFlags.NO_HINTING)
    scratch = np.zeros((3 * size, 3 * size), np.uint8)
    baseline = size + round(_BASELINE * size)
    face.draw_glyph_to_bitmap(scratch, size, baseline - round(glyph.horiBearingY / 64), glyph)
    cols = np.flatnonzero(scratch.max(axis=0))
    left = (cols[0] + cols[-1] + 1) // 2 - size // 2
    img = scratch[size : 2 * size, left : left + size].astype(np.float32) / 255.0
    if stroke == "thin":
        img = ndimage.grey_erosion(img, size=(2, 2))
    elif stroke == "bold":
        img = ndimage.grey_dilation(img, footprint=ndimage.generate_binary_structure(2, 1))
    img.setflags(write=False)
    return img


@functools.lru_cache(maxsize=8)
def glyph_bank(fonts: tuple[str, ...], chars: str, strokes: tuple[str, ...], size: int, img_size: int) -> jax.Array:
    """All glyphs as one (chars × fonts × strokes, size, size) device array, index ``(c*F + f)*K + k``.

    The bitmaps are pre-blurred for sampling down to ``img_size`` (anti-aliasing), so the augmentation can
    use plain bilinear interpolation.
    """
    bank = np.stack([render_glyph(f, c, size, k) for c in chars for f in fonts for k in strokes])
    sigma = max(0.0, (size / img_size - 1) / 2)
    if sigma > 0:
        bank = ndimage.gaussian_filter(bank, sigma=(0, sigma, sigma))
    return jnp.asarray(bank, jnp.float32)


def render_size(img_size: int) -> int:
    """Resolution at which glyphs are rendered for an output of ``img_size``: 2× oversampled, 48–128 px."""
    return int(min(128, max(48, 2 * img_size)))


@dataclass(frozen=True)
class Augment:
    """Ranges of the random transforms applied to each glyph; part of the source domain's cache key."""

    rotation_deg: float = 15.0
    scale: tuple[float, float] = (0.9, 2.0)  # up to 2: a glyph fills the frame, as scanned digits do
    aspect: tuple[float, float] = (0.9, 1.1)  # extra horizontal stretch
    shear_deg: float = 10.0
    translate: float = 0.08  # fraction of the image side
    ink: tuple[float, float] = (0.6, 1.0)
    background: tuple[float, float] = (0.0, 0.3)
    noise_std: tuple[float, float] = (0.0, 0.08)
    blur_sigma: tuple[float, float] = (0.0, 2.5)  # Gaussian blur in output pixels: low-resolution, upsampled looks


@functools.partial(jax.jit, static_argnames=("img_size", "aug"))
def augment_glyphs(bank: jax.Array, idx: jax.Array, key: jax.Array, *, img_size: int, aug: Augment) -> jax.Array:
    """Random affine views of ``bank[idx]`` at (len(idx), img_size, img_size), float32 in [0, 1].

    Each image gets its own rotation, scale, shear, translation, blur, ink/background levels and Gaussian
    noise, all drawn from ``key``: the result is a pure function of (bank, idx, key).
    """
    n, size = idx.shape[0], bank.shape[-1]
    k_geo, k_tone, k_noise, k_blur = jax.random.split(key, 4)
    u = jax.random.uniform(k_geo, (7, n), minval=-1.0, maxval=1.0)
    angle = jnp.deg2rad(aug.rotation_deg) * u[0]
    scale = _between(u[1], aug.scale)
    sx, sy = scale * _between(u[2], aug.aspect), scale
    shear = jnp.tan(jnp.deg2rad(aug.shear_deg) * u[3])
    shift = aug.translate * img_size * u[4:6]  # (2, n) in output pixels
    # forward map (glyph -> image) = rotation @ shear @ diag(sx, sy); sample with its inverse
    cos, sin = jnp.cos(angle), jnp.sin(angle)
    a, b = cos * sx, (cos * shear - sin) * sy
    c, d = sin * sx, (sin * shear + cos) * sy
    det = a * d - b * c
    grid = (jnp.arange(img_size, dtype=jnp.float32) + 0.5 - img_size / 2) * (size / img_size)
    ox = grid[None, None, :] - shift[0, :, None, None] * (size / img_size)
    oy = grid[None, :, None] - shift[1, :, None, None] * (size / img_size)
    a, b, c, d, det = (v[:, None, None] for v in (a, b, c, d, det))
    src_x = (d * ox - b * oy) / det + size / 2 - 0.5
    src_y = (a * oy - c * ox) / det + size / 2 - 0.5
    img = _bilinear(bank.reshape(-1), idx, src_y, src_x, size)
    img = _blur(img, _between(jax.random.uniform(k_blur, (n,), minval=-1.0, maxval=1.0), aug.blur_sigma))

    t = jax.random.uniform(k_tone, (3, n))
    ink = _between(2 * t[0] - 1, aug.ink)
    bg = _between(2 * t[1] - 1, aug.background)
    noise_std = _between(2 * t[2] - 1, aug.noise_std)
    img = bg[:, None, None] + (ink - bg)[:, None, None] * img
    img = img + noise_std[:, None, None] * jax.random.normal(k_noise, img.shape)
    return jnp.clip(img, 0.0, 1.0)


def _blur(img: jax.Array, sigma: jax.Array, radius: int = 3) -> jax.Array:
    """Separable Gaussian blur of each (S, S) image with its own ``sigma`` (0 leaves the image unchanged)."""
    taps = jnp.arange(-radius, radius + 1, dtype=jnp.float32)
    w = jnp.exp(-0.5 * (taps[None, :] / jnp.maximum(sigma[:, None], 1e-3)) ** 2)
    w = w / w.sum(-1, keepdims=True)  # (n, taps)
    size = img.shape[-1]
    padded = jnp.pad(img, ((0, 0), (radius, radius), (radius, radius)))
    # sum() of a non-empty sequence of arrays is an array (its typing also allows the 0 of an empty one)
    rows = cast(jax.Array, sum(w[:, k, None, None] * padded[:, :, k : k + size] for k in range(2 * radius + 1)))
    return cast(jax.Array, sum(w[:, k, None, None] * rows[:, k : k + size, :] for k in range(2 * radius + 1)))


def _between(u: jax.Array, bounds: tuple[float, float]) -> jax.Array:
    """Map ``u`` in [-1, 1] linearly onto [lo, hi]."""
    lo, hi = bounds
    return lo + (u + 1) * (hi - lo) / 2


def _bilinear(flat: jax.Array, idx: jax.Array, y: jax.Array, x: jax.Array, size: int) -> jax.Array:
    """Bilinear samples of glyphs ``idx`` of a flattened (G, size, size) bank at (y, x); zero outside."""
    y0, x0 = jnp.floor(y), jnp.floor(x)
    wy, wx = y - y0, x - x0
    y0, x0 = y0.astype(jnp.int32), x0.astype(jnp.int32)
    base = (idx * size * size)[:, None, None]
    out = jnp.zeros(y.shape, flat.dtype)
    for dy, dx, w in ((0, 0, (1 - wy) * (1 - wx)), (0, 1, (1 - wy) * wx), (1, 0, wy * (1 - wx)), (1, 1, wy * wx)):
        yy, xx = y0 + dy, x0 + dx
        inside = (yy >= 0) & (yy < size) & (xx >= 0) & (xx < size)
        pix = flat[base + jnp.clip(yy, 0, size - 1) * size + jnp.clip(xx, 0, size - 1)]
        out = out + jnp.where(inside, w * pix, 0.0)
    return out
