"""Pretraining on the procedural source domain, cached on disk with orbax (SPEC §4).

A pretrained base is keyed by everything that determines it: the arch config and a digest of the code that
defines it, the source config, the pretraining budget, the cnnbench version and the entry's format. It is built on
first use and restored after. An entry is built in a ``.tmp`` sibling and renamed into place once complete, its
``SHA256SUMS`` (:mod:`cnnbench.engine.integrity`) written last, over every other file; one that is incomplete,
changed since (a byte of its checkpoint or meta.json), or written for another key is rebuilt with a warning, never
silently used. A file lock makes concurrent workers (pytest-xdist) build each entry once; a complete entry is read
without it, so a read-only cache serves. In a multi-process job (``cnnbench.engine.hosts``) process 0 alone loads
or builds it, and the others receive it from process 0.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp
from filelock import FileLock
from flax import nnx

import cnnbench
from cnnbench.config.training import PretrainConfig
from cnnbench.data.source import SourceConfig, SourceDomain
from cnnbench.engine import hosts, integrity
from cnnbench.engine.batches import StepBatches
from cnnbench.engine.heads import GAPHead, softmax_cross_entropy
from cnnbench.engine.train import TransferModel, accuracy, fit, predict
from cnnbench.fileio import atomic_write
from cnnbench.zoo import ZooModel, code_digest, create_model


@dataclass(frozen=True)
class ModelConfig:
    """The benchmark-scale build of an arch: input size, channels and width multiplier."""

    arch: str
    img_size: int
    in_chans: int
    width: float

    def create(self, seed: int) -> ZooModel:
        """A fresh convolutional base (no classifier) at this config."""
        return create_model(
            self.arch,
            num_classes=0,
            in_chans=self.in_chans,
            img_size=self.img_size,
            width=self.width,
            rngs=nnx.Rngs(seed),
        )


@dataclass
class Pretrained:
    """A source-pretrained base state and how it was obtained."""

    state: dict
    source_accuracy: float
    seconds: float
    cache_hit: bool
    path: Path


class CacheWarning(UserWarning):
    """A pretraining cache entry could not be used and is being rebuilt, or an interrupted build is removed."""


def cache_key(model: ModelConfig, source: SourceConfig, pretrain: PretrainConfig) -> dict:
    """Everything that determines a pretrained base, as a JSON-serialisable dict; the JAX backend too, because
    another backend computes other numerics, so one cache directory can serve CPU and GPU runs."""
    return {
        "model": asdict(model),
        "code": code_digest(model.arch),
        "source": source.to_dict(),
        "pretrain": asdict(pretrain),
        "cnnbench": cnnbench.__version__,
        "backend": jax.default_backend(),
        "format": integrity.BASE_FORMAT,
    }


def _digest(key: dict) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def _lock(entry: Path) -> FileLock:
    """The lock beside ``entry`` (``<entry>.lock``) that makes concurrent processes build it once: the operating
    system's lock on that file, taken through filelock, which has one on Windows too."""
    entry.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(entry.with_suffix(".lock"))


def _checkpointer() -> ocp.StandardCheckpointer:
    """Orbax's checkpointer; in a multi-process job, process 0's alone (the others never touch the cache, and a
    checkpointer of every process would wait for them at its barriers)."""
    if hosts.processes() == 1:
        return ocp.StandardCheckpointer()
    alone = ocp.options.MultiprocessingOptions(primary_host=0, active_processes={0})
    return ocp.StandardCheckpointer(multiprocessing_options=alone)


def _abstract_state(model: ModelConfig) -> dict:
    abstract = nnx.to_pure_dict(nnx.state(nnx.eval_shape(lambda: model.create(0))))
    return jax.tree.map(ocp.utils.to_shape_dtype_struct, abstract)


def restore(entry: Path, key: dict, model: ModelConfig) -> tuple[dict, dict]:
    """The state and meta.json cached at ``entry`` for ``key`` (the cache, and ``cnnbench.create_model`` given an
    entry), once every file is checked against the entry's SHA256SUMS; raises ValueError saying why it cannot be
    used (an ``IntegrityError`` naming the file that changed)."""
    integrity.check_sums(entry)
    meta_path = entry / "meta.json"
    if not meta_path.exists():
        raise ValueError("no meta.json (the entry was never completed)")
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"meta.json is not valid JSON ({exc})") from None
    if not isinstance(meta, dict) or not {"key", "source_accuracy", "seconds"} <= meta.keys():
        raise ValueError("meta.json lacks key, source_accuracy or seconds")
    if meta["key"] != key:
        raise ValueError("it was written for a different configuration")
    restored = _checkpointer().restore((entry / "state").absolute(), _abstract_state(model))
    return jax.tree.map(np.asarray, restored), meta


