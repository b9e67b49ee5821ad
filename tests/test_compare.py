"""``cnnbench compare``: alignment of groups across reports, accuracy differences, throughput ratios, verdicts,
the header's suite and fingerprint lines, the markdown and HTML outputs, and bad inputs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from cnnbench.cli import main
from cnnbench.report.compare import compare, load_runs, render_html, render_markdown
from cnnbench.results.build import build_report

ENVIRONMENT = {
    "cnnbench": "0.1.0", "jax": "0.10.2", "flax": "0.12.8", "optax": "0.2.8", "backend": "cpu", "device_kind": "cpu",
    "device_count": 1, "cpu": "AMD EPYC", "git_commit": "c5d3c9f114bb21e6654418c150c27252c902b028",
    "suite_hash": "9f2c1a",
}  # fmt: skip
GPU = {"backend": "gpu", "device_kind": "NVIDIA H100 80GB HBM3", "git_commit": "0123456789abcdef"}
TARGETS = [
    {"name": "textures-large", "quadrant": "q1", "n_train": 3000, "n_test": 600, "n_classes": 6, "similarity": 0.05},
    {"name": "digits-small", "quadrant": "q4", "n_train": 300, "n_test": 500, "n_classes": 10, "similarity": 0.39},
]  # fmt: skip
SEED_OFFSETS = (-0.02, 0.0, 0.02)  # three seeds around the mean: sample std exactly 2 points
TRAIN_SEEDS = (0.9, 1.0, 1.3)  # per-seed factors on the train rate: the median is the rate itself

# Mean test accuracy per (strategy, quadrant) of report A; B adds DELTA. In A the recommendation wins both
# quadrants (q1: s1, q4: s3); in B s2 beats s3 in q4 by 9 points, so there it is lost.
ACC = {("s1", "q1"): 0.82, ("s2", "q1"): 0.78, ("s3", "q1"): 0.60, ("scratch", "q1"): 0.70,
       ("s1", "q4"): 0.90, ("s2", "q4"): 0.89, ("s3", "q4"): 0.91, ("scratch", "q4"): 0.55}  # fmt: skip
DELTA = {("s1", "q1"): 0.012, ("s2", "q4"): 0.11, ("s3", "q4"): -0.005}
TRAIN = {"s1": 1000.0, "s2": 1500.0, "s3": 20000.0, "scratch": 1000.0}


def record(arch: str, strategy: str, quadrant: str, seed: int, accuracy: float, speed: float = 1.0,
           freeze: int | None = None, status: str = "passed") -> dict:  # fmt: skip
    """One scenario record (gap head); train and inference rates scaled by ``speed``, compile time on seed 0 only."""
    metrics = {
        "test_accuracy": None if status == "error" else accuracy,
        "train_images_per_s": TRAIN[strategy] * speed * TRAIN_SEEDS[seed], "infer_images_per_s": 8000.0 * speed,
        "compile_s": 2.0 / speed if seed == 0 else 0.0, "train_s": 10.0, "params_trainable": 1000,
        "params_total": 2000, "gflops": 0.07,
    }  # fmt: skip
    sid = f"{arch}-{strategy}-{quadrant}-gap" + ("" if freeze is None else f"-freeze{freeze}") + f"-seed{seed}"
    return {"id": sid, "arch": arch, "strategy": strategy, "quadrant": quadrant, "head": "gap", "seed": seed,
            "status": status, "metrics": metrics, "layer_transfer": freeze}  # fmt: skip


def records(arch: str, delta: dict | None = None, speed: float = 1.0, skip: tuple = ()) -> list[dict]:
    delta = delta or {}
    return [
        record(arch, s, q, seed, mean + delta.get((s, q), 0.0) + SEED_OFFSETS[seed], speed)
        for (s, q), mean in ACC.items() if (s, q) not in skip for seed in range(3)
    ]  # fmt: skip


def write(path: Path, scenarios: list[dict], run_id: str, suite: dict | None = None, **env: object) -> Path:
    report = build_report(run_id, "2025-01-01T12:00:00+00:00", "2025-01-01T12:08:00+00:00", ENVIRONMENT | env,
                          TARGETS, scenarios, suite=suite or {"name": "smoke"}).to_json()  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report))
    return path


def cells(markdown: str, first: str) -> list[str]:
    """The cells of the markdown table row whose first cell is ``first``."""
    for line in markdown.splitlines():
        row = [c.strip() for c in line.strip("|").split("|")]
        if line.startswith("|") and row[0] == first:
            return row
    raise AssertionError(f"no row {first!r} in\n{markdown}")


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Path, Path]:
    """A: a CPU run of resnet18; B: the same suite on a GPU, 3.41× faster, with DELTA applied, without s3 in q1, and
    with two layer-transfer points whose second seed errored."""
    a = write(tmp_path / "a.json", records("resnet18"), "run-a")
    extra = [record("resnet18", "s2", "q4", seed, 0.85, 3.41, freeze=1, status="error" if seed == 1 else "passed")
             for seed in range(3)]  # fmt: skip
    b = write(tmp_path / "b.json", records("resnet18", DELTA, 3.41, skip=(("s3", "q1"),)) + extra, "run-b", **GPU)
    return a, b


def test_differences_in_points_and_throughput_ratios(pair) -> None:
    comparison = compare(load_runs(pair))
    assert comparison.by_arch and comparison.columns == ["A", "B"]
    rows = {row.key.label(): row for row in comparison.accuracy}
    s1 = rows["resnet18-s1-q1-gap"]
    assert s1.cells[0].mean == pytest.approx(0.82) and s1.cells[0].std == pytest.approx(0.02)
    assert s1.cells[0].n_seeds == 3 and s1.diffs == [pytest.approx(0.012)]
    assert rows["resnet18-s2-q4-gap"].diffs == [pytest.approx(0.11)]
    train = {row.key.label(): row for row in comparison.throughput[0][1]}
    assert train["resnet18-s1-gap"].values == [pytest.approx(1000.0), pytest.approx(3410.0)]
    assert train["resnet18-s1-gap"].ratios == [pytest.approx(3.41)]
    compile_s = {row.key.label(): row for row in comparison.throughput[2][1]}
    assert compile_s["resnet18-s1-gap"].values == [pytest.approx(4.0), pytest.approx(4.0 / 3.41)]  # total: 2 quadrants

    markdown = render_markdown(comparison)
    assert cells(markdown, "resnet18-s1-q1-gap") == ["resnet18-s1-q1-gap", "82.0 ± 2.0 (3)", "83.2 ± 2.0 (3)", "+1.2"]
    assert cells(markdown, "resnet18-s3-q4-gap")[3] == "-0.5"
    assert cells(markdown, "resnet18-s1-gap") == ["resnet18-s1-gap", "1,000", "3,410", "×3.41"]
    assert cells(markdown.split("### compile s")[1], "resnet18-s1-gap") == ["resnet18-s1-gap", "4.0", "1.2", "×0.29"]
    biggest = markdown.split("## Biggest differences")[1]
    assert biggest.index("resnet18-s2-q4-gap: B +11.0 pts vs A (89.0 → 100.0 %)") < biggest.index("+1.2 pts")
    assert "resnet18-s3-gap train img/s: B ×3.41 vs A (20,000 → 68,200)" in biggest


def test_a_value_of_zero_has_no_ratio(tmp_path: Path) -> None:
    cached = records("resnet18")
    for r in cached:
        r["metrics"]["compile_s"] = 0.0  # every program came from the compile cache
    a = write(tmp_path / "a.json", records("resnet18"), "run-a")
    markdown = render_markdown(compare(load_runs([a, write(tmp_path / "b.json", cached, "run-b")])))
    assert cells(markdown.split("### compile s")[1], "resnet18-s1-gap") == ["resnet18-s1-gap", "4.0", "0.0", "-"]


def test_missing_groups_show_a_dash_and_are_listed(pair) -> None:
    markdown = render_markdown(compare(load_runs(pair)))
    assert cells(markdown, "resnet18-s3-q1-gap")[2:] == ["-", "-"]
    assert cells(markdown, "resnet18-s2-q4-gap-freeze1")[1:] == ["-", "85.0 ± 0.0 (2/3)", "-"]
    assert "- only in A (1): resnet18-s3-q1-gap" in markdown
    assert "- only in B (1): resnet18-s2-q4-gap-freeze1" in markdown
    assert "7 of 9 groups are in every report." in markdown


def test_header_says_whether_suite_and_fingerprint_match(pair, tmp_path: Path) -> None:
    a, b = pair
    same = render_markdown(compare(load_runs([a, write(tmp_path / "a2.json", records("resnet18"), "run-a2")])))
    assert "Same suite in every report (hash 9f2c1a)." in same
    assert "Same hardware and software fingerprint" in same
    other = write(tmp_path / "c.json", records("resnet18"), "run-c", suite_hash="77aa", **GPU)
    differ = render_markdown(compare(load_runs([a, b, other])))
    assert "Not the same suite: the suite hashes differ (A 9f2c1a, B 9f2c1a, C 77aa)" in differ
    assert "fingerprints differ (backend, device_kind differ)" in differ
    assert cells(differ, "backend")[1:] == ["cpu", "gpu", "gpu"]
    assert cells(differ, "commit")[1:] == ["c5d3c9f114", "0123456789", "0123456789"]
    assert cells(differ, "scenarios")[1:] == ["24: 24 passed", "24: 23 passed, 1 error", "24: 24 passed"]


def test_single_different_archs_align_by_strategy(tmp_path: Path) -> None:
    a = write(tmp_path / "a.json", records("resnet18"), "run-a")
    b = write(tmp_path / "b.json", records("mobilenetv2", DELTA, 0.5), "run-b")
    comparison = compare(load_runs([a, b]))
    assert not comparison.by_arch and comparison.columns == ["A resnet18", "B mobilenetv2"]
    markdown = render_markdown(comparison)
    assert "Each report ran one arch (A resnet18, B mobilenetv2): groups are aligned by strategy" in markdown
    assert cells(markdown, "group") == ["group", "A resnet18", "B mobilenetv2", "B−A"]
    assert cells(markdown, "s1-q1-gap")[3] == "+1.2" and cells(markdown, "s1-gap")[3] == "×0.50"
    assert cells(markdown, "q4-gap")[1:] == ["s3", "s3: won", "s2: lost", "no"]
    assert "8 of 8 groups are in every report." in markdown and "only in" not in markdown


def test_several_archs_in_a_report_align_by_arch(tmp_path: Path) -> None:
    a = write(tmp_path / "a.json", records("resnet18") + records("lenet5"), "run-a")
    b = write(tmp_path / "b.json", records("lenet5", DELTA), "run-b")
    markdown = render_markdown(compare(load_runs([a, b])))
    assert cells(markdown, "lenet5-s1-q1-gap")[3] == "+1.2"
    assert cells(markdown, "resnet18-s1-q1-gap")[2:] == ["-", "-"]
    assert "- only in A (8): resnet18-s1-q1-gap, resnet18-s2-q1-gap" in markdown


def test_verdicts_side_by_side(pair) -> None:
    markdown = render_markdown(compare(load_runs(pair)))
    assert cells(markdown, "resnet18-q1-gap")[1:] == ["s1", "s1: won", "s1: won", "yes"]
    assert cells(markdown, "resnet18-q4-gap")[1:] == ["s3", "s3: won", "s2: lost", "no"]
    assert "The recommendation held in A 2 of 2; B 1 of 2 checks." in markdown


def test_no_shared_group_prints_the_header_and_says_so(tmp_path: Path) -> None:
    a = write(tmp_path / "a.json", records("resnet18") + records("lenet5"), "run-a")
    b = write(tmp_path / "b.json", records("vgg11"), "run-b")
    markdown = render_markdown(compare(load_runs([a, b])))
    assert cells(markdown, "run id")[1:] == ["run-a", "run-b"]
    assert "No scenario is shared" in markdown and "## Test accuracy" not in markdown


def test_markdown_reads_in_100_columns_with_three_reports(pair, tmp_path: Path) -> None:
    third = write(tmp_path / "c.json", records("resnet18", speed=2.0), "run-c")
    markdown = render_markdown(compare(load_runs([*pair, third])))
    assert max(map(len, markdown.splitlines())) <= 100
    assert cells(markdown, "resnet18-s1-gap")[1:] == ["1,000", "3,410", "2,000", "×3.41", "×2.00"]


def test_cli_prints_markdown_and_writes_markdown_and_html(pair, tmp_path: Path, capsys) -> None:
    md, page = tmp_path / "out" / "compare.md", tmp_path / "out" / "compare.html"
    assert main(["compare", *map(str, pair), "--markdown", str(md), "--html", str(page)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# cnnbench compare: A vs B") and md.read_text() == out
    html = page.read_text()
    assert html.startswith("<!DOCTYPE html>") and not re.search(r"https?:", html)
    assert "83.2 ± 2.0 (3)" in html and "×3.41" in html and "data:image/png;base64," in html
    assert '<td class="num good">+11.0</td>' in html and '<td class="num muted">+1.2</td>' in html  # 1.2 < 2-pt noise
    assert '<td class="num good">×3.41</td>' in html and '<td class="bad">s2: lost</td>' in html
    assert main(["compare", *map(str, pair), "--html", str(md / "x.html")]) == 2  # md is a file, not a directory
    assert f"cannot write {md / 'x.html'}" in capsys.readouterr().err


def test_render_html_colours_a_slowdown_bad(pair) -> None:
    comparison = compare(load_runs(pair[::-1]))
    html = render_html(comparison)
    assert '<td class="num bad">×0.29</td>' in html and '<td class="num bad">-11.0</td>' in html


def test_run_directory_argument(pair, tmp_path: Path, capsys) -> None:
    run = tmp_path / "reports" / "latest"
    run.mkdir(parents=True)
    (run / "report.json").write_text(pair[1].read_text())
    assert main(["compare", str(pair[0]), str(run)]) == 0
    assert cells(capsys.readouterr().out, "run id")[1:] == ["run-a", "run-b"]
    assert main(["compare", str(pair[0]), str(tmp_path / "reports")]) == 2
    assert f"{tmp_path / 'reports'} is a directory without a report.json" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("content", "problem"),
    [(None, "cannot read report"), ("{not json", "is not valid JSON"), ('{"schema": "other/2"}', "schema is 'other/2'"),
     ('{"schema": "cnnbench/1", "run_id": "x"}', "the report lacks 'started'")],
)  # fmt: skip
def test_bad_input_exits_2_naming_the_path(pair, tmp_path: Path, capsys, content: str | None, problem: str) -> None:
    bad = tmp_path / "bad.json"
    if content is not None:
        bad.write_text(content)
    assert main(["compare", str(pair[0]), str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cnnbench compare: ") and str(bad) in err and problem in err


def test_fewer_than_two_reports_is_a_usage_error(pair, capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["compare", str(pair[0])])
    assert exit_.value.code == 2 and "usage: cnnbench compare" in capsys.readouterr().err


# ------------------------------------------------------------------------------ gating and JSON


def gated(scenarios: list[dict]) -> dict:
    """A suite section as a run records it: what the gate judges a report with (tolerances, groups, selection)."""
    groups = list(dict.fromkeys(s["id"].rsplit("-seed", 1)[0] for s in scenarios))
    return {"name": "smoke", "tolerances": {"accuracy_drop": 0.02, "noise_sigmas": 2.0, "throughput_drop": 0.3},
            "groups": groups, "selected_groups": groups}  # fmt: skip


@pytest.mark.parametrize(
    ("delta", "speed", "code", "regressed", "slower"),
    [({}, 1.0, 0, [], []),
     ({("s1", "q1"): -0.10}, 1.0, 1, ["resnet18-s1-q1-gap"], []),  # 10 points against a 3.3-point tolerance
     ({("s1", "q1"): -0.01}, 1.0, 0, [], []),  # within the 2-point drop allowed
     ({}, 0.5, 1, [], ["resnet18-s1-gap", "resnet18-s2-gap", "resnet18-s3-gap", "resnet18-scratch-gap"])],
)  # fmt: skip
def test_fail_on_regression_judges_later_reports_as_the_gate(tmp_path, capsys, delta, speed, code, regressed, slower):
    a = write(tmp_path / "a.json", records("resnet18"), "run-a", fingerprint="f00")
    later = records("resnet18", delta, speed)
    b = write(tmp_path / "b.json", later, "run-b", suite=gated(later), fingerprint="f00")
    assert main(["compare", str(a), str(b), "--fail-on-regression"]) == code
    captured = capsys.readouterr()
    assert captured.out.startswith("# cnnbench compare: A vs B")
    counts = (
        f"gate: B against A: {len(regressed)} group(s) regressed in accuracy, {len(slower)} program(s) in throughput"
    )
    assert captured.err.startswith(counts) and all(name in captured.err for name in regressed + slower)
    assert main(["compare", str(a), str(b)]) == 0  # without the flag, a comparison never fails
    assert "gate:" not in capsys.readouterr().err


def test_fail_on_regression_fails_if_any_later_report_regressed(tmp_path, capsys) -> None:
    a = write(tmp_path / "a.json", records("resnet18"), "run-a")
    same, worse = records("resnet18"), records("resnet18", {("s3", "q4"): -0.10})
    b = write(tmp_path / "b.json", same, "run-b", suite=gated(same))
    c = write(tmp_path / "c.json", worse, "run-c", suite=gated(worse))
    assert main(["compare", str(a), str(b), str(c), "--fail-on-regression", "--json"]) == 1
    gate = json.loads(capsys.readouterr().out)["gate"]
    assert gate["B"]["regressed"] == [] and gate["C"]["regressed"] == ["resnet18-s3-q4-gap"]
    assert gate["C"]["counts"] == {"passed": 7, "regressed": 1, "new": 0, "no result": 0}
    assert not gate["C"]["throughput_comparable"]  # no fingerprint in these environments: throughput not gated


def test_fail_on_regression_refuses_a_report_the_gate_cannot_judge(pair, capsys) -> None:
    assert main(["compare", *map(str, pair), "--fail-on-regression"]) == 2  # B's suite section has no tolerances
    err = capsys.readouterr().err
    assert err.startswith(f"cnnbench compare: B ({pair[1]}) cannot be judged against A: ") and "tolerances" in err


def test_json_has_the_comparisons_numbers(pair, capsys) -> None:
    assert main(["compare", *map(str, pair), "--json"]) == 0
    data = json.loads(capsys.readouterr().out, parse_constant=lambda c: pytest.fail(f"{c} in strict JSON"))
    assert data["schema"] == "cnnbench-compare/1" and data["columns"] == ["A", "B"] and data["gate"] is None
    assert [(r["label"], r["run_id"], r["environment"]["backend"]) for r in data["runs"]] == [
        ("A", "run-a", "cpu"), ("B", "run-b", "gpu")]  # fmt: skip
    assert not data["same_fingerprint"] and data["differing_keys"] == ["backend", "device_kind"]
    assert data["shared"] == 7
    rows = {row["key"]["label"]: row for row in data["accuracy"]}
    s2 = rows["resnet18-s2-q4-gap"]
    assert s2["key"] == {"label": "resnet18-s2-q4-gap", "arch": "resnet18", "strategy": "s2", "quadrant": "q4",
                         "head": "gap", "freeze": None}  # fmt: skip
    assert s2["cells"][0]["mean"] == pytest.approx(0.89) and s2["cells"][0]["std"] == pytest.approx(0.02)
    assert s2["cells"][0]["n_seeds"] == 3 and s2["cells"][0]["statuses"] == ["passed"]
    assert s2["diffs"] == [pytest.approx(0.11)] and s2["noise"] == [pytest.approx(0.02)]
    assert rows["resnet18-s3-q1-gap"]["cells"][1] is None and rows["resnet18-s3-q1-gap"]["diffs"] == [None]
    assert rows["resnet18-s2-q4-gap-freeze1"]["cells"][1]["n_runs"] == 3
    assert data["partial"] == [{"in": ["A"], "groups": [rows["resnet18-s3-q1-gap"]["key"]]},
                               {"in": ["B"], "groups": [rows["resnet18-s2-q4-gap-freeze1"]["key"]]}]  # fmt: skip
    train = data["throughput"][0]
    assert train["quantity"] == "train img/s" and train["higher_is_better"]
    s1 = next(row for row in train["rows"] if row["key"]["label"] == "resnet18-s1-gap")
    assert s1["values"] == [pytest.approx(1000.0), pytest.approx(3410.0)] and s1["ratios"] == [pytest.approx(3.41)]
    verdicts = {row["key"]["label"]: row for row in data["verdicts"]}
    assert verdicts["resnet18-q4-gap"]["recommended"] == "s3" and not verdicts["resnet18-q4-gap"]["same_winner"]
    assert [c["winner"] for c in verdicts["resnet18-q4-gap"]["cells"]] == ["s3", "s2"]
    biggest = data["accuracy_changes"][0]
    assert (biggest["key"]["label"], biggest["quantity"], biggest["column"]) == (
        "resnet18-s2-q4-gap",
        "test accuracy",
        "B",
    )
    assert biggest["change"] == pytest.approx(0.11) and biggest["before"] == pytest.approx(0.89)
    assert data["throughput_changes"][0]["quantity"] in ("train img/s", "infer img/s") and data["hardware"] == []
