"""``cnnbench export``: many runs' flat rows as one CSV or JSON Lines table, the same rows as each run's
``results.csv``, each with its run's identity; hardware and transfer runs refused together; bad inputs."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from test_compare import DELTA, ENVIRONMENT, GPU, record, records, write

from cnnbench.cli import main
from cnnbench.engine.measurement import BenchRecord
from cnnbench.report.flat import results_csv
from cnnbench.results.build import build_report
from cnnbench.results.schema import read_report

IDENTITY = ("run_id", "suite", "suite_hash", "git_commit", "fingerprint", "backend", "device_kind", "device_count")


@pytest.fixture
def runs(tmp_path: Path) -> tuple[Path, Path]:
    """A: a CPU run of resnet18 (24 scenarios); B, in a run directory: a bf16 GPU run of the same suite with an
    errored scenario (25 scenarios)."""
    a = write(tmp_path / "a.json", records("resnet18"), "run-a", fingerprint="f00")
    errored = record("resnet18", "s2", "q4", 0, 0.0, freeze=1, status="error") | {"error": "boom"}
    scenarios = [{**r, "precision": "bf16"} for r in [*records("resnet18", DELTA, 3.41), errored]]
    b = write(tmp_path / "b" / "report.json", scenarios, "run-b", fingerprint="9pu", **GPU)
    return a, b.parent


def table(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_csv_concatenates_the_runs_rows_each_with_its_identity(runs, capsys) -> None:
    a, b = runs
    assert main(["export", str(a), str(b), "--csv"]) == 0
    out = capsys.readouterr().out
    rows = table(out)
    assert [r["run_id"] for r in rows] == ["run-a"] * 24 + ["run-b"] * 25
    first, last = rows[0], rows[-1]
    assert {k: first[k] for k in (*IDENTITY, "precision")} == {
        "run_id": "run-a", "suite": "smoke", "suite_hash": "9f2c1a",
        "git_commit": "c5d3c9f114bb21e6654418c150c27252c902b028", "fingerprint": "f00", "backend": "cpu",
        "device_kind": "cpu", "device_count": "1", "precision": "fp32"}  # fmt: skip
    assert (last["backend"], last["device_kind"], last["git_commit"], last["fingerprint"], last["precision"]) == (
        "gpu", "NVIDIA H100 80GB HBM3", "0123456789abcdef", "9pu", "bf16")  # fmt: skip
    assert (last["id"], last["status"], last["error"], last["test_accuracy"]) == (
        "resnet18-s2-q4-gap-freeze1-seed0", "error", "boom", "")  # fmt: skip
    assert float(first["test_accuracy"]) == pytest.approx(0.80) and float(first["train_images_per_s"]) == 900.0
    # each run's part is exactly its results.csv without the header
    parts = [results_csv(read_report(path if path.is_file() else path / "report.json")) for path in runs]
    assert out == parts[0] + parts[1].split("\n", 1)[1]


def test_jsonl_has_the_csvs_keys_and_typed_values(runs, tmp_path, capsys) -> None:
    assert main(["export", *map(str, runs), "--csv"]) == 0
    rows = table(capsys.readouterr().out)
    target = tmp_path / "out" / "all.jsonl"
    assert main(["export", *map(str, runs), "--jsonl", "-o", str(target)]) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and f"exported 49 rows (transfer) of 2 reports to {target}" in captured.err
    lines = [json.loads(line) for line in target.read_text().splitlines()]
    assert len(lines) == 49 and all(list(line) == list(rows[0]) for line in lines)
    assert lines[0]["device_count"] == 1 and lines[0]["test_accuracy"] == pytest.approx(0.80)
    assert lines[-1]["test_accuracy"] is None and lines[-1]["layer_transfer"] == 1 and lines[-1]["error"] == "boom"
    for line, row in zip(lines, rows, strict=True):
        assert {k: "" if v is None else str(v) for k, v in line.items()} == row


def test_hardware_runs_export_together_but_not_with_transfer_runs(runs, tmp_path, capsys) -> None:
    paths = []
    for name, rate in (("h1", 120.0), ("h2", 240.0)):
        rows = [BenchRecord("lenet5", batch, "fp32", "infer", "passed", images_per_s=rate * batch) for batch in (1, 8)]
        report = build_report(name, "2026-01-01T00:00:00+00:00", None, ENVIRONMENT | {"suite_hash": name}, [], [],
                              hardware=rows, suite={"name": "hardware", "kind": "hardware"})  # fmt: skip
        paths.append(tmp_path / f"{name}.json")
        paths[-1].write_text(json.dumps(report.to_json()))
    assert main(["export", *map(str, paths), "--csv"]) == 0
    rows = table(capsys.readouterr().out)
    assert [(r["run_id"], r["id"], float(r["images_per_s"])) for r in rows] == [
        ("h1", "lenet5-b1-fp32-infer", 120.0), ("h1", "lenet5-b8-fp32-infer", 960.0),
        ("h2", "lenet5-b1-fp32-infer", 240.0), ("h2", "lenet5-b8-fp32-infer", 1920.0)]  # fmt: skip
    assert "test_accuracy" not in rows[0] and rows[0]["precision"] == "fp32"
    assert main(["export", str(runs[0]), str(paths[0]), "--jsonl"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cnnbench export: transfer and hardware runs have different columns")
    assert f"transfer runs: {runs[0]}; hardware runs: {paths[0]}" in err and "export each kind on its own" in err


def test_bad_input_is_an_error_naming_it(runs, tmp_path, capsys) -> None:
    assert main(["export", str(runs[0]), str(tmp_path / "nope.json"), "--csv"]) == 2
    assert f"cannot read report {tmp_path / 'nope.json'}" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["export", str(runs[0])])  # --csv or --jsonl
    assert exit_.value.code == 2 and "one of the arguments --csv --jsonl is required" in capsys.readouterr().err
