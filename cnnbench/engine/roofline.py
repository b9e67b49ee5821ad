"""The roofline probe: the device's achievable peak compute, measured once per run.

A throughput figure alone does not say how well a step uses the hardware; against a peak it does. The datasheet
peak is one roof, but few programs reach it (clocks, kernel shapes, libraries), and a CPU has none worth quoting.
So the probe times the two kernels a CNN spends its time in — a square matrix product and a ResNet-stage-like
3×3 convolution — at each precision, and reports the better of the two as the measured peak; where the device is
known (:data:`DATASHEET_TFLOPS`) its datasheet peak is recorded beside it. Each kernel is compiled ahead of time
and timed with :func:`cnnbench.engine.timing.measure` (the median of its rounds), at sizes that saturate an
accelerator and stay well under a second per call on a small CPU. JAX is imported only inside :func:`probe`, so
the results and report layers read a :class:`Roofline` without loading it.
"""

from __future__ import annotations

import math
import numbers
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cnnbench.config.precision import PRECISIONS
from cnnbench.engine.timing import measure


@dataclass(frozen=True)
class ProbeShapes:
    """The problem sizes of a probe: an n×n @ n×n matmul and a 3×3 stride-1 'SAME' convolution (NHWC input,
    HWIO kernel) from ``conv_input_nhwc`` to ``conv_out_channels`` channels."""

    matmul_n: int
    conv_input_nhwc: tuple[int, int, int, int]
    conv_out_channels: int

    @property
    def conv_kernel_hwio(self) -> tuple[int, int, int, int]:
        return (3, 3, self.conv_input_nhwc[3], self.conv_out_channels)

    def to_json(self) -> dict[str, Any]:
        """The sizes and the FLOPs per call of each kernel, as a report records what was measured."""
        return {
            "matmul_n": self.matmul_n,
            "matmul_flops": matmul_flops(self.matmul_n),
            "conv_input_nhwc": list(self.conv_input_nhwc),
            "conv_kernel_hwio": list(self.conv_kernel_hwio),
            "conv_flops": conv_flops(self.conv_input_nhwc, self.conv_kernel_hwio),
        }


# Measured on a 2-core CPU: 28 ms (fp32) and 44 ms (bf16) per matmul, 28 ms per convolution, so the whole probe
# takes about a second (three when other work keeps the cores busy). 128 channels, not 64: at 56×56×64 XLA:CPU's
# convolution reaches half the throughput.
CPU_SHAPES = ProbeShapes(matmul_n=1024, conv_input_nhwc=(8, 28, 28, 128), conv_out_channels=128)
# 1.1 TFLOP per matmul and 0.47 TFLOP per convolution: milliseconds per call even at an H100's peak, enough work
# to fill every SM or MXU, and under 2 GB of operands (a TPU v5e has 16 GB).
ACCELERATOR_SHAPES = ProbeShapes(matmul_n=8192, conv_input_nhwc=(128, 56, 56, 256), conv_out_channels=256)

