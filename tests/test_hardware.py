"""The hardware suite (SPEC §6 ``hardware``): suite files, bench points timed at canonical configs, out-of-memory
rows that do not stop a sweep, the ``cnnbench bench`` command and the pytest items of a hardware run."""

from __future__ import annotations

import csv
import json
import math
import tomllib
from pathlib import Path

import pytest

import cnnbench.engine.bench as bench_module  # the engine first: pytester's in-process runs must not re-import jaxlib
from cnnbench.cli import main
from cnnbench.config.hardware import BenchPoint, BenchSettings, HardwareSuite
from cnnbench.config.suite import SuiteError, load_suite, parse_hardware_suite, read_suite
from cnnbench.engine import roofline
from cnnbench.engine.catalog import registry_catalog
from cnnbench.engine.roofline import Roofline
from cnnbench.engine.timing import Timer
from cnnbench.results.schema import load_report
from cnnbench.session import HardwareSession, narrow

HW_SUITE = """
name = "hw"
kind = "hardware"
archs = ["lenet5"]
batches = [1, 2]
precisions = ["fp32"]
modes = ["train", "infer"]

[bench]
rounds = 2
warmup = 1
min_round_s = 0.01
"""
LENET_GMACS = 0.000417  # SPEC §2, at 32×32×1
QUICK = BenchSettings(rounds=2, warmup=1, min_round_s=0.0)


def hw_suite(text: str = HW_SUITE, **changes: object) -> HardwareSuite:
    raw = tomllib.loads(text) | changes
    return parse_hardware_suite(raw, registry_catalog(), "hw.toml")


def fake_roofline(peak: float) -> Roofline:
    return Roofline("cpu", "cpu", {"fp32": peak}, {"fp32": peak / 2}, None, {}, 0.0)


# ------------------------------------------------------------------------------------------------ suites


def test_the_builtin_hardware_suite_times_every_family_at_each_batch_precision_and_mode() -> None:
    suite = read_suite("hardware", registry_catalog())
    assert isinstance(suite, HardwareSuite)
    families = {"lenet5", "alexnet", "vgg16", "googlenet", "resnet50", "xception", "seresnet50", "densenet121",
                "mobilenetv2"}  # fmt: skip
    assert families <= set(suite.archs)
    assert len(suite.points()) == len(suite.archs) * len(suite.batches) * len(suite.precisions) * len(suite.modes)
    assert suite.points()[0].id == f"{suite.archs[0]}-b{suite.batches[0]}-fp32-train"
    with pytest.raises(SuiteError, match=r"is a hardware suite.*cnnbench bench --suite hardware"):
        load_suite("hardware", registry_catalog())


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"batches": [0, 2]}, "key 'batches': expected a non-empty list of batch sizes"),
        ({"batches": []}, "key 'batches': expected a non-empty list"),
        ({"batches": [2, 2]}, "key 'batches': lists a batch size twice"),
        ({"precisions": ["fp16"]}, "key 'precisions': unknown precision 'fp16'; known: fp32, bf16"),
        ({"modes": ["eval"]}, "key 'modes': unknown mode 'eval'; known: train, infer"),
        ({"archs": ["resnet51"]}, "key 'archs': unknown arch 'resnet51'"),
        ({"bench": {"rounds": 0}}, "key 'bench.rounds': must be at least 1, got 0"),
        ({"bench": {"repeats": 3}}, "key 'bench.repeats': unknown key"),
        ({"strategies": ["s1"]}, "key 'strategies': unknown key"),
    ],
)
def test_a_malformed_hardware_suite_names_the_key(changes: dict, message: str) -> None:
    with pytest.raises(SuiteError, match=f"suite hw.toml: {message}"):
        hw_suite(**changes)


def test_an_unknown_kind_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "odd.toml"
    path.write_text('kind = "benchmark"\narchs = ["lenet5"]\n')
    with pytest.raises(SuiteError, match="key 'kind': unknown value 'benchmark'; expected one of: transfer, hardware"):
        read_suite(str(path), registry_catalog())


def test_narrowing_replaces_batches_precisions_and_modes_and_checks_them() -> None:
    suite = narrow(hw_suite(), ("resnet18",), (4,), ("bf16",), ("infer",))
    assert [p.id for p in suite.points()] == ["resnet18-b4-bf16-infer"]
    assert narrow(hw_suite()).points() == hw_suite().points()
    for kwargs, message in (({"archs": ("nope",)}, "unknown arch 'nope'"),
                            ({"precisions": ("fp8",)}, "unknown precision 'fp8'"),
                            ({"modes": ("eval",)}, "unknown mode 'eval'"),
                            ({"batches": (0,)}, "batch sizes must be at least 1")):  # fmt: skip
        with pytest.raises(SuiteError, match=message):
            narrow(hw_suite(), **kwargs)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------- bench points


