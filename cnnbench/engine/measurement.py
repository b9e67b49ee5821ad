"""What the engine measured of one scenario, as typed values: the validation curve, the timings, the metrics and
the outcome (passed, diverged or error). Plain dataclasses with no JAX, so the results layer and the report read
them without loading the engine; ``to_json``/``from_json`` give the ``cnnbench/1`` form (docs/report-schema.md)."""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from cnnbench.config.hardware import BenchPoint
from cnnbench.config.quadrants import placement
from cnnbench.engine.similarity import detail


def _number(value: Any) -> float | None:
    """A finite float, or None (NaN, ±inf, missing and non-numbers all read as unknown)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _count(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
        return None
    return int(value)  # type: ignore[call-overload]  # typeshed gives numbers.Real no __int__; int() truncates it


@dataclass(frozen=True)
class CurvePoint:
    """One validation evaluation during training; ``phase`` is ``"head"`` for the head-only phase of two-phase
    fine-tuning."""

    step: int
    train_loss: float | None
    val_loss: float | None
    val_accuracy: float | None
    lr_scale: float | None
    elapsed_s: float | None
    phase: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "phase"}
        if self.phase is not None:
            out["phase"] = self.phase
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CurvePoint:
        return cls(
            step=_count(data.get("step")) or 0,
            train_loss=_number(data.get("train_loss")),
            val_loss=_number(data.get("val_loss")),
            val_accuracy=_number(data.get("val_accuracy")),
            lr_scale=_number(data.get("lr_scale")),
            elapsed_s=_number(data.get("elapsed_s")),
            phase=data.get("phase") if isinstance(data.get("phase"), str) else None,
        )


@dataclass(frozen=True)
class Timing:
    """Steady-state timing of one program: seconds per call at the median, mean and their spread over rounds,
    and images/s at the median."""

    median_s: float | None
    mean_s: float | None
    stddev_s: float | None
    rounds: int | None
    images_per_s: float | None

    def to_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Timing:
        return cls(_number(data.get("median_s")), _number(data.get("mean_s")), _number(data.get("stddev_s")),
                   _count(data.get("rounds")), _number(data.get("images_per_s")))  # fmt: skip


METRIC_COUNTS = ("params_trainable", "params_total", "peak_memory_bytes")


@dataclass(frozen=True)
class Metrics:
    """A scenario's figures (SPEC §8); None where unknown (peak memory on CPU, a gain without ``scratch``)."""

    test_accuracy: float | None = None
    transfer_gain: float | None = None
    train_images_per_s: float | None = None
    infer_images_per_s: float | None = None
    compile_s: float | None = None
    train_s: float | None = None
    params_trainable: int | None = None
    params_total: int | None = None
    gflops: float | None = None
    val_accuracy: float | None = None
    time_to_final_s: float | None = None
    peak_memory_bytes: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Metrics:
        read: dict[str, Any] = {
            f.name: (_count if f.name in METRIC_COUNTS else _number)(data.get(f.name)) for f in fields(cls)
        }
        return cls(**read)


@dataclass(frozen=True)
class Measurement:
    """Everything the engine measured of a scenario that trained to the end."""

    metrics: Metrics
    curve: tuple[CurvePoint, ...]
    frozen_stages: tuple[str, ...]
    augment: tuple[str, ...]
    head_first_steps: int
    stopped_at: int | None
    train_timing: Timing
    infer_timing: Timing


STATUSES = ("passed", "regressed", "diverged", "error")


@dataclass(frozen=True)
class Outcome:
    """How a scenario's run ended: ``passed`` with its measurement, ``diverged`` (a non-finite loss) or ``error``
    (any other exception, with its traceback); the runner never raises for a scenario's own failure."""

    status: str
    measurement: Measurement | None = None
    error: str | None = None
    traceback: str | None = None


