"""Numeric precision of a run (SPEC §6): ``fp32``, or ``bf16`` mixed precision.

``bf16`` is mixed precision as the flax ImageNet example and timm's AMP mean it: parameters, optimizer state and
BatchNorm statistics stay float32; convolutions and matrix products take bfloat16 operands (BatchNorm reduces its
statistics in float32). The engine applies it (``cnnbench.engine.precision``); here it is only a name.
"""

from __future__ import annotations

PRECISIONS = ("fp32", "bf16")
DEFAULT_PRECISION = "fp32"
