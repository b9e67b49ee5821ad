"""What a suite costs before it runs (cnnbench.engine.estimate), and the `full` suite that is refused on a CPU with
that estimate unless forced."""

from __future__ import annotations

import tomllib
from dataclasses import replace
from pathlib import Path

import pytest

import cnnbench.engine.runner  # noqa: F401  (the engine first: pytester's in-process runs must not re-import jaxlib)
from cnnbench.config.suite import load_suite, parse_suite
from cnnbench.engine.catalog import registry_catalog
from cnnbench.engine.estimate import SIMILARITY_SOURCE_IMAGES, TRAIN_FORWARDS, forward_flops, split_sizes, suite_cost


def test_forward_flops_are_twice_the_reference_macs_at_canonical_scale() -> None:
    suite = load_suite("full", registry_catalog())
    assert suite.img_size == 224 and suite.in_chans == 3 and suite.width("resnet50") == 1.0
    assert forward_flops(suite, "resnet50") == pytest.approx(2 * 4.09e9, rel=0.01)  # SPEC §2, the base alone
    assert forward_flops(suite, "mobilenetv2") == pytest.approx(2 * 0.301e9, rel=0.02)


def test_suite_cost_counts_each_phase_s_images(tiny_suite_text: str, tmp_path: Path) -> None:
    raw = tomllib.loads(tiny_suite_text)
    suite = parse_suite(raw, registry_catalog(), "tiny.toml")
    sizes = split_sizes(suite, tmp_path)
    assert sizes["q4"][0] == 40 and sizes["q3"][0] == 60
    per_image = forward_flops(suite, "lenet5")
    heads, pre = len(suite.heads), suite.pretrain_config("lenet5")
    pretrain = per_image * (TRAIN_FORWARDS * pre.train.steps * pre.train.batch_size + pre.eval_size)

    scratch = suite_cost(replace(suite, strategies=("scratch",)), sizes)
    batch, evaluations = suite.train.batch_size, suite.train.eval_points
    trained = sum(TRAIN_FORWARDS * b.steps * min(batch, sizes[q][0]) + evaluations * sizes[q][1] + sizes[q][2]
                  for q, b in suite.quadrants.items())  # fmt: skip
    assert scratch.pretrain == pytest.approx(pretrain)
    assert scratch.train == pytest.approx(per_image * heads * trained) and scratch.features == 0

    s3 = suite_cost(replace(suite, strategies=("s3",)), sizes)
    features = sum(2 * (n + v) + SIMILARITY_SOURCE_IMAGES + n + v + t for n, v, t in sizes.values())
    assert s3.train == 0 and s3.features == pytest.approx(per_image * features)  # once per target, not per head
    assert s3.seconds(1.0) == pytest.approx(s3.total / 0.5e12)


def test_the_full_suite_is_refused_on_a_cpu_with_its_cost_unless_forced(pytester: pytest.Pytester) -> None:
    args = ["--cnnbench", "--cnnbench-suite=full", "--cnnbench-arch=mobilenetv2", "--cnnbench-quadrant=q4",
            f"--cnnbench-cache={pytester.path / 'cache'}", "--collect-only", "-q"]  # fmt: skip
    refused = pytester.runpytest_inprocess(*args)
    assert refused.ret == pytest.ExitCode.USAGE_ERROR
    refused.stderr.fnmatch_lines([
        "ERROR: cnnbench: suite 'full' is meant for a GPU or TPU (requires_accelerator = true): its 36 selected "
        "scenarios need about * PFLOP of model compute (pretraining *), about * hours on this CPU at 50% of its "
        "measured * TFLOP/s; *--cnnbench-force to run it here anyway"
    ])  # fmt: skip
    forced = pytester.runpytest_inprocess(*args, "--cnnbench-force")
    assert forced.ret == 0, forced.stderr.str()
    assert sum(line.startswith("full::mobilenetv2-") for line in forced.outlines) == 36  # 4 strategies × 3 heads × 3


def test_the_full_suite_starts_from_imported_weights_and_then_costs_no_pretraining(tmp_path: Path) -> None:
    """``full`` at canonical scale is the suite imported ImageNet weights fit: given them for resnet50 (as
    ``--cnnbench-pretrained`` adds them), it runs the same scenarios with no glyph base to pretrain or compare."""
    suite = replace(load_suite("full", registry_catalog()), archs=("resnet50",))
    weighted = suite.with_weights({"resnet50": "r50"})
    assert weighted.weights == {"resnet50": "r50"} and weighted.width("resnet50") == 1.0
    assert weighted.digest != suite.digest and weighted.scenarios() == suite.scenarios()
    sizes = split_sizes(suite, tmp_path)
    plain, imported = suite_cost(suite, sizes), suite_cost(weighted, sizes)
    assert plain.pretrain > 0 and imported.pretrain == 0 and imported.train == plain.train
    similarity = sum(2 * (n + v) + SIMILARITY_SOURCE_IMAGES for n, v, _ in sizes.values())
    assert plain.features - imported.features == pytest.approx(forward_flops(suite, "resnet50") * similarity)
