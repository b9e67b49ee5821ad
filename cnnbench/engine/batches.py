"""Training batches in chunks of consecutive steps, for the train program that runs many steps per dispatch.

A chunk holds the inputs (k, batch, ...) and labels (k, batch) of up to k consecutive steps; rows past the steps
asked for repeat the earlier ones and are never trained on. ``k`` depends only on a batch's size, so every fit at
one batch shape shares one compiled program. An in-memory training set (``TargetBatches``) lives on the device,
where one small compiled program per chunk gathers its batches and augments them; a batch function of the step
(``StepBatches``, the streamed pretraining source) is called once per step and its batches stacked. Data parallel
(``DataParallel``), the training set is replicated on every device and each chunk comes out split along its batch
axis, each device gathering and augmenting its own share of the images.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, Protocol

import jax
import jax.numpy as jnp
import numpy as np

from cnnbench import profiling
from cnnbench.data.augment import augment, check_ops
from cnnbench.engine.mesh import SINGLE, DataParallel
from cnnbench.engine.programs import PROGRAMS, jitted

MAX_CHUNK = 64  # the most steps one dispatch runs; evaluation points end a chunk early
CHUNK_BYTES = 64 * 2**20  # the most input bytes a chunk stacks: fewer steps per chunk for big images
DEVICE_DATA_BYTES = 2**32  # a larger training set stays in host memory and each chunk is gathered there


def chunk_steps(batch_nbytes: int) -> int:
    """How many steps one chunk holds for batches of ``batch_nbytes`` input bytes."""
    return max(1, min(MAX_CHUNK, CHUNK_BYTES // max(batch_nbytes, 1)))


class Batches(Protocol):
    """Where a fit's batches come from: the input bytes of one batch, and the chunk of steps ``start`` to
    ``start + n`` padded to ``k`` rows."""

    @property
    def batch_nbytes(self) -> int: ...

    def chunk(self, start: int, n: int, k: int) -> tuple[Any, Any]: ...


class StepBatches:
    """Batches from ``next_batch(step)``, a pure function of the step (the source domain renders each on the
    device); a chunk stacks n of them."""

    def __init__(self, next_batch: Callable[[int], tuple[Any, Any]]) -> None:
        self.next_batch = next_batch
        self._first = next_batch(0)

    @property
    def batch_nbytes(self) -> int:
        return int(self._first[0].nbytes)

    def chunk(self, start: int, n: int, k: int) -> tuple[jax.Array, jax.Array]:
        with profiling.phase("data"):
            pairs = [self._first if start + i == 0 else self.next_batch(start + i) for i in range(n)]
            rows = [pairs[i % n] for i in range(k)]  # padding repeats the chunk's batches, as np.resize would
            xs, ys = (jnp.stack([p[j] for p in rows]) for j in (0, 1))
            return xs, ys


@dataclass(frozen=True)
class TargetBatches:
    """The batches of an in-memory training set: ``order[step]`` are the rows of each step, gathered on the
    device; ``ops`` augment them there per step, keyed by (``seed``, step), so a scenario stays reproducible.
    ``of`` builds one; ``offset`` is the step its first chunk starts at. Over several devices (``parallel``) the
    data is on each of them and a chunk's batch axis is split over them."""

    x: Any  # on the device(s), or a host array where larger than DEVICE_DATA_BYTES
    y: Any
    order: np.ndarray  # (steps, batch) row indices
    ops: tuple[str, ...] = ()
    seed: int = 0
    offset: int = 0
    parallel: DataParallel = SINGLE

    @classmethod
    def of(
        cls,
        x: np.ndarray,
        y: np.ndarray,
        order: np.ndarray,
        augment: Sequence[str] = (),
        seed: int = 0,
        parallel: DataParallel = SINGLE,
    ) -> TargetBatches:
        """The batches of ``x, y`` in ``order``, the data put on the device (every device of ``parallel``) once
        where it fits. Raises ``ValueError`` when a batch does not split evenly over the devices."""
        parallel.check(order.shape[1])
        if x.nbytes <= DEVICE_DATA_BYTES:
            x, y = (jax.device_put(x), jax.device_put(y)) if parallel.mesh is None else parallel.replicate((x, y))
        return cls(x, y, order, check_ops(augment), seed, parallel=parallel)

    @property
    def batch_nbytes(self) -> int:
        return int(np.prod(self.x.shape[1:])) * self.x.dtype.itemsize * self.order.shape[1]

    def after(self, steps: int) -> TargetBatches:
        """These batches from step ``steps`` on (the second phase of a two-phase fit)."""
        return replace(self, offset=self.offset + steps)

    def chunk(self, start: int, n: int, k: int) -> tuple[jax.Array, jax.Array]:
        with profiling.phase("data"):
            first = self.offset + start
            idx = np.resize(self.order[first : first + n], (k, self.order.shape[1]))
            split = self.parallel.batch(1)  # a chunk's (k, batch, ...) arrays, split along the batch
            if isinstance(self.x, np.ndarray):  # too large for the device: gathered on the host
                rows = (self.x[idx], self.y[idx])
                xs, ys = jax.device_put(rows) if split is None else self.parallel.shard(rows, 1)
            else:
                gather, idx = jitted(_gather, split), self.parallel.shard(idx, 1)
                program, _ = PROGRAMS.get(gather, (), self.x, self.y, idx)
                xs, ys = program.compiled(self.x, self.y, idx)
            if self.ops:
                steps = np.arange(first, first + k, dtype=np.int32)
                augment = jitted(_augment, split, static_argnums=0)
                program, _ = PROGRAMS.get(augment, (self.ops,), xs, np.int32(self.seed), steps)
                xs = program.compiled(xs, np.int32(self.seed), steps)
            return xs, ys


def _gather(x: jax.Array, y: jax.Array, idx: jax.Array) -> tuple[jax.Array, jax.Array]:
    return x[idx], y[idx]


def _augment(ops: tuple[str, ...], xs: jax.Array, seed: jax.Array, steps: jax.Array) -> jax.Array:
    keys = jax.vmap(partial(jax.random.fold_in, jax.random.key(seed)))(steps)
    return jax.vmap(lambda x, key: augment(x, ops, key))(xs, keys)
