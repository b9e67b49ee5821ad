"""The procedural source domain used for pretraining: letters rendered from matplotlib's fonts under random
affine transforms, stroke variation, contrast changes and noise.

Every batch is a pure function of (config, seed, step), so pretraining needs no dataset on disk and a cached
base is fully described by ``SourceConfig.to_dict()``.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from cnnbench.data.glyphs import LETTERS, SOURCE_FONTS, STROKES, Augment, augment_glyphs, glyph_bank, render_size

_TRAIN_STREAM, _EVAL_STREAM = 0, 1  # folded into the key, so evaluation images never repeat a training batch


@dataclass(frozen=True)
class SourceConfig:
    """Everything that determines the source domain; ``to_dict()`` is part of the pretraining cache key."""

    img_size: int = 32
    in_chans: int = 1
    chars: str = LETTERS
    fonts: tuple[str, ...] = SOURCE_FONTS
    strokes: tuple[str, ...] = STROKES
    augment: Augment = field(default_factory=Augment)
    eval_seed: int = 20240601
    version: int = 1

    def __post_init__(self) -> None:
        if self.in_chans not in (1, 3):
            raise ValueError(f"SourceConfig.in_chans must be 1 or 3, got {self.in_chans}")
        if self.img_size < 8:
            raise ValueError(f"SourceConfig.img_size must be at least 8, got {self.img_size}")
        if len(set(self.chars)) != len(self.chars):
            raise ValueError(f"SourceConfig.chars has duplicates: {self.chars!r}")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable description (tuples become lists)."""
        return _jsonable(dataclasses.asdict(self))


class SourceDomain:
    """Deterministic batches of augmented glyphs; the class of ``chars[i]`` is ``i``."""

    def __init__(self, config: SourceConfig | None = None) -> None:
        self.config = config or SourceConfig()
        self._size = render_size(self.config.img_size)

    @property
    def n_classes(self) -> int:
        return len(self.config.chars)

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(self.config.chars)

    @functools.cached_property
    def _bank(self) -> jax.Array:
        c = self.config
        return glyph_bank(c.fonts, c.chars, c.strokes, self._size, c.img_size)

    def batch(self, seed: int, step: int, batch_size: int) -> tuple[jax.Array, jax.Array]:
        """Training batch ``step`` of run ``seed``: images (B, S, S, in_chans) float32 in [0, 1] and int32
        labels, as JAX arrays on the default device. Classes, fonts and strokes are uniformly random."""
        return self._generate(_train_key(seed, step), batch_size)

    def eval_set(self, n: int) -> tuple[jax.Array, jax.Array]:
        """A fixed held-out set of ``n`` images (same format as ``batch``), drawn from its own key stream."""
        key = jax.random.fold_in(jax.random.key(self.config.eval_seed), _EVAL_STREAM)
        return self._generate(key, n)

    def batch_glyphs(self, seed: int, step: int, batch_size: int) -> np.ndarray:
        """Which glyph each image of ``batch(seed, step, batch_size)`` shows: (B, 3) int indices into
        (chars, fonts, strokes), for coverage checks and per-font error analysis."""
        k_idx = jax.random.split(_train_key(seed, step))[0]  # the split that _sample makes
        idx = np.asarray(_glyph_ids(k_idx, batch_size, self._bank.shape[0]))
        n_fonts, n_strokes = len(self.config.fonts), len(self.config.strokes)
        return np.stack([idx // (n_fonts * n_strokes), idx // n_strokes % n_fonts, idx % n_strokes], axis=1)

    def _generate(self, key: jax.Array, n: int) -> tuple[jax.Array, jax.Array]:
        c = self.config
        x, y = _sample(self._bank, key, n, len(c.fonts) * len(c.strokes), c.img_size, c.augment)
        return (_to_rgb(x) if c.in_chans == 3 else x), y


def _train_key(seed: int, step: int) -> jax.Array:
    return jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), _TRAIN_STREAM), step)


def _glyph_ids(key: jax.Array, n: int, n_glyphs: int) -> jax.Array:
    return jax.random.randint(key, (n,), 0, n_glyphs)


@functools.partial(jax.jit, static_argnames=("n", "per_class", "img_size", "aug"))
def _sample(bank, key, n, per_class, img_size, aug):
    k_idx, k_aug = jax.random.split(key)
    idx = _glyph_ids(k_idx, n, bank.shape[0])
    x = augment_glyphs(bank, idx, k_aug, img_size=img_size, aug=aug)[..., None]
    return x, (idx // per_class).astype(jnp.int32)


@jax.jit
def _to_rgb(x: jax.Array) -> jax.Array:
    """Grey to RGB in its own program: fused into ``_sample``, XLA recomputes every pixel per channel (10× slower)."""
    return jnp.repeat(x, 3, axis=-1)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    return value
