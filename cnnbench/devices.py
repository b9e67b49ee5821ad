"""Which devices a process gets, decided from environment variables before JAX is imported (SPEC §10): one GPU per
pytest-xdist worker, and whether the process is one of several in a multi-process (multi-host) job.

JAX reads ``CUDA_VISIBLE_DEVICES`` and its ``XLA_PYTHON_CLIENT_*`` variables once, when its backend starts, so
the plugin calls :func:`configure_worker` from a worker's ``pytest_configure``. Each worker then sees only its
own GPU, and none preallocates 75% of a GPU that another worker may need. CPU runs are left untouched.

TPUs are left alone: libtpu lets one process hold a chip, and the variables that give a process a subset of the
chips (``TPU_VISIBLE_CHIPS`` with process bounds and a port per process) are not documented by JAX and differ
between TPU generations; run a TPU suite without ``-n``. Only NVIDIA GPUs are counted (``nvidia-smi``).

A multi-process job is announced the way ``jax.distributed.initialize`` expects: ``JAX_COORDINATOR_ADDRESS`` with
``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID``, or a cluster JAX detects (:func:`distributed_request`).

This module must not import JAX: it is read before JAX starts.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Mapping, MutableMapping

VISIBLE = "CUDA_VISIBLE_DEVICES"
PREALLOCATE = "XLA_PYTHON_CLIENT_PREALLOCATE"
MEM_FRACTION = "XLA_PYTHON_CLIENT_MEM_FRACTION"
WORKER_COUNT = "PYTEST_XDIST_WORKER_COUNT"  # set by pytest-xdist in every worker
SHARED_MEMORY = 0.9  # of a GPU shared by several workers, split between them; the rest is for their CUDA contexts


def worker_device_env(worker_id: str, environ: Mapping[str, str], gpu_count: int | None) -> dict[str, str]:
    """The variables that give xdist worker ``worker_id`` (``gw0``, ``gw1``, …) its own GPU; {} without GPUs.

    Worker ``gwN`` gets GPU ``N mod count``, taken from the user's ``CUDA_VISIBLE_DEVICES`` when it restricts them
    ("2,3": gw0 → 2, gw1 → 3, gw2 → 2). Preallocation is turned off, and a GPU shared by several workers caps each
    at its share of the memory; a variable the user set is kept.
    """
    gpus = _visible(environ) if VISIBLE in environ else [str(i) for i in range(gpu_count or 0)]
    if not gpu_count or not gpus:
        return {}
    number = _worker_number(worker_id)
    env = {VISIBLE: gpus[number % len(gpus)]}
    if PREALLOCATE not in environ:
        env[PREALLOCATE] = "false"
    workers = max(int(environ.get(WORKER_COUNT, 0)), number + 1)
    sharers = len(range(number % len(gpus), workers, len(gpus)))
    if sharers > 1 and MEM_FRACTION not in environ:
        env[MEM_FRACTION] = f".{int(100 * SHARED_MEMORY / sharers):02d}"
    return env


def sharing_warning(worker_count: int, gpu_count: int | None) -> str | None:
    """The warning for ``worker_count`` xdist workers sharing ``gpu_count`` GPUs; None when each has its own."""
    if not gpu_count or worker_count <= gpu_count:
        return None
    per_gpu = -(-worker_count // gpu_count)
    return (
        f"cnnbench: {worker_count} xdist workers share {gpu_count} GPU(s), up to {per_gpu} per GPU: workers on a "
        f"shared GPU are capped at their share of its memory and time their steps on a busy GPU; "
        f"use -n {gpu_count} for one GPU each"
    )


def gpu_count(environ: Mapping[str, str] = os.environ) -> int:
    """How many NVIDIA GPUs this process may use, without importing JAX: ``nvidia-smi -L``'s count, or the length
    of an already-set ``CUDA_VISIBLE_DEVICES`` ("" or "-1": none); 0 without ``nvidia-smi`` or a working driver."""
    try:
        listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return 0
    if listed.returncode != 0:
        return 0
    physical = sum(line.startswith("GPU ") for line in listed.stdout.splitlines())
    if not physical or VISIBLE not in environ:
        return physical
    return len(_visible(environ))


def configure_worker(worker_id: str, environ: MutableMapping[str, str] = os.environ) -> dict[str, str]:
    """Give xdist worker ``worker_id`` its GPU by setting :func:`worker_device_env`'s variables in ``environ``;
    returns what was set. Raises RuntimeError once JAX is imported, when the variables would silently do nothing."""
    if "jax" in sys.modules:
        raise RuntimeError(
            f"cnnbench: cannot assign a GPU to xdist worker {worker_id}: JAX is already imported, so "
            f"{VISIBLE} and {PREALLOCATE} would have no effect; call configure_worker before anything imports jax "
            "(e.g. from pytest_configure, not from a module a conftest imports)"
        )
    env = worker_device_env(worker_id, environ, gpu_count(environ))
    environ.update(env)
    return env


def _visible(environ: Mapping[str, str]) -> list[str]:
    """The entries of ``CUDA_VISIBLE_DEVICES`` (indices or UUIDs); [] when unset, "" or "-1"."""
    value = environ.get(VISIBLE, "").strip()
    return [] if value in ("", "-1") else [entry.strip() for entry in value.split(",")]


def _worker_number(worker_id: str) -> int:
    match = re.fullmatch(r"gw(\d+)", worker_id)
    if match is None:
        raise ValueError(f"not a pytest-xdist worker id: {worker_id!r}; expected gw0, gw1, …")
    return int(match.group(1))


# ------------------------------------------------------------------------------------ several processes, one job

COORDINATOR = "JAX_COORDINATOR_ADDRESS"  # read by jax.distributed.initialize itself
PROCESS_COUNT = "JAX_NUM_PROCESSES"
PROCESS_ID = "JAX_PROCESS_ID"


def distributed_request(environ: Mapping[str, str] = os.environ) -> dict[str, int] | None:
    """What ``jax.distributed.initialize`` needs to join this process to a multi-process job, or None when it runs
    alone: ``{num_processes, process_id}`` from ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID`` beside
    ``JAX_COORDINATOR_ADDRESS``; ``{}`` in a cluster JAX detects itself (a Slurm job of several tasks, an Open MPI
    launch, a TPU slice of several hosts). Raises ValueError for a coordinator without the process count and id."""
    explicit = [name for name in (PROCESS_COUNT, PROCESS_ID) if name in environ]
    if COORDINATOR in environ and len(explicit) == 2:
        try:
            count, index = int(environ[PROCESS_COUNT]), int(environ[PROCESS_ID])
        except ValueError:
            raise ValueError(f"{PROCESS_COUNT}={environ[PROCESS_COUNT]!r} and {PROCESS_ID}={environ[PROCESS_ID]!r} "
                             "must be integers") from None  # fmt: skip
        if not 0 <= index < count:
            raise ValueError(f"{PROCESS_ID}={index} must be at least 0 and below {PROCESS_COUNT}={count}")
        return {"num_processes": count, "process_id": index}
    if _cluster(environ):
        return {}
    if COORDINATOR in environ or explicit:
        names = (COORDINATOR, PROCESS_COUNT, PROCESS_ID)
        given, missing = [n for n in names if n in environ], [n for n in names if n not in environ]
        raise ValueError(
            f"{', '.join(given)} set without {', '.join(missing)}: a multi-process run needs the coordinator's "
            "host:port, the number of processes and this process's id (0 … count - 1)"
        )
    return None


def _cluster(environ: Mapping[str, str]) -> str | None:
    """The multi-process cluster ``jax.distributed.initialize()`` detects on its own, if this process is in one."""
    if int(environ.get("SLURM_NTASKS", "1") or 1) > 1 and "SLURM_JOB_ID" in environ:
        return "Slurm"
    if "OMPI_MCA_orte_hnp_uri" in environ:
        return "Open MPI"
    if len([h for h in environ.get("TPU_WORKER_HOSTNAMES", "").split(",") if h.strip()]) > 1:
        return "TPU slice"
    return None