def pretrain(
    model: ModelConfig,
    source: SourceConfig,
    config: PretrainConfig,
    progress: Callable[[dict], None] | None = None,
) -> tuple[dict, float]:
    """Train ``model``'s base with a GAP head (and the arch's auxiliary classifiers, if any) on source batches;
    returns the base's state and its source accuracy."""
    domain = SourceDomain(source)
    base = model.create(config.seed)
    head = GAPHead(base.feature_shape, domain.n_classes, rngs=nnx.Rngs(config.seed))
    net = TransferModel.build(base, head, domain.n_classes, config.seed)
    x_val, y_val = domain.eval_set(config.eval_size)
    val = (np.asarray(x_val), np.asarray(y_val))
    batch = config.train.batch_size
    result = fit(
        net,
        (),
        softmax_cross_entropy,
        StepBatches(lambda step: domain.batch(config.seed, step, batch)),
        val,
        config.train,
        lr_base=config.train.learning_rate,
        lr_head=config.train.learning_rate,
        weight_decay_head=config.train.weight_decay,
        progress=progress,
    )
    trained = result.model()
    assert isinstance(trained, TransferModel)
    logits, _ = predict(result.eval_graphdef, (result.trainable, result.rest), val[0])
    return jax.tree.map(np.asarray, nnx.to_pure_dict(nnx.state(trained.base))), accuracy(logits, val[1])


def entry_path(model: ModelConfig, source: SourceConfig, config: PretrainConfig, cache_dir: Path) -> Path:
    """The cache entry of this base, ``<cache>/pretrained/<arch>-<digest of its key>`` (present or not)."""
    return (Path(cache_dir) / "pretrained" / f"{model.arch}-{_digest(cache_key(model, source, config))}").absolute()


def load_or_pretrain(
    model: ModelConfig,
    source: SourceConfig,
    config: PretrainConfig,
    cache_dir: Path,
    progress: Callable[[dict], None] | None = None,
) -> Pretrained:
    """The cached pretrained base for this key, building (and caching) it on a miss or a bad entry; in a
    multi-process job, process 0's, sent to the others."""
    key = cache_key(model, source, config)
    entry = entry_path(model, source, config, cache_dir)
    if hosts.processes() == 1:
        return _load_or_build(model, source, config, key, entry, progress)
    mine = _load_or_build(model, source, config, key, entry, progress) if hosts.leader() else None
    state = mine.state if mine else jax.tree.map(lambda a: np.zeros(a.shape, a.dtype), _abstract_state(model))
    facts = np.array([mine.source_accuracy, mine.seconds, mine.cache_hit] if mine else [0.0, 0.0, 0.0], np.float64)
    state, (source_accuracy, seconds, hit) = hosts.from_leader((state, facts))
    return Pretrained(state, float(source_accuracy), float(seconds), bool(hit), entry)


def _load_or_build(
    model: ModelConfig,
    source: SourceConfig,
    config: PretrainConfig,
    key: dict,
    entry: Path,
    progress: Callable[[dict], None] | None,
) -> Pretrained:
    """The entry's base, read without the lock when it is complete and sound (nothing is written then, so a
    read-only cache serves, and concurrent readers do not queue); else built, or rebuilt with a warning, under the
    lock, where another process may have built it meanwhile. A rebuilder removes a bad entry before building, so a
    reader sees the old entry, none, or the new one, and one that fails its checks waits on the lock."""
    problem = None
    if entry.exists():
        try:
            return _restored(entry, key, model)
        except Exception as exc:  # checked again under the lock, which warns
            problem = str(exc)
    why = integrity.unwritable(entry.parent)
    if why:
        raise integrity.read_only_error("pretraining cache entry", entry, problem, why)
    with _lock(entry):
        if entry.exists():
            try:
                return _restored(entry, key, model)
            except Exception as exc:  # any unreadable entry is rebuilt, loudly
                warnings.warn(
                    f"pretraining cache entry {entry} is unusable ({exc}); rebuilding it", CacheWarning, stacklevel=2
                )
                shutil.rmtree(entry)
        tmp = entry.with_name(entry.name + ".tmp")
        if tmp.exists():  # under the lock, no build of this entry is under way: this one was interrupted
            warnings.warn(f"pretraining cache: removing {tmp}, an unfinished build of this entry (interrupted)",
                          CacheWarning, stacklevel=2)  # fmt: skip
            shutil.rmtree(tmp)
        t0 = time.perf_counter()
        state, source_accuracy = pretrain(model, source, config, progress)
        seconds = time.perf_counter() - t0
        checkpointer = _checkpointer()
        checkpointer.save(tmp / "state", state)
        checkpointer.wait_until_finished()
        meta = {"key": key, "source_accuracy": source_accuracy, "seconds": seconds}
        atomic_write(tmp / "meta.json", json.dumps(meta, indent=1))
        integrity.write_sums(tmp)  # last: an entry with a sound SHA256SUMS is complete
        os.replace(tmp, entry)
        return Pretrained(state, source_accuracy, seconds, False, entry)


def _restored(entry: Path, key: dict, model: ModelConfig) -> Pretrained:
    state, meta = restore(entry, key, model)
    return Pretrained(state, meta["source_accuracy"], meta["seconds"], True, entry)


def load_into(base: nnx.Module, state: dict) -> None:
    """Overwrite ``base``'s parameters and BatchNorm statistics with a pretrained state."""
    current = nnx.state(base)
    nnx.replace_by_pure_dict(current, state)
    nnx.update(base, current)


def describe(pretrained: Pretrained, arch: str) -> str:
    """One line for the terminal: cache hit or build, source accuracy, time."""
    how = "cache hit" if pretrained.cache_hit else f"built in {pretrained.seconds:.0f} s"
    return f"pretrained {arch}: {how}, source accuracy {pretrained.source_accuracy:.1%} ({pretrained.path})"
