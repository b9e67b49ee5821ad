"""Timing one bench point of the hardware table (SPEC §6 ``hardware``, ``cnnbench bench``).

An arch is built at its canonical config (the reference implementation's input size, channels, width and
classes), at the point's precision (``cnnbench.engine.precision``), and one program is compiled ahead of time: a
train step (SGD with momentum on random images and labels, BatchNorm and dropout in training mode, the main
classifier's loss; what timm's ``benchmark.py`` times) or an inference call (eval mode). After ``warmup`` untimed
calls the step is timed in steady state (``cnnbench.engine.timing``). Nothing trains to convergence: the inputs
are random, only the time is measured.

A batch that does not fit is reported as ``out of memory`` — when XLA's memory analysis of the compiled program
already exceeds the device's memory, or when compiling or running it raises the backend's resource-exhausted
error — and any other failure as ``error``: a bench point never raises, so a sweep goes on.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cache, partial
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from cnnbench import profiling
from cnnbench.config.hardware import BenchPoint, BenchSettings
from cnnbench.engine.environment import device_memory
from cnnbench.engine.macs import canonical_gmacs
from cnnbench.engine.measurement import BenchRecord
from cnnbench.engine.precision import apply_precision
from cnnbench.engine.roofline import Roofline
from cnnbench.engine.timing import Timer
from cnnbench.zoo import create_model, get_spec

TRAIN_FLOPS_PER_FORWARD = 3  # a train step's model FLOPs: the forward and the backward's two products per layer
_OOM_MARKERS = ("RESOURCE_EXHAUSTED", "out of memory", "Out of memory", "OOM")


class OutOfMemory(RuntimeError):
    """The bench point's program does not fit in the device's memory."""


@dataclass
class Compiled:
    """A bench point's program compiled ahead of time, with what it costs to build and hold."""

    call: Callable[[], Any]  # one step on the point's batch, blocking until done
    compile_s: float
    memory_bytes: int | None
    memory: dict[str, int] | None


def run_point(point: BenchPoint, settings: BenchSettings, timer: Timer, roofline: Roofline | None) -> BenchRecord:
    """Time ``point`` and return its row; ``out of memory`` or ``error`` instead of raising."""
    spec = get_spec(point.arch)
    record = BenchRecord(point.arch, point.batch, point.precision, point.mode, "passed", img_size=spec.img_size,
                         in_chans=spec.in_chans, params=spec.params, gmacs_per_image=gmacs(point.arch))  # fmt: skip
    try:
        with profiling.phase("models"):
            program = compile_point(point, settings)
        record = replace(record, compile_s=program.compile_s, memory_bytes=program.memory_bytes,
                         memory=program.memory)  # fmt: skip
        limit = device_memory()
        if program.memory_bytes is not None and limit is not None and program.memory_bytes > limit:
            raise OutOfMemory(
                f"XLA's memory analysis needs {program.memory_bytes / 2**30:.1f} GiB, the device has "
                f"{limit / 2**30:.1f} GiB"
            )
        with profiling.phase("timing"):
            for _ in range(settings.warmup):
                program.call()
            stats = timer.timed(program.call)
    except Exception as exc:  # the sweep goes on: out of memory at this batch, or an error of this point alone
        status = "out of memory" if isinstance(exc, OutOfMemory) or _is_oom(exc) else "error"
        return replace(record, status=status, error=f"{type(exc).__name__}: {_first_line(exc)}")
    return _timed(record, stats, roofline)


