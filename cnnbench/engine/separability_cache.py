"""Measured separabilities kept on disk, so a warm run does not measure a target's similarity again (SPEC §4).

A similarity is two separabilities, the target's and the held-out source's, and each is a deterministic function of
the pretrained base (its cache entry names everything that built it), the random-init base of the same arch, the
precision, the images and the measuring code. An entry is keyed by all of them and carries a digest of its content
(:func:`cnnbench.engine.integrity.seal`); an entry written for another key, changed since it was written, or one that
cannot be read, is measured again with a warning, never used. Writes are atomic, so concurrent workers at worst
measure the same thing twice. A read-only cache serves the entries it holds; what it lacks is measured and not kept.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Callable
from dataclasses import asdict, astuple
from pathlib import Path

import numpy as np

import cnnbench
from cnnbench.engine import hosts, integrity, similarity
from cnnbench.engine.similarity import Separability
from cnnbench.fileio import atomic_write

_CODE = hashlib.sha256(Path(similarity.__file__).read_bytes()).hexdigest()[:16]


class SeparabilityCacheWarning(UserWarning):
    """A cached separability could not be used and is being measured again."""


def data_digest(*arrays: np.ndarray) -> str:
    """A digest of the arrays' shapes, dtypes and bytes: the images and labels a separability was measured on."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.shape}{a.dtype}".encode())
        h.update(a.data)
    return h.hexdigest()[:16]


class SeparabilityCache:
    """``cache_dir/similarity/``: one JSON file per (pretrained base, precision, images) separability."""

    def __init__(self, cache_dir: Path) -> None:
        self.root = Path(cache_dir) / "similarity"

    def get(self, base: str, precision: str, data: str, measure: Callable[[], Separability]) -> Separability:
        """The separability that ``base`` (its pretraining cache entry's name) at ``precision`` gives the images of
        digest ``data``: read from disk, or ``measure()``d and stored. In a multi-process job process 0 reads and
        writes the file and the others take its answer (``hosts.from_leader``), so all measure, or none."""
        key = {"base": base, "precision": precision, "data": data, "method": similarity.METHOD, "code": _CODE,
               "cnnbench": cnnbench.__version__}  # fmt: skip
        path = self.root / f"{base}-{precision}-{data}.json"
        cached = self._read(path, key) if hosts.leader() else None
        found, pretrained, random = hosts.from_leader(
            np.array([cached is not None, *(astuple(cached) if cached else (0.0, 0.0))], np.float64)
        )
        if found:
            return Separability(float(pretrained), float(random))
        value = measure()
        if hosts.leader() and not integrity.unwritable(self.root):
            atomic_write(path, json.dumps(integrity.seal({"key": key, **asdict(value)}), indent=1))
        return value

    def _read(self, path: Path, key: dict) -> Separability | None:
        """The entry at ``path`` if it was written for ``key`` and matches its digest; None where there is none,
        with a warning where it cannot be used (an error where the cache cannot be written, so it would stay)."""
        if not path.exists():
            return None
        try:
            entry = integrity.unseal(json.loads(path.read_text()))
            if entry["key"] != key:
                raise ValueError("it was written for a different configuration")
            return Separability(float(entry["pretrained"]), float(entry["random"]))
        except (ValueError, KeyError, TypeError) as exc:  # JSONDecodeError, UnicodeDecodeError are ValueErrors
            why = integrity.unwritable(self.root)
            if why:
                raise integrity.read_only_error("similarity cache entry", path, str(exc), why) from None
            warnings.warn(f"similarity cache entry {path} is unusable ({exc}); measuring again",
                          SeparabilityCacheWarning, stacklevel=3)  # fmt: skip
            return None
