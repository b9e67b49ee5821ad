"""Ahead-of-time compiled programs, shared across scenarios, and what compiling each one cost.

Every program the engine runs (train steps, predictions, batch gathering) is compiled once per function, static
arguments, argument shapes and, on several devices, argument shardings in a process; ``PROGRAMS`` keeps them and
books each compile (or load from JAX's persistent compilation cache) in the run's profile. ``jitted`` makes each
function's jit once per output placement: the one-device program, unannotated, and one per data-parallel mesh.

JAX's persistent cache checks a program it loads only as far as its compression does (zlib's checksum; zstd, which it
uses on Python 3.14 or with ``zstandard`` installed, is called without one), and keeps a file it could not load, so
every later process compiles that program again. So :func:`persist` removes, before JAX reads any, the programs that
differ from the digest this module wrote beside each one after compiling it (:mod:`cnnbench.engine.integrity`), and
JAX writes them anew.
"""

from __future__ import annotations

import atexit
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from cnnbench import profiling
from cnnbench.engine import integrity


@dataclass
class Program:
    """An ahead-of-time compiled program, what compiling it cost, and its FLOPs over all the devices it runs on."""

    compiled: Any
    compile_s: float
    flops: float | None


def flops(compiled: Any) -> float | None:
    """FLOPs of a compiled program from XLA's cost analysis (None where the backend gives none)."""
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    return (cost or {}).get("flops")


_JITTED: dict[Any, Any] = {}


def jitted(fn: Callable, out_shardings: Any = None, **options: Any) -> Any:
    """``jax.jit(fn, **options)``, with its outputs placed as ``out_shardings`` where given (a data-parallel
    program; None: the one-device program, unannotated). Made once per function, options and output placement, so
    each keeps one key in ``PROGRAMS``."""
    key = (fn, out_shardings, tuple(sorted(options.items())))
    if key not in _JITTED:
        placed = {} if out_shardings is None else {"out_shardings": out_shardings}
        _JITTED[key] = jax.jit(fn, **placed, **options)
    return _JITTED[key]


def _placement(leaf: Any) -> Any:
    """The sharding of an array spread over several devices, whose program runs on those devices; None for host
    data or an array on one device, which one-device programs take alike."""
    sharding = getattr(leaf, "sharding", None)
    return sharding if sharding is not None and len(sharding.device_set) > 1 else None


class ProgramCache:
    """Compiled programs keyed by jitted function, static arguments, argument shapes and multi-device shardings."""

    def __init__(self) -> None:
        self._programs: dict[Any, Program] = {}
        self.seconds = 0.0  # compiling and loading every program so far: a caller's share is the change over its call

    def get(self, fn: Any, static: tuple, *args: Any) -> tuple[Program, bool]:
        """The program of the jitted ``fn`` at these static values (its leading arguments), argument shapes and
        shardings (the same shapes split over devices are another program); True when compiled (or loaded from the
        persistent cache) just now."""
        leaves, treedef = jax.tree.flatten(args)
        placements = [_placement(a) for a in leaves]
        shapes = tuple((np.shape(a), jnp.result_type(a), p) for a, p in zip(leaves, placements, strict=True))
        key = (fn, static, treedef, shapes)
        if key in self._programs:
            return self._programs[key], False
        hits, misses, t0 = _CACHE_HITS[0], _CACHE_MISSES[0], time.perf_counter()
        compiled = fn.lower(*static, *args).compile()
        per_device = flops(compiled)  # XLA's cost analysis of a partitioned program counts one device's share
        devices = max((len(p.device_set) for p in placements if p is not None), default=1)
        program = Program(compiled, time.perf_counter() - t0, None if per_device is None else per_device * devices)
        if _CACHE_MISSES[0] > misses:  # JAX wrote this program into the persistent cache just now
            record_programs()
        profiling.add("program cache load" if _CACHE_HITS[0] > hits else "compile", program.compile_s)
        self.seconds += program.compile_s
        self._programs[key] = program
        return program, True


PERSIST_MIN_COMPILE_S = 0.2  # a quicker program is not written to the persistent cache (nor is an eager op's)


def persist(cache_dir: Path) -> Path:
    """Keep compiled programs in JAX's persistent compilation cache under ``cache_dir``/xla/<backend> (one per
    backend, so a cache directory shared by CPU and GPU runs serves both), once the programs there that differ from
    their digests are removed (:func:`cnnbench.engine.integrity.check_programs`: a warning each, or an error where
    the cache is read-only); returns that directory. Set before the process compiles anything."""
    path = (Path(cache_dir) / "xla" / jax.default_backend()).absolute()
    integrity.check_programs(path)
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", PERSIST_MIN_COMPILE_S)
    if not _PERSISTENT:
        atexit.register(record_programs)  # the programs compiled outside PROGRAMS, and any a check skipped
    _PERSISTENT[:] = [_Persistent(path, frozenset(p.name for p in integrity.programs(path)))]
    return path


@dataclass(frozen=True)
class _Persistent:
    """The persistent cache this process enabled: its folder, and the programs there before (not recorded now: they
    were written before digests were, or by a process that ended before recording them)."""

    path: Path
    known: frozenset[str]


_PERSISTENT: list[_Persistent] = []  # the one this process enabled, if any


def record_programs() -> int:
    """Write the digest of each program JAX has written into the persistent cache since :func:`persist` (by this
    process, or one running beside it) and that has none yet; how many. Called after each compile that JAX wrote,
    and at exit."""
    if not _PERSISTENT:
        return 0
    cache = _PERSISTENT[0]
    return integrity.record_programs(cache.path, cache.known) if cache.path.is_dir() else 0


_CACHE_HITS = [0]  # programs loaded from JAX's persistent compilation cache in this process
_CACHE_MISSES = [0]  # programs JAX compiled and wrote into its persistent cache in this process


def _count_cache_event(event: str, **_: Any) -> None:
    if event == "/jax/compilation_cache/cache_hits":
        _CACHE_HITS[0] += 1
    elif event == "/jax/compilation_cache/cache_misses":  # JAX records it as it writes a program
        _CACHE_MISSES[0] += 1


jax.monitoring.register_event_listener(_count_cache_event)


PROGRAMS = ProgramCache()