# Dense peak TFLOP/s (no 2:4 sparsity: NVIDIA's starred datasheet figures are twice these) by precision, keyed by
# a lower-case fragment of ``jax.devices()[0].device_kind``. "fp32" is the roof of float32 operands at JAX's
# default matmul precision, which computes float32 dots and convolutions with TF32 tensor cores on NVIDIA Ampere
# and later and with one bfloat16 pass on a TPU's MXU (docs.jax.dev, "Matmul precision"): so an NVIDIA "fp32"
# here is the TF32 tensor-core figure, not the far lower CUDA-core FP32 one (given in the comments), and a TPU's
# is its bf16 figure. A measured fp32 peak above the CUDA-core figure is therefore expected.
# Sources: NVIDIA H100 and H200 product pages and datasheets (SXM, PCIe and NVL columns); NVIDIA A100 datasheet
# (SXM4 and PCIe alike); NVIDIA L4 datasheet; Google Cloud TPU system architecture pages (peak bf16 per chip).
_HOPPER_SXM = {"bf16": 989.4, "fp32": 494.7}  # BF16 1,978.9 / TF32 989.4 sparse; FP32 (CUDA cores) 66.9
_HOPPER_NVL = {"bf16": 835.5, "fp32": 417.5}  # BF16 1,671 / TF32 835 sparse; FP32 60
DATASHEET_TFLOPS: Mapping[str, Mapping[str, float]] = {
    "h100 pcie": {"bf16": 756.5, "fp32": 378.0},  # BF16 1,513 / TF32 756 sparse; FP32 51
    "h100 nvl": _HOPPER_NVL,
    "h100": _HOPPER_SXM,  # "NVIDIA H100 80GB HBM3" is the SXM5 part
    "h200 nvl": _HOPPER_NVL,
    "h200": _HOPPER_SXM,  # the H100's GH100 compute with more, faster memory
    "a100": {"bf16": 312.0, "fp32": 156.0},  # "NVIDIA A100-SXM4-80GB", "…-PCIE-40GB": FP32 19.5
    "l4": {"bf16": 121.0, "fp32": 60.0},  # BF16 242 / TF32 120 sparse; FP32 30.3
    "tpu v4": {"bf16": 275.0, "fp32": 275.0},
    "tpu v5 lite": {"bf16": 197.0, "fp32": 197.0},  # v5e
    "tpu v5e": {"bf16": 197.0, "fp32": 197.0},
    "tpu v5p": {"bf16": 459.0, "fp32": 459.0},
    "tpu v5": {"bf16": 459.0, "fp32": 459.0},  # v5p reports itself as "TPU v5"
    "tpu v6 lite": {"bf16": 918.0, "fp32": 918.0},  # v6e (Trillium)
    "tpu v6e": {"bf16": 918.0, "fp32": 918.0},
}


def datasheet(device_kind: str) -> Mapping[str, float] | None:
    """The datasheet peak TFLOP/s by precision of ``device_kind``, or None for a device not in the table (any CPU).

    The longest matching key wins ("h100 pcie" before "h100"), and a key matches only as whole words, so "l4"
    does not match an L40S nor "h200" a GH200."""
    kind = device_kind.lower()
    for name in sorted(DATASHEET_TFLOPS, key=len, reverse=True):
        if re.search(rf"(?<![a-z0-9]){re.escape(name)}(?![a-z0-9])", kind):
            return DATASHEET_TFLOPS[name]
    return None


def matmul_flops(n: int) -> int:
    """FLOPs of an n×n @ n×n matrix product: n² outputs, each n multiply-adds."""
    return 2 * n**3


def conv_flops(input_nhwc: Sequence[int], kernel_hwio: Sequence[int]) -> int:
    """FLOPs of a stride-1 'SAME' convolution: N·H·W·Cout outputs, each kh·kw·Cin multiply-adds (the taps on the
    padded border count, as the dense kernel computes them and as :mod:`cnnbench.engine.macs` counts them)."""
    n, h, w, _ = input_nhwc
    kh, kw, c_in, c_out = kernel_hwio
    return 2 * n * h * w * c_out * kh * kw * c_in


