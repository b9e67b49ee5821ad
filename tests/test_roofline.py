"""The roofline probe (``cnnbench.engine.roofline``): one real probe on this CPU (about a second), the FLOP formulas
against hand counts and XLA's, the datasheet lookup, the JSON round trip and an import that stays free of JAX."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import jax
import jax.numpy as jnp
import pytest

from cnnbench.config.precision import PRECISIONS
from cnnbench.engine.roofline import (
    CPU_SHAPES,
    DATASHEET_TFLOPS,
    Roofline,
    conv_flops,
    datasheet,
    matmul_flops,
    probe,
)


@pytest.fixture(scope="module")
def roofline() -> Roofline:
    return probe()


def test_probe_measures_both_kernels_at_every_precision_on_this_cpu(roofline: Roofline) -> None:
    assert roofline.backend == "cpu" and roofline.device_kind == jax.devices()[0].device_kind
    for tflops in (roofline.matmul_tflops, roofline.conv_tflops):
        assert set(tflops) == set(PRECISIONS)
        assert all(math.isfinite(value) and 1e-3 < value < 10 for value in tflops.values()), tflops
    assert roofline.datasheet_tflops is None  # no datasheet peak for a CPU
    assert 0 < roofline.seconds < 60


def test_probe_records_the_cpu_shapes_and_their_flops(roofline: Roofline) -> None:
    assert roofline.shapes == CPU_SHAPES.to_json()
    assert roofline.shapes["matmul_n"] == 1024
    assert roofline.shapes["matmul_flops"] == 2_147_483_648  # 2 · 1024³
    assert roofline.shapes["conv_input_nhwc"] == [8, 28, 28, 128]
    assert roofline.shapes["conv_kernel_hwio"] == [3, 3, 128, 128]
    assert roofline.shapes["conv_flops"] == 1_849_688_064  # 2 · (8·28·28 outputs · 128 channels) · (3·3·128 taps)


def test_peak_is_the_faster_kernel(roofline: Roofline) -> None:
    for precision in PRECISIONS:
        assert roofline.peak(precision) == max(roofline.matmul_tflops[precision], roofline.conv_tflops[precision])
    partial = Roofline("kind", "gpu", {"fp32": 2.0, "bf16": 5.0}, {"fp32": 3.0}, None, {}, 1.0)
    assert (partial.peak("fp32"), partial.peak("bf16"), partial.peak("fp16")) == (3.0, 5.0, None)


def test_flop_formulas_match_hand_counts_and_xla() -> None:
    assert matmul_flops(3) == 54  # 9 outputs, 3 multiply-adds each
    assert conv_flops((2, 5, 7, 3), (3, 3, 3, 4)) == 2 * (2 * 5 * 7 * 4) * (3 * 3 * 3)

    a = jnp.ones((64, 64), jnp.float32)
    assert jax.jit(jnp.matmul).lower(a, a).compile().cost_analysis()["flops"] == matmul_flops(64)

    x, k = jnp.ones((2, 10, 12, 8), jnp.float32), jnp.ones((3, 3, 8, 16), jnp.float32)
    conv = lambda x, k: jax.lax.conv_general_dilated(x, k, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    xla_flops = jax.jit(conv).lower(x, k).compile().cost_analysis()["flops"]
    # XLA leaves out the taps on the padded border: (3H − 2)(3W − 2) of the 9HW taps per channel pair fall inside
    assert xla_flops == conv_flops(x.shape, k.shape) * (3 * 10 - 2) * (3 * 12 - 2) / (9 * 10 * 12)


def test_json_round_trip(roofline: Roofline) -> None:
    assert Roofline.from_json(json.loads(json.dumps(roofline.to_json()))) == roofline
    gpu = Roofline("NVIDIA H100 80GB HBM3", "gpu", {"fp32": 350.0}, {"fp32": 300.0}, {"bf16": 989.4}, {"n": 8}, 4.5)
    assert Roofline.from_json(json.loads(json.dumps(gpu.to_json()))) == gpu


def test_from_json_reads_missing_or_malformed_keys_as_unknown() -> None:
    empty = Roofline.from_json({})
    assert empty == Roofline("unknown", "unknown", {}, {}, None, {}, 0.0)
    assert empty.peak("fp32") is None
    odd = Roofline.from_json(
        {
            "device_kind": 3,
            "matmul_tflops": {"fp32": "fast", "bf16": float("nan"), "tf32": True, "fp16": -1.0, "int8": 2},
            "conv_tflops": [1.0],
            "datasheet_tflops": "n/a",
            "shapes": [1024],
            "seconds": float("inf"),
        }
    )
    assert odd == Roofline("unknown", "unknown", {"int8": 2.0}, {}, None, {}, 0.0)


@pytest.mark.parametrize(
    ("device_kind", "bf16"),
    [
        ("NVIDIA H100 80GB HBM3", 989.4),
        ("NVIDIA H100 PCIe", 756.5),
        ("NVIDIA H100 NVL", 835.5),
        ("NVIDIA H200", 989.4),
        ("NVIDIA A100-SXM4-80GB", 312.0),
        ("NVIDIA A100-PCIE-40GB", 312.0),
        ("NVIDIA L4", 121.0),
        ("TPU v4", 275.0),
        ("TPU v5 lite", 197.0),
        ("TPU v5", 459.0),
        ("TPU v5p", 459.0),
        ("TPU v6 lite", 918.0),
        ("NVIDIA L40S", None),  # "l4" is not a word of it
        ("NVIDIA GH200 480GB", None),  # nor "h200"
        ("cpu", None),
    ],
)
def test_datasheet_matches_the_most_specific_device_kind(device_kind: str, bf16: float | None) -> None:
    sheet = datasheet(device_kind)
    assert (sheet["bf16"] if sheet is not None else None) == bf16
    assert datasheet(device_kind.upper()) == sheet


def test_datasheet_fp32_is_never_above_bf16() -> None:
    """fp32 at JAX's default precision runs on TF32 tensor cores or one bf16 pass: at most the bf16 rate."""
    for name, sheet in DATASHEET_TFLOPS.items():
        assert set(sheet) == set(PRECISIONS) and 0 < sheet["fp32"] <= sheet["bf16"], name


def test_unknown_precision_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"^unknown precision 'fp16'; known: fp32, bf16$"):
        probe(("fp32", "fp16"))
    with pytest.raises(ValueError, match=r"^unknown precision 'fp16'"):  # one name is one precision, not letters
        probe("fp16")


def test_import_does_not_load_jax() -> None:
    code = "import sys, cnnbench.engine.roofline; assert 'jax' not in sys.modules, 'jax was imported'"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