@dataclass(frozen=True)
class TargetRecord:
    """A target dataset as the report describes it (``targets[]``, SPEC §8): its sizes, its measured similarity
    (``similarity_detail`` is :func:`cnnbench.engine.similarity.detail`'s JSON) and the quadrant that puts it in,
    how it was converted to the base's input format, and a warning where the suite's binding contradicts the
    measurement. ``extra`` keeps keys this version does not know, so an older or newer report survives a load."""

    name: str
    quadrant: str
    n_train: int | None = None
    n_val: int | None = None
    n_test: int | None = None
    n_classes: int | None = None
    similarity: float | None = None
    similarity_detail: Mapping[str, Any] | None = None
    measured_quadrant: str | None = None
    conversion: Mapping[str, Any] | None = None
    warning: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("warning", "extra")}
        if self.warning is not None:
            out["warning"] = self.warning
        return {**out, **self.extra}

    def with_similarity(self, by_arch: list[dict]) -> TargetRecord:
        """This target with the similarity measured by these archs (``Similarity.to_dict()`` rows): their mean
        score, the quadrant it puts the target in and, where that is not the suite's binding, a warning."""
        summary = detail(by_arch)
        where = placement(self.n_train or 0, summary["similar"])
        warning = None
        if where != self.quadrant:
            side = "similar" if summary["similar"] else "dissimilar"
            warning = (
                f"bound to {self.quadrant} but measured {side} (score {summary['score']:+.2f}, threshold "
                f"{summary['threshold']:g}, {len(by_arch)} arch(s)): with {self.n_train} training images it belongs "
                f"in {where}"
            )
        return replace(self, similarity=summary["score"], similarity_detail=summary, measured_quadrant=where,
                       warning=warning)  # fmt: skip

    def merged(self, other: TargetRecord) -> TargetRecord:
        """This target as measured here and in another process (a pytest-xdist worker, a shard of the suite): the
        archs either measured, the similarity recomputed over all of them."""
        rows = {row["arch"]: row for r in (self, other) for row in (r.similarity_detail or {}).get("by_arch", [])}
        return self.with_similarity([rows[arch] for arch in sorted(rows)]) if rows else self

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TargetRecord:
        known = {f.name for f in fields(cls)} - {"extra"}
        return cls(**{k: v for k, v in data.items() if k in known},
                   extra={k: v for k, v in data.items() if k not in known})  # fmt: skip


def merge_targets(targets: Iterable[TargetRecord]) -> dict[str, TargetRecord]:
    """Targets by quadrant, one record per quadrant however many processes (pytest-xdist workers, shards) described
    it: each quadrant's records ``merged``, the similarity over every arch any of them measured."""
    merged: dict[str, TargetRecord] = {}
    for target in targets:
        mine = merged.get(target.quadrant)
        merged[target.quadrant] = target if mine is None else mine.merged(target)
    return merged


BENCH_STATUSES = ("passed", "out of memory", "error")
BENCH_COUNTS = ("batch", "rounds", "params", "img_size", "in_chans", "memory_bytes", "device_peak_bytes")


@dataclass(frozen=True)
class BenchRecord:
    """One row of the hardware table (``hardware[]``): an arch at its canonical config timed at one batch,
    precision and mode. ``status`` is ``passed``, ``out of memory`` (the batch does not fit; the sweep goes on) or
    ``error``; the figures are None where not measured.

    Throughput is images/s at the median step time over ``rounds`` rounds, with the slowest and fastest rounds'
    images/s as its spread. ``memory_bytes`` is XLA's memory analysis of the compiled program (arguments + outputs
    + temporaries − aliased donations; ``memory`` itemises it), ``device_peak_bytes`` the device's peak so far in
    the process where the backend reports one. ``tflops`` counts model FLOPs: 2 × ``gmacs_per_image`` per image,
    a train step 3× the forward; ``utilisation`` divides it by the measured peak of the run's roofline probe."""

    arch: str
    batch: int
    precision: str
    mode: str
    status: str
    error: str | None = None
    img_size: int | None = None
    in_chans: int | None = None
    params: int | None = None
    images_per_s: float | None = None
    images_per_s_low: float | None = None
    images_per_s_high: float | None = None
    step_ms: float | None = None
    step_ms_stddev: float | None = None
    rounds: int | None = None
    compile_s: float | None = None
    memory_bytes: int | None = None
    memory: Mapping[str, int] | None = None
    device_peak_bytes: int | None = None
    gmacs_per_image: float | None = None
    tflops: float | None = None
    utilisation: float | None = None

    @property
    def id(self) -> str:
        """The bench point's id (``cnnbench.config.hardware.BenchPoint.id``)."""
        return BenchPoint(self.arch, self.batch, self.precision, self.mode).id

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, **{f.name: getattr(self, f.name) for f in fields(self)}}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> BenchRecord:
        read: dict[str, Any] = {}
        for f in fields(cls):
            value = data.get(f.name)
            if f.name in ("arch", "precision", "mode", "status", "error"):
                read[f.name] = value
            elif f.name == "memory":
                read[f.name] = dict(value) if isinstance(value, Mapping) else None
            else:
                read[f.name] = (_count if f.name in BENCH_COUNTS else _number)(value)
        return cls(**read)