@dataclass(frozen=True)
class Roofline:
    """What the probe measured: TFLOP/s by precision of each kernel, the datasheet peak where the device is known,
    the problem sizes, and how long the probe took (compiles included)."""

    device_kind: str
    backend: str
    matmul_tflops: Mapping[str, float]
    conv_tflops: Mapping[str, float]
    datasheet_tflops: Mapping[str, float] | None
    shapes: Mapping[str, Any]
    seconds: float

    def peak(self, precision: str) -> float | None:
        """The measured peak at ``precision``: the faster of the two kernels, or None if it was not probed."""
        measured = [tflops[precision] for tflops in (self.matmul_tflops, self.conv_tflops) if precision in tflops]
        return max(measured) if measured else None

    def to_json(self) -> dict[str, Any]:
        return {
            "device_kind": self.device_kind,
            "backend": self.backend,
            "matmul_tflops": dict(self.matmul_tflops),
            "conv_tflops": dict(self.conv_tflops),
            "datasheet_tflops": dict(self.datasheet_tflops) if self.datasheet_tflops is not None else None,
            "shapes": dict(self.shapes),
            "seconds": self.seconds,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Roofline:
        """Read :meth:`to_json`'s form; a missing or malformed key reads as unknown (an older report has none)."""
        sheet = data.get("datasheet_tflops")
        shapes = data.get("shapes")
        return cls(
            device_kind=_text(data.get("device_kind")),
            backend=_text(data.get("backend")),
            matmul_tflops=_tflops(data.get("matmul_tflops")),
            conv_tflops=_tflops(data.get("conv_tflops")),
            datasheet_tflops=_tflops(sheet) if isinstance(sheet, Mapping) else None,
            shapes=dict(shapes) if isinstance(shapes, Mapping) else {},
            seconds=_number(data.get("seconds")) or 0.0,
        )


def probe(precisions: Sequence[str] = PRECISIONS) -> Roofline:
    """Measure the matmul and convolution TFLOP/s of the default device at each precision (``fp32``: float32
    operands; ``bf16``: bfloat16 operands, float32 accumulation); about a second on a 2-core CPU."""
    precisions = (precisions,) if isinstance(precisions, str) else tuple(precisions)
    for precision in precisions:
        if precision not in PRECISIONS:
            raise ValueError(f"unknown precision {precision!r}; known: {', '.join(PRECISIONS)}")
    import jax  # here, not at module level: the results and report layers read Roofline without loading JAX

    start = time.perf_counter()
    backend = jax.default_backend()
    shapes = CPU_SHAPES if backend == "cpu" else ACCELERATOR_SHAPES
    matmul = {p: _matmul_tflops(shapes.matmul_n, p) for p in precisions}
    conv = {p: _conv_tflops(shapes.conv_input_nhwc, shapes.conv_kernel_hwio, p) for p in precisions}
    kind = jax.devices()[0].device_kind
    sheet = datasheet(kind)
    return Roofline(
        device_kind=kind,
        backend=backend,
        matmul_tflops=matmul,
        conv_tflops=conv,
        datasheet_tflops=dict(sheet) if sheet is not None else None,
        shapes=shapes.to_json(),
        seconds=time.perf_counter() - start,
    )


def _matmul_tflops(n: int, precision: str) -> float:
    import jax.numpy as jnp  # JAX stays out of module level (see probe)

    a = _operand((n, n), precision)
    return _timed_tflops(lambda x, y: jnp.matmul(x, y, preferred_element_type=jnp.float32), (a, a), matmul_flops(n))


def _conv_tflops(input_nhwc: tuple[int, ...], kernel_hwio: tuple[int, ...], precision: str) -> float:
    import jax  # JAX stays out of module level (see probe)
    import jax.numpy as jnp

    def conv(x: Any, k: Any) -> Any:
        dimension_numbers = ("NHWC", "HWIO", "NHWC")
        return jax.lax.conv_general_dilated(
            x, k, (1, 1), "SAME", dimension_numbers=dimension_numbers, preferred_element_type=jnp.float32
        )

    operands = (_operand(input_nhwc, precision), _operand(kernel_hwio, precision))
    return _timed_tflops(conv, operands, conv_flops(input_nhwc, kernel_hwio))


def _timed_tflops(fn: Callable[..., Any], operands: tuple[Any, ...], flops: int) -> float:
    """Compile ``fn`` for ``operands`` ahead of time, time its calls and turn the median into TFLOP/s."""
    import jax  # JAX stays out of module level (see probe)

    compiled = jax.jit(fn).lower(*operands).compile()
    stats = measure(lambda: jax.block_until_ready(compiled(*operands)))
    return flops / stats.median / 1e12


def _operand(shape: tuple[int, ...], precision: str) -> Any:
    """Values in [-1, 1] on the default device, tiled on the host from a short pattern: quick at any size, where
    a jitted fill or ``jax.random`` costs a compile per shape (a tenth of a second each on a busy 2-core CPU)."""
    import jax  # JAX stays out of module level (see probe)
    import jax.numpy as jnp
    import numpy as np

    pattern = np.sin(np.arange(1021, dtype=np.float32))  # a prime period, so rows and columns do not repeat alike
    return jax.device_put(np.resize(pattern, shape).astype(jnp.bfloat16 if precision == "bf16" else np.float32))


def _tflops(value: Any) -> dict[str, float]:
    """The entries of a mapping of names to numbers that :func:`_number` accepts; anything else is dropped."""
    if not isinstance(value, Mapping):
        return {}
    read = {key: _number(number) for key, number in value.items() if isinstance(key, str)}
    return {key: number for key, number in read.items() if number is not None}


def _number(value: Any) -> float | None:
    """A finite non-negative float, or None (NaN, ±inf, negatives, booleans and non-numbers read as unknown)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value < 0:
        return None
    return float(value)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else "unknown"
