"""Imported weights in the cache: ``<cache>/weights/<tag>/``, one zoo model's full state from a checkpoint file.

An entry is an orbax ``state/`` (every parameter and BatchNorm statistic, classifier included), a ``meta.json``
(the arch, the class count, the source framework, the file and its sha256, the preprocessing the weights expect)
and a ``SHA256SUMS`` of both, written last (:mod:`cnnbench.engine.integrity`), so a damaged entry is refused,
never used. Entries are built in a ``.tmp`` sibling and renamed into place. Unlike pretrained bases they cannot be
rebuilt from a recipe, so ``cnnbench cache clear`` leaves them unless asked (``--weights``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from flax import nnx

import cnnbench
from cnnbench.engine import integrity
from cnnbench.fileio import atomic_write
from cnnbench.weights import Preprocessing, WeightsError
from cnnbench.weights.convert import Imported
from cnnbench.zoo import ZooModel, create_model, get_spec

WEIGHTS = "weights"
WEIGHT_KINDS = (nnx.Param, nnx.BatchStat)  # what an entry stores: no dropout RNG state
_TAG = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}")


@dataclass(frozen=True)
class Entry:
    """What ``meta.json`` says about one imported checkpoint."""

    tag: str
    arch: str
    num_classes: int  # of the file's classifier (0: none)
    in_chans: int  # the arch's canonical input, the only one the weights fit
    img_size: int
    source: str  # torchvision, timm or keras
    file: str  # the imported file's path, as given
    file_sha256: str
    preprocessing: Preprocessing
    caveat: str | None
    imported: str  # when, ISO 8601
    cnnbench: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Entry:
        pre = obj["preprocessing"]
        return cls(**{**obj, "preprocessing": Preprocessing(tuple(pre["mean"]), tuple(pre["std"]), pre["name"])})


def weights_dir(cache_dir: Path) -> Path:
    return Path(cache_dir) / WEIGHTS


def check_tag(tag: str) -> str:
    """``tag`` when it can name a cache entry (letters, digits, ``.``, ``_``, ``+``, ``-``; up to 64), else an error."""
    if not _TAG.fullmatch(tag):
        raise WeightsError(
            f"weights tag {tag!r}: use up to 64 letters, digits, '.', '_', '+' or '-', starting with a letter or digit"
        )
    return tag


def destination(tag: str, cache_dir: Path, *, replace: bool = False) -> Path:
    """Where ``tag`` is stored, ``<cache>/weights/<tag>``, once it is known to be writable there: a malformed tag, an
    existing one (unless ``replace``) or an unwritable cache is an error, told before a file is read and mapped."""
    entry = weights_dir(cache_dir) / check_tag(tag)
    if entry.exists() and not replace:
        raise WeightsError(f"weights tag {tag!r} already exists ({entry}); choose another --name, or pass --replace")
    why = integrity.unwritable(entry.parent)
    if why:
        raise WeightsError(f"cannot store weights in {entry.parent}: {why}")
    return entry


def save(imported: Imported, tag: str, file: Path, cache_dir: Path, *, replace: bool = False) -> Entry:
    """Store ``imported`` (from ``file``) as ``<cache>/weights/<tag>`` (:func:`destination`)."""
    entry = destination(tag, cache_dir, replace=replace)
    spec = get_spec(imported.arch)
    meta = Entry(tag, imported.arch, imported.num_classes, spec.in_chans, spec.img_size, imported.source, str(file),
                 integrity.file_sha256(Path(file)), imported.preprocessing, imported.caveat,
                 time.strftime("%Y-%m-%dT%H:%M:%S%z"), cnnbench.__version__)  # fmt: skip
    tmp = entry.with_name(entry.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    state = jax.tree.map(np.asarray, nnx.to_pure_dict(nnx.state(imported.model, WEIGHT_KINDS)))
    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save((tmp / "state").absolute(), state)
    checkpointer.wait_until_finished()
    atomic_write(tmp / "meta.json", json.dumps(meta.to_json(), indent=1))
    integrity.write_sums(tmp)  # last: an entry with a sound SHA256SUMS is complete
    if entry.exists():
        shutil.rmtree(entry)
    os.replace(tmp, entry)
    return meta


def _meta(entry: Path) -> Entry:
    try:
        return Entry.from_json(json.loads((entry / "meta.json").read_text()))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise WeightsError(f"imported weights {entry.name}: unreadable meta.json ({exc})") from None


def entries(cache_dir: Path) -> list[tuple[Entry | None, Path, str | None]]:
    """Every imported entry under ``cache_dir``: (its meta or None, its folder, what is wrong with it or None)."""
    root = weights_dir(cache_dir)
    out: list[tuple[Entry | None, Path, str | None]] = []
    for entry in (
        sorted(p for p in root.iterdir() if p.is_dir() and not p.name.endswith(".tmp")) if root.is_dir() else []
    ):
        try:
            integrity.check_sums(entry)
            out.append((_meta(entry), entry, None))
        except (ValueError, OSError) as exc:
            out.append((None, entry, str(exc)))
    return out


def find(tag: str, cache_dir: Path) -> Entry:
    """The meta of imported weights ``tag``, checked against its digests; an error lists the tags there are."""
    entry = weights_dir(cache_dir) / check_tag(tag)
    if not (entry / "meta.json").exists():
        known = [e.tag for e, _, problem in entries(cache_dir) if e is not None and problem is None]
        listing = f"imported: {', '.join(known)}" if known else "none is imported"
        raise WeightsError(
            f"no imported weights {tag!r} in {weights_dir(cache_dir)} ({listing}); import a checkpoint with "
            f"`cnnbench weights import FILE --arch ARCH --name {tag}`"
        )
    try:
        integrity.check_sums(entry)
    except (ValueError, OSError) as exc:
        raise WeightsError(
            f"imported weights {tag!r} are damaged ({exc}); import the file again with --replace"
        ) from None
    return _meta(entry)


def load_state(meta: Entry, cache_dir: Path) -> dict:
    """The full state (a pure dict, classifier included) of the imported weights ``meta`` describes (:func:`find`
    checked them)."""
    model = nnx.eval_shape(lambda: create_model(meta.arch, num_classes=meta.num_classes))
    abstract = nnx.to_pure_dict(nnx.state(model, WEIGHT_KINDS))
    target = jax.tree.map(ocp.utils.to_shape_dtype_struct, abstract)
    state = ocp.StandardCheckpointer().restore((weights_dir(cache_dir) / meta.tag / "state").absolute(), target)
    return jax.tree.map(np.asarray, state)


def base_state(state: dict) -> dict:
    """The convolutional base's part of a full state: what a model built with ``num_classes=0`` holds."""
    return {k: v for k, v in state.items() if k != "classifier"}


def load_model(tag: str, cache_dir: Path, num_classes: int | None = None, rngs: nnx.Rngs | None = None) -> ZooModel:
    """The zoo model holding imported weights ``tag``: with the file's classifier (``num_classes`` None or the
    file's), the base alone (0), or the base under a fresh classifier for another ``num_classes``."""
    meta = find(tag, cache_dir)
    state = load_state(meta, cache_dir)
    classes = meta.num_classes if num_classes is None else num_classes
    model = create_model(meta.arch, num_classes=classes, rngs=rngs)
    current = nnx.state(model, WEIGHT_KINDS)
    nnx.replace_by_pure_dict(current, state if classes == meta.num_classes else base_state(state))
    nnx.update(model, current)
    return model
