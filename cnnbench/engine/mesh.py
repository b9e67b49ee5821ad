"""Where a scenario's data-parallel devices are and how its arrays are placed on them (SPEC §10).

A scenario can train on N devices at once: a ``jax.sharding.Mesh`` of them with one axis, ``data``; the model's
states and the training set replicated on every device and each batch split along its batch axis. The SPMD
partitioner turns each program into one per device and reduces over the devices what the program reduces over
the batch: the loss, so the gradients, and BatchNorm's batch statistics, which stay those of the global batch. On
one device nothing is annotated: every program is the one a run without this module compiles.

Host data is placed with ``jax.make_array_from_callback``, each device taking its slice of the host array: every
process holds the whole of it, so placing works alike on one host and on many.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from cnnbench.engine.programs import jitted

DATA = "data"  # the mesh's one axis: a batch's images are split along it


@dataclass(frozen=True)
class DataParallel:
    """The devices a scenario's batches are split over, and the placements of its arrays on them. Without a
    ``mesh`` it is one device: every placement is None and arrays are left as they are."""

    mesh: Mesh | None = None

    @classmethod
    def of(cls, devices: int | None) -> DataParallel:
        """The first ``devices`` of ``jax.devices()``; None or 1 is one device, with nothing sharded."""
        if devices is None or devices == 1:
            return SINGLE
        available = jax.devices()
        if not 1 <= devices <= len(available):
            raise ValueError(f"{devices} data-parallel devices asked for, but JAX sees {len(available)}")
        return cls(Mesh(np.array(available[:devices]), (DATA,), axis_types=(AxisType.Auto,)))

    @property
    def size(self) -> int:
        """The number of devices."""
        return 1 if self.mesh is None else int(self.mesh.size)

    @property
    def replicated(self) -> NamedSharding | None:
        """A whole copy on every device: states, the training set, what is read back to the host."""
        return None if self.mesh is None else NamedSharding(self.mesh, P())

    def batch(self, axis: int) -> NamedSharding | None:
        """Split along ``axis`` (the batch axis of an array) over the devices, whole along every other axis."""
        return None if self.mesh is None else NamedSharding(self.mesh, P(*[None] * axis, DATA))

    def replicate(self, tree: Any) -> Any:
        """``tree``'s arrays copied whole to every device; on one device ``tree`` itself."""
        return place(tree, self.replicated)

    def shard(self, tree: Any, axis: int) -> Any:
        """``tree``'s arrays split along ``axis`` over the devices; on one device ``tree`` itself."""
        return place(tree, self.batch(axis))

    def check(self, batch: int) -> None:
        """Raise ``ValueError`` unless a global batch of ``batch`` images splits evenly over the devices."""
        if batch % self.size:
            raise ValueError(
                f"global batch {batch} does not divide over {self.size} devices; choose a batch that is a multiple "
                f"of {self.size} or --cnnbench-devices that divides {batch}"
            )

    def padded(self, batch: int) -> int:
        """The smallest batch of at least ``batch`` images that splits evenly over the devices."""
        return -(-batch // self.size) * self.size


SINGLE = DataParallel()  # one device: no mesh, no sharding annotations


def place(tree: Any, sharding: NamedSharding | None) -> Any:
    """``tree``'s arrays placed as ``sharding`` (None: ``tree`` itself). Host data, or an array on one device, is
    built from its host copy with ``jax.make_array_from_callback``; an array already spread over devices is
    resharded there by a compiled copy (a program every process runs, so it spans hosts too); one already placed so
    is returned as it is."""
    if sharding is None:
        return tree
    return jax.tree.map(lambda leaf: _place(leaf, sharding), tree)


def _place(leaf: Any, sharding: NamedSharding) -> jax.Array:
    if isinstance(leaf, jax.Array):
        if leaf.sharding.is_equivalent_to(sharding, leaf.ndim):
            return leaf
        if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):  # a dropout's RNG key: placed as its key data
            return jax.random.wrap_key_data(_place(jax.random.key_data(leaf), sharding), impl=jax.random.key_impl(leaf))
        if len(leaf.sharding.device_set) > 1:
            return jitted(_copy, sharding)(leaf)
    host = np.asarray(leaf)
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])


def _copy(leaf: jax.Array) -> jax.Array:
    return leaf
