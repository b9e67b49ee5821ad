"""The environment a run measured on: software versions, backend, devices and their memory, CPU, precision, git commit.

Every report carries this record so a result can be traced to what produced it, and its :func:`fingerprint`
decides whether two runs' throughput may be compared (asv's rule: other hardware is "not comparable", not
slower). JAX is imported only inside :func:`collect_environment`, so importing this module stays cheap.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import platform
import socket
import subprocess
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cnnbench.config.precision import DEFAULT_PRECISION

# Distribution names whose versions the report records, by report key.
PACKAGES = {
    "cnnbench": "cnnbench",
    "jax": "jax",
    "jaxlib": "jaxlib",
    "flax": "flax",
    "optax": "optax",
    "orbax": "orbax-checkpoint",
    "numpy": "numpy",
}

# The keys that make throughput comparable: same hardware, same software that compiles and runs the step, same
# precision (a bf16 step is not a faster fp32 one), same number of devices training each scenario data-parallel.
FINGERPRINT_KEYS = ("backend", "device_kind", "device_count", "cpu", "jax", "flax", "cnnbench", "precision",
                    "parallel_devices")  # fmt: skip


def collect_environment(
    suite_hash: str, precision: str = DEFAULT_PRECISION, parallel_devices: int = 1
) -> dict[str, Any]:
    """The environment record of a report (SPEC §8) of a run at ``precision`` whose scenarios each train on
    ``parallel_devices`` devices, data-parallel, plus its ``fingerprint``; never raises on a missing git."""
    env: dict[str, Any] = {key: _version(dist) for key, dist in PACKAGES.items()}
    env["python"] = platform.python_version()
    env.update(_devices())
    env["precision"] = precision
    env["parallel_devices"] = parallel_devices
    env["cpu"] = cpu_model()
    env["os"] = platform.platform()
    env["git_commit"] = git_commit(Path.cwd())
    env["git_dirty"] = git_dirty(Path.cwd()) if env["git_commit"] else None
    env["suite_hash"] = suite_hash
    env["hostname"] = socket.gethostname()
    env["fingerprint"] = fingerprint(env)
    return env


def fingerprint(env: Mapping[str, Any]) -> str:
    """A 12-hex-digit hash of the hardware and software keys (:data:`FINGERPRINT_KEYS`) of ``env``.

    Reports older than the ``precision`` and ``parallel_devices`` keys ran fp32 on one device, so such a run hashes
    without them, as they did: its throughput stays comparable with theirs (and with committed baselines).
    """
    keyed = {key: env.get(key) for key in FINGERPRINT_KEYS}
    if keyed["precision"] in (None, DEFAULT_PRECISION):
        del keyed["precision"]
    if keyed["parallel_devices"] in (None, 1):
        del keyed["parallel_devices"]
    return hashlib.sha256(json.dumps(keyed, sort_keys=True).encode()).hexdigest()[:12]


def cpu_model() -> str:
    """The CPU's model name from ``/proc/cpuinfo`` (Linux), else what :mod:`platform` knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def git_commit(directory: Path) -> str | None:
    """The commit checked out in the git repository holding ``directory``, or None outside one (or without git)."""
    out = _git(directory, "rev-parse", "HEAD")
    return (out or "").strip() or None


def git_dirty(directory: Path) -> bool | None:
    """Whether tracked files differ from the commit, so a result is not credited to code that was not committed."""
    out = _git(directory, "status", "--porcelain", "--untracked-files=no")
    return bool(out.strip()) if out is not None else None


def _git(directory: Path, *args: str) -> str | None:
    """The stdout of ``git *args`` run in ``directory``, or None when git is missing or fails."""
    try:
        done = subprocess.run(["git", *args], cwd=directory, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _devices() -> dict[str, Any]:
    """Backend, device kind, device count and memory from JAX (imported here, not at module level)."""
    try:
        import jax  # here, so the fingerprint and this module load without JAX (the results layer reads them)

        devices = jax.devices()
        backend = jax.default_backend()
        return {
            "backend": backend,
            "device_kind": devices[0].device_kind,
            "device_count": len(devices),
            "process_count": jax.process_count(),
            **_memory(jax.local_devices()[0].memory_stats(), backend),
        }
    except (ImportError, RuntimeError) as exc:  # no JAX, or no usable backend: record why, keep the report
        warnings.warn(f"cnnbench: cannot query JAX devices ({exc}); the report records no backend", stacklevel=2)
        return {"backend": None, "device_kind": None, "device_count": 0, "process_count": 0, **_memory(None, None)}


def device_memory() -> int | None:
    """Bytes of memory of the first local device (on CPU, the host's), None where unknown: what a program must fit
    in. Loads JAX, like ``collect_environment``."""
    import jax  # here, so this module loads without JAX (see _devices)

    return _memory(jax.local_devices()[0].memory_stats(), jax.default_backend())["device_memory_bytes"]


def _memory(stats: Mapping[str, Any] | None, backend: str | None) -> dict[str, Any]:
    """One device's memory: what the backend reports (``bytes_limit``), else on CPU the host's physical memory,
    with where the figure came from; None on an accelerator that does not report it (never the host's figure)."""
    if stats and "bytes_limit" in stats:
        return {"device_memory_bytes": int(stats["bytes_limit"]), "device_memory_source": "device"}
    if backend == "cpu" and (host := _host_memory_bytes()):
        return {"device_memory_bytes": host, "device_memory_source": "host"}
    return {"device_memory_bytes": None, "device_memory_source": None}


def _host_memory_bytes() -> int | None:
    """The host's physical memory (POSIX ``sysconf``), or None where the system does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, OSError, ValueError):  # no sysconf (Windows), or no such name
        return None