@pytest.mark.parametrize("mode", ["train", "infer"])
def test_a_bench_point_reports_figures_that_agree_with_each_other(mode: str) -> None:
    point = BenchPoint("lenet5", 2, "fp32", mode)
    row = bench_module.run_point(point, QUICK, Timer(3, 0.0), fake_roofline(0.05))
    assert row.status == "passed" and row.error is None, row.error
    assert (row.img_size, row.in_chans, row.params, row.rounds) == (32, 1, 61_706, 3)  # the canonical config
    assert row.gmacs_per_image == pytest.approx(LENET_GMACS, rel=0.005)
    assert row.images_per_s == pytest.approx(2 / (row.step_ms / 1e3))
    assert row.images_per_s_low <= row.images_per_s <= row.images_per_s_high
    forwards = 3 if mode == "train" else 1
    assert row.tflops == pytest.approx(2 * row.gmacs_per_image * 1e9 * 2 * forwards / (row.step_ms / 1e3) / 1e12)
    assert row.utilisation == pytest.approx(row.tflops / 0.05)
    parts = row.memory
    assert row.memory_bytes == parts["argument"] + parts["output"] - parts["alias"] + parts["temp"] > 0
    if mode == "train":  # params, BatchNorm-free rest and optimizer state are donated to the step's outputs
        assert parts["alias"] > 0
    assert row.compile_s > 0 and row.device_peak_bytes is None  # CPU reports no device peak


def test_a_batch_beyond_the_devices_memory_is_out_of_memory_and_the_sweep_goes_on(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    limits = iter([10_000, None])  # the first point's program cannot fit in 10 kB; the second has no limit
    monkeypatch.setattr(bench_module, "device_memory", lambda: next(limits))
    suite = narrow(hw_suite(), modes=("infer",))
    session = HardwareSession(suite, suite.points(), tmp_path)
    monkeypatch.setattr(roofline, "probe", lambda precisions: fake_roofline(0.05))
    first, second = (session.run(p, Timer(2, 0.0)) for p in suite.points())
    assert first.status == "out of memory" and first.images_per_s is None
    assert first.error.startswith("OutOfMemory: XLA's memory analysis needs 0.0 GiB, the device has 0.0 GiB")
    assert first.memory_bytes > 10_000 and first.compile_s > 0  # what it would have needed is still reported
    assert second.status == "passed" and second.images_per_s > 0
    report = load_report(tmp_path / "latest" / "report.json")
    assert [r["status"] for r in report["hardware"]] == ["out of memory", "passed"]


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (RuntimeError("RESOURCE_EXHAUSTED: Out of memory while trying to allocate 3.2GiB"), "out of memory"),
        (MemoryError(), "out of memory"),
        (ValueError("the kernel failed"), "error"),
    ],
)
def test_a_failing_point_becomes_a_row_not_an_exception(
    monkeypatch: pytest.MonkeyPatch, error: Exception, status: str
) -> None:
    def fail(point: BenchPoint, settings: BenchSettings) -> None:
        raise error

    monkeypatch.setattr(bench_module, "compile_point", fail)
    row = bench_module.run_point(BenchPoint("resnet50", 128, "bf16", "train"), QUICK, Timer(), None)
    assert row.status == status and row.error.startswith(type(error).__name__)
    assert row.gmacs_per_image == pytest.approx(4.09, rel=0.01) and row.images_per_s is None


# ------------------------------------------------------------------------------------------------ commands


