"""One suite run by several processes at once, on one host or many (SPEC §10): ``jax.distributed``.

Every process runs the same scenarios in the same order, and each scenario's compiled programs span every
process's devices (``cnnbench.engine.mesh``). What is cached or written is process 0's alone: it pretrains a base
(or loads it) and the others receive it from it (:func:`from_leader`), it reads and writes the similarity cache and
it writes the reports and the baseline. So no host needs another's files, and every process takes the same path
through the run, which multi-process JAX requires: a program that spans the processes must be called by all of
them. On CPUs the processes talk through gloo, JAX's CPU collectives.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from jax.experimental import multihost_utils


def initialize(request: dict[str, int]) -> None:
    """Join this process to the job ``request`` describes (``cnnbench.devices.distributed_request``: the count
    and id, or ``{}`` for a cluster JAX detects itself). Call it before JAX computes anything."""
    jax.config.update("jax_cpu_collectives_implementation", "gloo")  # used only where the devices are CPUs
    jax.distributed.initialize(num_processes=request.get("num_processes"), process_id=request.get("process_id"))


def processes() -> int:
    return jax.process_count()


def index() -> int:
    return jax.process_index()


def devices() -> int:
    """Every process's devices."""
    return jax.device_count()


def leader() -> bool:
    """Whether this is process 0, the one that writes caches, reports and baselines."""
    return jax.process_index() == 0


def from_leader(tree: Any) -> Any:
    """Process 0's ``tree`` (of arrays and numbers), in every process: each passes a tree of the same structure,
    shapes and dtypes (the others' values are ignored). Alone, the tree itself."""
    if jax.process_count() == 1:
        return tree
    received = multihost_utils.broadcast_one_to_all(tree)
    return jax.tree.map(lambda sent, got: np.asarray(got, dtype=np.asarray(sent).dtype), tree, received)


def barrier(name: str) -> None:
    """Wait until every process has reached the barrier ``name``; nothing alone."""
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices(name)
