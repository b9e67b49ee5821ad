"""The cache directory as a whole: what it holds, emptying it, and the digest a CI cache of it is keyed by.

The writers each own a part of ``<cache>`` (docs/architecture.md, Caches): ``pretrained/<arch>-<digest>/``, an orbax
``state/``, a ``meta.json`` and a ``SHA256SUMS`` of both, built in a ``.tmp`` sibling under a ``.lock`` one
(:mod:`cnnbench.engine.pretrain`); ``similarity/*.json``, separabilities measured with those bases, each with a
digest (:mod:`cnnbench.engine.separability_cache`); and ``xla/<backend>/``, JAX's persistent compilation cache, one
``<key>-cache`` file a program and its ``.sha256`` beside it (:func:`cnnbench.engine.programs.persist`).
:func:`inspect` and :func:`clear` read and remove these by their names alone, and check each base against its
digests (:mod:`cnnbench.engine.integrity`), without JAX, so ``cnnbench cache info`` and ``cnnbench cache clear``
start at once; only :func:`bases_key` loads it, because a base's key names the JAX backend.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cnnbench.engine.integrity import BASE_FORMAT, PROGRAM_SUFFIX, IntegrityError, check_sums

if TYPE_CHECKING:  # the runner loads JAX: only bases_key uses it
    from cnnbench.engine.runner import Runner

PRETRAINED = "pretrained"
SIMILARITY = "similarity"
XLA = "xla"
WEIGHTS = "weights"  # imported checkpoints (engine/imported.py): not rebuildable, so not cleared by default
XLA_PROGRAM_SUFFIX = PROGRAM_SUFFIX  # JAX's LRU cache: <key>-cache holds a program, <key>-atime when it was last read
PARTS = {"pretrained": (PRETRAINED, SIMILARITY), "programs": (XLA,), "weights": (WEIGHTS,)}  # `cache clear --<part>`
DEFAULT_PARTS = ("pretrained", "programs")  # what `cache clear` alone removes: what a run rebuilds
KEY_DIGITS = 16


@dataclass(frozen=True)
class Base:
    """One pretrained base's entry: its name and arch, its size on disk, what its ``meta.json`` says (the source
    accuracy, the pretraining's seconds and steps, the model config, backend and cnnbench version; None where it
    does not say) and, for an entry pretrain.py would rebuild, why (``problem``: a file that differs from the
    entry's ``SHA256SUMS`` among others; None when every file matches it)."""

    name: str
    arch: str
    bytes: int
    source_accuracy: float | None = None
    seconds: float | None = None
    steps: int | None = None
    img_size: int | None = None
    in_chans: int | None = None
    width: float | None = None
    backend: str | None = None
    cnnbench: str | None = None
    problem: str | None = None


@dataclass(frozen=True)
class Programs:
    """XLA's compiled programs for one backend: how many and their bytes (access-time files included)."""

    backend: str
    programs: int
    bytes: int


@dataclass(frozen=True)
class Contents:
    """What a cache directory holds: its bases, the unfinished builds beside them (``.tmp``, interrupted or under
    way), the compiled programs per backend, the similarity entries, and every byte, counted once in ``total``;
    ``other_bytes`` are files cnnbench did not write there."""

    root: Path
    exists: bool
    bases: tuple[Base, ...]
    unfinished: tuple[tuple[str, int], ...]
    pretrained_bytes: int
    programs: tuple[Programs, ...]
    similarity_entries: int
    similarity_bytes: int
    weights_entries: int  # imported checkpoints, each a folder under weights/
    weights_bytes: int
    other_bytes: int
    total_bytes: int

    @property
    def programs_bytes(self) -> int:
        return sum(p.bytes for p in self.programs)

    def to_json(self) -> dict[str, Any]:
        """The ``cnnbench cache info --json`` object."""
        return {
            "path": str(self.root),
            "exists": self.exists,
            "total_bytes": self.total_bytes,
            "pretrained": {"bytes": self.pretrained_bytes, "bases": [asdict(b) for b in self.bases],
                           "unfinished": [{"name": n, "bytes": size} for n, size in self.unfinished]},
            "programs": {"bytes": self.programs_bytes, "backends": [asdict(p) for p in self.programs]},
            "similarity": {"bytes": self.similarity_bytes, "entries": self.similarity_entries},
            "weights": {"bytes": self.weights_bytes, "entries": self.weights_entries},
            "other_bytes": self.other_bytes,
        }  # fmt: skip


@dataclass(frozen=True)
class Removed:
    """One part :func:`clear` removed: its directory's name, how many entries it held and the bytes freed."""

    part: str
    entries: int
    bytes: int


def disk_bytes(path: Path) -> int:
    """The bytes of the file at ``path``, or of every file under the directory (links not followed); 0 when there
    is nothing."""
    if path.is_symlink() or path.is_file():
        return path.lstat().st_size
    return sum(
        (Path(directory) / name).lstat().st_size
        for directory, _, files in os.walk(path)
        for name in files
    )  # fmt: skip


def inspect(root: Path) -> Contents:
    """What the cache directory ``root`` holds (an empty account when it does not exist)."""
    root = Path(root).absolute()
    pretrained, xla, similarity = root / PRETRAINED, root / XLA, root / SIMILARITY
    children = list(pretrained.iterdir()) if pretrained.is_dir() else []
    bases = tuple(_base(p) for p in sorted(children) if p.is_dir() and p.suffix not in (".tmp", ".lock"))
    unfinished = tuple((p.name, disk_bytes(p)) for p in sorted(children) if p.suffix == ".tmp")
    backends = sorted(p for p in xla.iterdir() if p.is_dir()) if xla.is_dir() else []
    programs = tuple(Programs(p.name, _count(p.iterdir(), XLA_PROGRAM_SUFFIX), disk_bytes(p)) for p in backends)
    entries = list(similarity.glob("*.json")) if similarity.is_dir() else []
    imported = [p for p in (root / WEIGHTS).iterdir() if p.is_dir()] if (root / WEIGHTS).is_dir() else []
    total = disk_bytes(root) if root.is_dir() else 0
    sizes = {name: disk_bytes(root / name) for name in (PRETRAINED, XLA, SIMILARITY, WEIGHTS)}
    return Contents(
        root=root,
        exists=root.is_dir(),
        bases=bases,
        unfinished=unfinished,
        pretrained_bytes=sizes[PRETRAINED],
        programs=programs,
        similarity_entries=len(entries),
        similarity_bytes=sizes[SIMILARITY],
        weights_entries=len(imported),
        weights_bytes=sizes[WEIGHTS],
        other_bytes=total - sum(sizes.values()),
        total_bytes=total,
    )


def _count(paths: Iterable[Path], suffix: str) -> int:
    return sum(p.name.endswith(suffix) for p in paths)


def _base(entry: Path) -> Base:
    """The entry's account from its ``meta.json`` (pretrain.py's layout: ``{key, source_accuracy, seconds}``)."""
    size, arch = disk_bytes(entry), entry.name.rsplit("-", 1)[0]
    try:
        meta = json.loads((entry / "meta.json").read_text())
        key = meta["key"]
        model = key["model"]
        base = Base(
            name=entry.name, arch=model["arch"], bytes=size, source_accuracy=meta["source_accuracy"],
            seconds=meta["seconds"], steps=key["pretrain"]["train"]["steps"], img_size=model["img_size"],
            in_chans=model["in_chans"], width=model["width"], backend=key["backend"], cnnbench=key["cnnbench"],
        )  # fmt: skip
    except FileNotFoundError:
        return Base(entry.name, arch, size, problem="no meta.json: the entry was never completed")
    except (OSError, ValueError, LookupError, TypeError) as exc:  # JSONDecodeError is a ValueError
        return Base(entry.name, arch, size, problem=f"meta.json unreadable ({type(exc).__name__}: {exc})")
    if key.get("format", 1) != BASE_FORMAT:
        return replace(base, problem=f"format {key.get('format', 1)}, from an older cnnbench: no longer read (its base "
                                     "is built anew, in a new entry)")  # fmt: skip
    if not (entry / "state").is_dir():
        return replace(base, problem="no state/: the checkpoint is missing")
    try:
        check_sums(entry)
    except IntegrityError as exc:
        return replace(base, problem=str(exc))
    return base


def clear(root: Path, parts: Sequence[str] = DEFAULT_PARTS) -> list[Removed]:
    """Remove these parts of the cache directory ``root`` (``pretrained``: the bases, with the similarities measured
    with them; ``programs``: XLA's compiled programs; ``weights``: imported checkpoints) and say what each held.
    Only the directories cnnbench writes are touched, so a mistaken ``root`` loses nothing else. Nothing must be
    running on the cache meanwhile."""
    contents = inspect(root)
    counts = {PRETRAINED: len(contents.bases), SIMILARITY: contents.similarity_entries,
              XLA: sum(p.programs for p in contents.programs), WEIGHTS: contents.weights_entries}  # fmt: skip
    removed = []
    for name in (directory for part in parts for directory in PARTS[part]):
        path = contents.root / name
        if path.exists():
            size = disk_bytes(path)
            shutil.rmtree(path)
            removed.append(Removed(name, counts[name], size))
    return removed


def bases_key(runner: Runner, archs: Sequence[str]) -> str:
    """A digest of the pretraining cache keys (:func:`cnnbench.engine.pretrain.cache_key`: model config, the arch's
    code, source and pretraining configs, cnnbench version, JAX backend) of ``archs`` as ``runner``'s suite
    pretrains them: it changes exactly when one of the bases the suite would cache changes, or the set of archs,
    whatever their order. A CI cache keyed by it is restored as long as its bases still serve."""
    from cnnbench.engine.pretrain import cache_key  # JAX (the backend): loaded only by the key, not by inspect/clear

    suite = runner.suite
    keys = [cache_key(runner.model_config(a), runner.source, suite.pretrain_config(a)) for a in sorted(set(archs))]
    return hashlib.sha256(json.dumps(keys, sort_keys=True).encode()).hexdigest()[:KEY_DIGITS]