def test_cnnbench_bench_prints_json_rows_for_scripts(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    argv = ["bench", "lenet5", "--batch", "1,3", "--mode", "infer", "--precision", "fp32,bf16", "--rounds", "2",
            "--json", "--report", str(tmp_path)]  # fmt: skip
    assert main(argv) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["arch"], r["batch"], r["precision"], r["mode"]) for r in rows] == [
        ("lenet5", 1, "fp32", "infer"), ("lenet5", 3, "fp32", "infer"),
        ("lenet5", 1, "bf16", "infer"), ("lenet5", 3, "bf16", "infer"),
    ]  # fmt: skip
    for row in rows:
        assert row["images_per_s"] > 0 and row["memory_bytes"] > 0
        assert row["gmacs_per_image"] == pytest.approx(LENET_GMACS, rel=0.005)
    report = load_report(tmp_path / "latest" / "report.json")
    assert set(report["environment"]["roofline"]["matmul_tflops"]) == {"fp32", "bf16"}
    assert report["environment"]["precision"] == "fp32,bf16"
    with open(tmp_path / "latest" / "results.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert [float(r["images_per_s"]) for r in table] == pytest.approx([r["images_per_s"] for r in rows])
    assert {r["run_id"] for r in table} == {report["run_id"]} and table[0]["backend"] == "cpu"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["bench", "nope"], "unknown arch 'nope'"),
        (["bench", "lenet5", "--batch", "1,x"], "--batch '1,x': expected batch sizes such as 1,32,128"),
        (["bench", "lenet5", "--rounds", "0"], "--rounds must be at least 1"),
        (["bench", "--suite", "smoke"], "is a transfer suite"),
    ],
)
def test_cnnbench_bench_rejects_bad_input(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err


# --------------------------------------------------------------------------------------------- pytest items


def test_a_hardware_suite_runs_as_pytest_items_through_pytest_benchmark(pytester: pytest.Pytester) -> None:
    (pytester.path / "hw.toml").write_text(HW_SUITE)
    result = pytester.runpytest_subprocess("--cnnbench", "--cnnbench-suite=hw.toml", "--cnnbench-report=reports",
                                           "--benchmark-json=bench.json", "-v", timeout=600)  # fmt: skip
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines([
        "hw.toml::lenet5-b1-fp32-train PASSED*", "hw.toml::lenet5-b2-fp32-infer PASSED*", "*4 passed*",
        "*Roofline probe (measured TFLOP/s) on cpu: fp32: matmul *", "*report: *report.md*",
    ])  # fmt: skip
    report = load_report(pytester.path / "reports" / "latest" / "report.json")
    assert [r["id"] for r in report["hardware"]] == [p.id for p in hw_suite().points()]
    assert report["scenarios"] == [] and report["suite"]["kind"] == "hardware"
    markdown = (pytester.path / "reports" / "latest" / "report.md").read_text()
    assert "## Hardware" in markdown and "| lenet5 | 2     | fp32      | infer |" in markdown
    assert "data:image/png;base64," in (pytester.path / "reports" / "latest" / "report.html").read_text()
    timed = {b["extra_info"]["id"]: b for b in json.loads((pytester.path / "bench.json").read_text())["benchmarks"]}
    row = next(r for r in report["hardware"] if r["id"] == "lenet5-b2-fp32-infer")
    assert timed[row["id"]]["extra_info"]["images_per_s"] == row["images_per_s"]
    assert math.isclose(timed[row["id"]]["stats"]["median"] * 1e3, row["step_ms"])  # one timing, two outputs


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--cnnbench-suite=hw.toml", "--cnnbench-strategy=s1"], "*--cnnbench-strategy apply to transfer suites*"),
        (["--cnnbench-suite=hw.toml", "--cnnbench-batch=1,x"], "*--cnnbench-batch '1,x': expected integers*"),
        (["--cnnbench-suite=hw.toml", "--cnnbench-precision=fp8"], "*unknown precision 'fp8'*"),
        (["--cnnbench-suite=smoke", "--cnnbench-mode=train"], "*--cnnbench-mode applies to a hardware suite*"),
        (["--cnnbench-suite=smoke", "--cnnbench-precision=fp16"], "*--cnnbench-precision 'fp16': expected one of*"),
    ],
)
def test_options_of_the_other_kind_of_suite_are_usage_errors(
    pytester: pytest.Pytester, options: list[str], message: str
) -> None:
    (pytester.path / "hw.toml").write_text(HW_SUITE)
    result = pytester.runpytest_inprocess("--cnnbench", *options)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_compare_lines_up_two_machines_hardware_tables(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from cnnbench.engine.measurement import BenchRecord
    from cnnbench.report.io import write_report
    from cnnbench.results.build import build_report

    def run(name: str, rates: dict[str, float | None], kind: str) -> Path:
        rows = []
        for point, rate in rates.items():
            arch, batch, precision, mode = point.split("-")
            status = "passed" if rate else "out of memory"
            rows.append(BenchRecord(arch, int(batch[1:]), precision, mode, status, images_per_s=rate))
        env = {"cnnbench": "0", "jax": "0", "flax": "0", "optax": "0", "backend": kind, "device_kind": kind,
               "device_count": 1, "cpu": "x", "git_commit": None, "suite_hash": "h"}  # fmt: skip
        report = build_report(name, "2026-12-01T00:00:00+00:00", None, env, [], [], hardware=rows)
        return write_report(report, tmp_path / name, plots=False) / "report.json"

    a = run("cpu", {"resnet50-b1-fp32-infer": 10.0, "resnet50-b128-fp32-train": None}, "cpu")
    b = run("gpu", {"resnet50-b1-fp32-infer": 20.0, "resnet50-b128-fp32-train": 900.0, "vgg16-b1-bf16-infer": 5.0},
            "gpu")  # fmt: skip
    assert main(["compare", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert (
        "## Hardware" in out and "3 bench points: 3 passed" in out and "2 of 3 bench points are in every report" in out
    )
    lines = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]] for line in out.splitlines()
             if line.startswith("| resnet50-") or line.startswith("| vgg16-")}  # fmt: skip
    assert lines["resnet50-b1-fp32-infer"] == ["10.0", "20.0", "×2.00"]
    assert lines["resnet50-b128-fp32-train"] == ["out of memory", "900", "-"]
    assert lines["vgg16-b1-bf16-infer"] == ["-", "5.0", "-"]