def compile_point(point: BenchPoint, settings: BenchSettings) -> Compiled:
    """The point's model at its canonical config and precision, and its train step or inference compiled for a
    batch of random images (and labels)."""
    spec = get_spec(point.arch)
    model = apply_precision(create_model(point.arch), point.precision)
    keys = jax.random.split(jax.random.key(0))
    x = jax.random.normal(keys[0], (point.batch, spec.img_size, spec.img_size, spec.in_chans), jnp.float32)
    if point.mode == "infer":
        model.eval()
        graphdef, state = nnx.split(model)
        args: list[Any] = [state]
        fn = jax.jit(partial(_infer, graphdef))
        update = 0  # inference returns logits, the state is used again as it is
    else:
        y = jax.random.randint(keys[1], (point.batch,), 0, spec.num_classes)
        model.train()
        tx = optax.sgd(settings.learning_rate, momentum=0.9)
        graphdef, params, rest = nnx.split(model, nnx.Param, ...)  # type: ignore[misc]  # 2 filters: 2 states
        args = [params, rest, tx.init(params)]
        fn = jax.jit(partial(_train_step, graphdef, tx, y=y), donate_argnums=(0, 1, 2))
        update = 3  # the step returns the new params, rest and optimizer state, then the loss
    t0 = time.perf_counter()
    compiled = fn.lower(*args, x).compile()
    compile_s = time.perf_counter() - t0
    profiling.add("compile", compile_s)
    memory_bytes, memory = _memory(compiled)

    def call() -> None:
        out = compiled(*args, x)
        args[:update] = out[:update]
        jax.block_until_ready(out)

    return Compiled(call, compile_s, memory_bytes, memory)


def _infer(graphdef: nnx.GraphDef, state: nnx.State, x: jax.Array) -> jax.Array:
    return nnx.merge(graphdef, state)(x)


def _train_step(
    graphdef: nnx.GraphDef,
    tx: optax.GradientTransformation,
    params: nnx.State,
    rest: nnx.State,
    opt_state: optax.OptState,
    x: jax.Array,
    y: jax.Array,
) -> tuple[nnx.State, nnx.State, optax.OptState, jax.Array]:
    def loss_fn(params: nnx.State) -> tuple[jax.Array, nnx.State]:
        model = nnx.merge(graphdef, params, rest, copy=True)  # fresh Variables, so BatchNorm and dropout update
        logits = model(x).astype(jnp.float32)  # the loss in float32 under mixed precision
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
        return loss, nnx.split(model, nnx.Param, ...)[2]  # type: ignore[misc]  # 2 filters: 2 states

    (loss, new_rest), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), new_rest, opt_state, loss


@cache
def gmacs(arch: str) -> float:
    """GMACs per image at the canonical config (``cnnbench.engine.macs``), counted once per arch."""
    return canonical_gmacs(arch)


def _memory(compiled: Any) -> tuple[int | None, dict[str, int] | None]:
    """The program's footprint from XLA's memory analysis, and its parts; None where the backend gives none."""
    analysis = compiled.memory_analysis()
    if analysis is None:
        return None, None
    parts = {name: int(getattr(analysis, f"{name}_size_in_bytes", 0))
             for name in ("argument", "output", "alias", "temp", "generated_code")}  # fmt: skip
    return parts["argument"] + parts["output"] - parts["alias"] + parts["temp"], parts


def _timed(record: BenchRecord, stats: Any, roofline: Roofline | None) -> BenchRecord:
    """``record`` with the figures of its timing ``stats`` (seconds per step)."""
    images = record.batch
    tflops = utilisation = None
    if record.gmacs_per_image is not None:
        per_forward = 2 * record.gmacs_per_image * 1e9 * images
        flops = per_forward * (TRAIN_FLOPS_PER_FORWARD if record.mode == "train" else 1)
        tflops = flops / stats.median / 1e12
        peak = roofline.peak(record.precision) if roofline is not None else None
        utilisation = tflops / peak if peak else None
    peak_bytes = (jax.local_devices()[0].memory_stats() or {}).get("peak_bytes_in_use")
    return replace(
        record,
        images_per_s=images / stats.median,
        images_per_s_low=images / stats.max,
        images_per_s_high=images / stats.min,
        step_ms=stats.median * 1e3,
        step_ms_stddev=stats.stddev * 1e3,
        rounds=stats.rounds,
        device_peak_bytes=peak_bytes,
        tflops=tflops,
        utilisation=utilisation,
    )


def _is_oom(exc: BaseException) -> bool:
    return isinstance(exc, MemoryError) or any(marker in str(exc) for marker in _OOM_MARKERS)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""
