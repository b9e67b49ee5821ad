"""The report: schema keys, transfer gains, the recommendation check, markdown, atomic writes, loading."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from cnnbench.engine.environment import collect_environment, fingerprint
from cnnbench.report.io import write_report
from cnnbench.report.run import render_markdown, terminal_summary
from cnnbench.results import recommend
from cnnbench.results.build import build_report
from cnnbench.results.records import ScenarioRecord
from cnnbench.results.schema import load_report

ARCHS = ("resnet18", "lenet5")
STRATEGIES = ("s1", "s2", "s3", "scratch")
QUADRANTS = ("q1", "q2", "q3", "q4")
HEADS = ("gap", "fc")
SEEDS = (1, 2)
SPREAD = 0.004  # seed 1 scores mean - SPREAD, seed 2 mean + SPREAD: sample std = SPREAD * sqrt(2) ≈ 0.6 points

# Mean accuracy per quadrant and strategy: the recommendation wins in q1 and q2, ties within the one-point floor
# in q3 (s1 beats s2 by 0.6) and loses in q4 (s2 beats s3 by 5 points).
MEANS = {
    "q1": {"s1": 0.90, "s2": 0.88, "s3": 0.70, "scratch": 0.85},
    "q2": {"s1": 0.95, "s2": 0.96, "s3": 0.93, "scratch": 0.90},
    "q3": {"s1": 0.80, "s2": 0.794, "s3": 0.70, "scratch": 0.75},
    "q4": {"s1": 0.90, "s2": 0.93, "s3": 0.88, "scratch": 0.70},
}
OFFSET = {("resnet18", "gap"): 0.0, ("resnet18", "fc"): -0.01, ("lenet5", "gap"): -0.02, ("lenet5", "fc"): -0.03}
# lenet5/fc/q4: s3's seeds spread wide (std 4.2 points), so s2's 2-point lead is a tie by the std, not the floor.
WIDE = {("lenet5", "s3", "q4", "fc"): (0.85, 0.91)}
DIVERGED = "resnet18-s1-q1-fc-seed2"
ERRORED = "lenet5-scratch-q2-gap-seed1"
REGRESSED = "resnet18-s3-q4-gap-seed1"

SPEC_KEYS = {  # SPEC §8, written out here so that the test does not trust the module's own list
    "report": {"schema", "run_id", "started", "finished", "environment", "targets", "scenarios", "recommendation"},
    "environment": {"cnnbench", "jax", "flax", "optax", "backend", "device_kind", "device_count", "cpu",
                    "git_commit", "suite_hash"},
    "target": {"name", "quadrant", "n_train", "n_test", "n_classes", "similarity"},
    "scenario": {"id", "arch", "strategy", "quadrant", "head", "seed", "status", "metrics"},
    "metrics": {"test_accuracy", "transfer_gain", "train_images_per_s", "infer_images_per_s", "compile_s",
                "train_s", "params_trainable", "params_total", "gflops"},
    "recommendation": {"arch", "quadrant", "head", "recommended", "winner", "recommended_won"},
}  # fmt: skip

ENVIRONMENT = {
    "cnnbench": "0.1.0", "jax": "0.10.2", "jaxlib": "0.10.2", "flax": "0.12.8", "optax": "0.2.8", "orbax": "0.12.8",
    "python": "3.11.7", "backend": "cpu", "device_kind": "cpu", "device_count": 1, "cpu": "AMD EPYC",
    "git_commit": "c5d3c9f114bb21e6654418c150c27252c902b028", "git_dirty": False, "suite_hash": "9f2c1a",
    "hostname": "vm",
}  # fmt: skip

TARGETS = [
    {"name": "glyph-digits-large", "quadrant": "q2", "n_train": 5000, "n_val": 500, "n_test": 1000, "n_classes": 10,
     "similarity": 0.412, "conversion": {"size": 32, "channels": 1, "range": "[0, 1]"}},
    {"name": "sklearn-digits-small", "quadrant": "q4", "n_train": 300, "n_val": 100, "n_test": 500, "n_classes": 10,
     "similarity": 0.388, "conversion": {"size": 32, "channels": 1, "from": "8x8"}},
    {"name": "textures-large", "quadrant": "q1", "n_train": 3000, "n_val": 300, "n_test": 600, "n_classes": 6,
     "similarity": 0.051, "conversion": {"size": 32, "channels": 1, "from": "rgb"}},
    {"name": "textures-small", "quadrant": "q3", "n_train": 120, "n_val": 60, "n_test": 600, "n_classes": 6,
     "similarity": 0.049, "conversion": {"size": 32, "channels": 1, "from": "rgb"}},
]  # fmt: skip

TRAIN_RATE = {"s1": 1000.0, "s2": 1800.0, "s3": 5000.0, "scratch": 1000.0}


def accuracy(arch: str, strategy: str, quadrant: str, head: str, seed: int) -> float:
    """The synthetic test accuracy of one seed (the truth the assertions are computed from)."""
    wide = WIDE.get((arch, strategy, quadrant, head))
    if wide:
        return wide[seed - 1]
    return MEANS[quadrant][strategy] + OFFSET[(arch, head)] + (SPREAD if seed == 2 else -SPREAD)


def record(arch: str, strategy: str, quadrant: str, head: str, seed: int) -> dict:
    """A scenario record as the runner hands it to the report."""
    sid = f"{arch}-{strategy}-{quadrant}-{head}-seed{seed}"
    acc = accuracy(arch, strategy, quadrant, head, seed)
    metrics = {
        "test_accuracy": acc, "val_accuracy": acc + 0.01, "transfer_gain": None,
        "train_images_per_s": TRAIN_RATE[strategy], "infer_images_per_s": 8000.0, "compile_s": 3.5, "train_s": 20.0,
        "time_to_final_s": 15.0, "params_trainable": 300_000 if strategy != "s3" else 2_570, "params_total": 314_000,
        "gflops": 0.0712, "peak_memory_bytes": None,
    }  # fmt: skip
    status, error, curve = "passed", None, [{"epoch": 0, "step": 10, "train_loss": 1.2, "val_accuracy": 0.5}]
    if sid == DIVERGED:
        status, error, metrics["test_accuracy"] = "diverged", "train loss became NaN at step 40", math.nan
        curve.append({"epoch": 1, "step": 40, "train_loss": math.nan, "val_accuracy": 0.1})
    elif sid == ERRORED:
        status, error, metrics, curve = "error", "RuntimeError: out of | memory\nwhile compiling", None, []
    elif sid == REGRESSED:
        status = "regressed"
    return {"id": sid, "arch": arch, "strategy": strategy, "quadrant": quadrant, "head": head, "seed": seed,
            "target": "t", "status": status, "error": error, "metrics": metrics, "curve": curve,
            "frozen_stages": ["stem", "layer1"] if strategy == "s2" else []}  # fmt: skip


def all_records() -> list[dict]:
    return [
        record(a, s, q, h, seed)
        for a in ARCHS for h in HEADS for q in QUADRANTS for s in STRATEGIES for seed in SEEDS
    ]  # fmt: skip


def make_report(records: list[dict] | None = None, run_id: str = "20250101-120000") -> dict:
    records = all_records() if records is None else records
    return build_report(run_id, "2025-01-01T12:00:00+00:00", "2025-01-01T12:08:00+00:00", ENVIRONMENT, TARGETS,
                        records, suite={"name": "smoke", "path": "suites/smoke.toml"}).to_json()  # fmt: skip


@pytest.fixture(scope="module")
def report() -> dict:
    return make_report()


def by_id(report: dict, sid: str) -> dict:
    return next(s for s in report["scenarios"] if s["id"] == sid)


def check_row(report: dict, arch: str, quadrant: str, head: str) -> dict:
    return next(r for r in report["recommendation"] if (r["arch"], r["quadrant"], r["head"]) == (arch, quadrant, head))


# ------------------------------------------------------------------------------------------------ schema


def test_spec_keys_present_at_every_level(report):
    assert report["schema"] == "cnnbench/1"
    assert SPEC_KEYS["report"] <= report.keys()
    assert SPEC_KEYS["environment"] <= report["environment"].keys()
    assert len(report["targets"]) == 4 and all(SPEC_KEYS["target"] <= t.keys() for t in report["targets"])
    assert len(report["scenarios"]) == 2 * 4 * 4 * 2 * 2
    for scenario in report["scenarios"]:
        assert SPEC_KEYS["scenario"] <= scenario.keys(), scenario["id"]
        assert SPEC_KEYS["metrics"] <= scenario["metrics"].keys(), scenario["id"]
    assert len(report["recommendation"]) == 2 * 4 * 2
    assert all(SPEC_KEYS["recommendation"] <= row.keys() for row in report["recommendation"])


def test_scenario_order_is_kept_and_inputs_are_not_mutated():
    records = all_records()
    built = make_report(records)
    assert [s["id"] for s in built["scenarios"]] == [r["id"] for r in records]
    assert all(r["metrics"] is None or r["metrics"]["transfer_gain"] is None for r in records)


def test_failed_records_keep_their_status_and_strict_json(report):
    diverged, errored = by_id(report, DIVERGED), by_id(report, ERRORED)
    assert diverged["status"] == "diverged" and diverged["metrics"]["test_accuracy"] is None  # NaN is not JSON
    assert diverged["curve"][1]["train_loss"] is None
    assert errored["status"] == "error" and errored["metrics"]["gflops"] is None
    assert report["summary"] == {"scenarios": 128, "by_status": {"passed": 125, "regressed": 1, "diverged": 1,
                                                                  "error": 1}}  # fmt: skip
    json.dumps(report, allow_nan=False)


def test_unknown_status_is_rejected_where_the_report_is_built():
    records = all_records()
    records[3]["status"] = "failed"
    with pytest.raises(ValueError, match=r"scenarios\[3\] .* status 'failed'; expected one of passed"):
        make_report(records)


def test_record_missing_a_coordinate_is_named():
    records = all_records()
    del records[5]["head"]
    with pytest.raises(ValueError, match=r"scenarios\[5\] \(resnet18-s3-q1-gap-seed2\) lacks 'head'"):
        make_report(records)


def test_all_passed_run_says_so():
    records = [r for r in all_records() if r["id"] not in (DIVERGED, ERRORED, REGRESSED)]
    assert "None: all 125 scenarios passed." in render_markdown(make_report(records))


# ----------------------------------------------------------------------------------------- transfer gain


@pytest.mark.parametrize(
    ("sid", "expected"),
    [
        ("resnet18-s3-q4-gap-seed2", (0.88 + SPREAD) - 0.70),
        ("resnet18-s1-q1-fc-seed1", (0.90 - 0.01 - SPREAD) - (0.85 - 0.01)),
        # the scratch baseline of lenet5/q2/gap has only seed 2 (seed 1 errored)
        ("lenet5-s2-q2-gap-seed1", (0.96 - 0.02 - SPREAD) - (0.90 - 0.02 + SPREAD)),
        ("lenet5-scratch-q2-gap-seed2", 0.0),
        ("resnet18-scratch-q3-gap-seed1", -SPREAD),
    ],
)
def test_transfer_gain(report, sid, expected):
    assert by_id(report, sid)["metrics"]["transfer_gain"] == pytest.approx(expected, abs=1e-12)


def test_transfer_gain_is_none_without_accuracy_or_scratch(report):
    assert by_id(report, DIVERGED)["metrics"]["transfer_gain"] is None
    no_scratch = make_report([r for r in all_records() if r["strategy"] != "scratch"])
    assert all(s["metrics"]["transfer_gain"] is None for s in no_scratch["scenarios"])


def test_aggregates_over_seeds(report):
    rows = {(a["arch"], a["strategy"], a["quadrant"], a["head"]): a for a in report["aggregates"]}
    s2 = rows[("resnet18", "s2", "q4", "gap")]
    assert s2["mean"] == pytest.approx(0.93) and s2["std"] == pytest.approx(SPREAD * math.sqrt(2))
    assert (s2["n_seeds"], s2["seeds"]) == (2, [1, 2])
    assert s2["transfer_gain"] == pytest.approx(0.23)
    one_seed = rows[("resnet18", "s1", "q1", "fc")]  # seed 2 diverged
    assert (one_seed["n_seeds"], one_seed["std"]) == (1, 0.0)
    assert one_seed["values"] == [pytest.approx(0.90 - 0.01 - SPREAD)]


def test_a_scratch_at_chance_is_flagged_and_its_gains_marked():
    # q4 targets 10 classes and 500 test images: chance 10%, and guessing stays below 10 + 2 x 1.34 = 12.7%.
    records = [r for r in all_records() if (r["arch"], r["head"], r["quadrant"]) == ("lenet5", "gap", "q4")]
    for r in records:
        if r["strategy"] == "scratch":
            r["metrics"]["test_accuracy"] = 0.11 + (0.01 if r["seed"] == 2 else 0.0)  # mean 11.5%
    report = make_report(records)
    flags = {a["strategy"]: (a["chance"], a["at_chance"]) for a in report["aggregates"]}
    assert flags == {"s1": (0.1, False), "s2": (0.1, False), "s3": (0.1, False), "scratch": (0.1, True)}
    s3_gain = 100 * (MEANS["q4"]["s3"] - 0.02 - 0.115)
    assert f"| s3       | {s3_gain:+.1f}† |" in render_markdown(report)
    note = (
        "At chance (1 of 4 cells, mean accuracy within 2 standard errors of 1/classes): lenet5 scratch q4 gap. A "
        "gain over a scratch at chance (†) measures a baseline that did not learn, not transfer."
    )
    assert note in render_markdown(report) and note.split(":")[0] in " ".join(terminal_summary(report))

    learned = make_report([r | {"metrics": r["metrics"] | {"test_accuracy": 0.13}} if r["strategy"] == "scratch"
                           else r for r in records])  # 13% is above 12.7%: it learned a little  # fmt: skip
    assert not any(a["at_chance"] for a in learned["aggregates"]) and "At chance" not in render_markdown(learned)
    unknown = build_report("r", "t0", "t1", ENVIRONMENT, [], records)  # no target: no chance level
    assert {(a.chance, a.at_chance) for a in unknown.aggregates} == {(None, None)}


# ------------------------------------------------------------------------------------------ recommendation


@pytest.mark.parametrize(("arch", "head"), [("resnet18", "gap"), ("resnet18", "fc"), ("lenet5", "gap")])
def test_recommendation_won_tied_lost(report, arch, head):
    q1, q2, q3, q4 = (check_row(report, arch, q, head) for q in QUADRANTS)
    assert (q1["winner"], q1["verdict"], q1["recommended_won"]) == ("s1", "won", True)
    assert (q2["winner"], q2["verdict"], q2["recommended_won"]) == ("s2", "won", True)
    assert (q3["recommended"], q3["winner"], q3["verdict"], q3["recommended_won"]) == (
        "s2", "s1", "tied within noise", True)  # fmt: skip
    assert q3["margin"] == pytest.approx(0.006)
    assert (q4["recommended"], q4["winner"], q4["verdict"], q4["recommended_won"]) == ("s3", "s2", "lost", False)
    assert q4["margin"] == pytest.approx(0.05) and q4["winner_mean"] == pytest.approx(0.93 + OFFSET[(arch, head)])
    assert q4["sentence"] == ("q4 (small, similar): s3 recommended; s2 won by 5.0 pts (noise ±1.0) — "
                              "the seed notes' advice loses here.")  # fmt: skip


def test_tie_by_spread_of_seeds(report):
    row = check_row(report, "lenet5", "q4", "fc")
    assert (row["winner"], row["verdict"]) == ("s2", "tied within noise")
    assert row["recommended_std"] == pytest.approx(0.06 / math.sqrt(2))
    assert row["margin"] == pytest.approx(0.02) and row["noise"] == pytest.approx(row["recommended_std"])


@pytest.mark.parametrize(("lead", "verdict"), [(0.009, "tied within noise"), (0.011, "lost"), (-0.002, "won")])
def test_one_point_floor_with_single_seeds(lead, verdict):
    records = [record("resnet18", "s3", "q4", "gap", 1), record("resnet18", "s2", "q4", "gap", 1)]
    records[1]["metrics"]["test_accuracy"] = records[0]["metrics"]["test_accuracy"] + lead
    [row] = recommend.check([ScenarioRecord.from_json(r) for r in records])
    assert row.verdict == verdict
    assert row.recommended_won is (verdict != "lost")


def test_exact_tie_goes_to_the_recommended_strategy():
    records = [record("resnet18", "s1", "q4", "gap", 1), record("resnet18", "s3", "q4", "gap", 1)]
    records[0]["metrics"]["test_accuracy"] = records[1]["metrics"]["test_accuracy"]
    assert recommend.check([ScenarioRecord.from_json(r) for r in records])[0].verdict == "won"


def test_recommended_strategy_not_run():
    records = [r for r in all_records() if not (r["strategy"] == "s3" and r["quadrant"] == "q4")]
    row = check_row(make_report(records), "resnet18", "q4", "gap")
    assert (row["winner"], row["verdict"], row["recommended_won"], row["margin"]) == ("s2", "not run", False, None)
    assert "s3 recommended but has no result; s2 won at 93.0% (±0.6)" in row["sentence"]


# ------------------------------------------------------------------------------------------------ markdown


def table_line(markdown: str, heading: str, first_cell: str) -> list[str]:
    """The cells of the row starting with ``first_cell`` in the first table after ``heading``."""
    section = markdown.split(heading, 1)[1]
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] == first_cell:
            return cells
    raise AssertionError(f"no row {first_cell!r} after {heading!r}")


def test_markdown_accuracy_tables_mark_winners(report):
    md = render_markdown(report)
    assert md.startswith("# cnnbench report `20250101-120000`")
    header = table_line(md, "### `resnet18` · `gap` head", "strategy")
    assert header == ["strategy", "q1 (rec. s1)", "q2 (rec. s2)", "q3 (rec. s2)", "q4 (rec. s3)"]
    assert table_line(md, "### `resnet18` · `gap` head", "s2") == [
        "s2", "88.0 ± 0.6", "**96.0 ± 0.6**", "79.4 ± 0.6", "**93.0 ± 0.6**"]  # fmt: skip
    assert table_line(md, "### `resnet18` · `fc` head", "s1")[1] == "**88.6 (1/2)**"  # seed 2 diverged
    assert table_line(md, "### `lenet5` · `gap` head", "scratch")[2] == "88.4 (1/2)"  # seed 1 errored
    assert table_line(md, "### `lenet5` · `fc` head", "s3")[4] == "88.0 ± 4.2"


def test_markdown_gain_recommendation_throughput_and_failures(report):
    md = render_markdown(report)
    gains = "## Transfer gain over scratch"
    assert table_line(md, gains, "s3")[1:] == ["-15.0", "+3.0", "-5.0", "+18.0"]
    assert table_line(md.split(gains)[1], "### `lenet5` · `gap` head", "s2")[2] == "+5.6"  # scratch: seed 2 only
    assert "- `resnet18` · `gap` · q4 (small, similar): s3 recommended; s2 won by 5.0 pts" in md
    check = table_line(md, "## Recommendation check", "lenet5")
    assert check[:3] == ["lenet5", "gap", "q1"] and check[-1] == "won"
    lost = [line for line in md.splitlines() if line.startswith("| resnet18 | fc   | q4")]
    assert [c.strip() for c in lost[0].strip("|").split("|")][4:] == [
        "s2", "92.0 ± 0.6", "87.0 ± 0.6", "5.0", "lost"]  # fmt: skip
    assert table_line(md, "## Throughput", "resnet18")[2:5] == ["s1", "1,000", "8,000"]
    s3 = [c.strip() for c in next(line for line in md.splitlines() if "| resnet18 | gap  | s3 " in line).split("|")]
    assert s3[4:13] == ["5,000", "8,000", "3.50", "20.0", "15.0", "2,570", "314,000", "0.0712", "-"]
    assert table_line(md, "## Targets", "`sklearn-digits-small`")[1:9] == [
        "q4 (small, similar)", "300", "100", "500", "10", "+0.39", "—", "size=32, channels=1, from=8x8"]  # fmt: skip
    failed = "## Scenarios that did not pass"
    assert table_line(md, failed, f"`{DIVERGED}`")[1:] == ["diverged", "train loss became NaN at step 40"]
    assert table_line(md, failed, f"`{REGRESSED}`")[1:] == ["regressed", "-"]
    assert "RuntimeError: out of \\| memory while compiling |" in md.split(failed)[1]  # one line, pipe escaped


def test_terminal_summary_fits_and_reports_verdicts(report):
    lines = terminal_summary(report)
    assert all(len(line) <= 100 for line in lines), max(lines, key=len)
    text = "\n".join(lines)
    assert "128 scenarios — 125 passed, 1 regressed, 1 diverged, 1 error" in lines[0]
    assert "check: q1 s1 won · q2 s2 won · q3 s2 tied (s1 +0.6) · q4 s3 LOST (s2 +5.0)" in text
    assert "recommendation held in 13 of 16 checks: 8 won, 5 tied within noise, 3 lost, 0 not run" in text
    assert any(line.split() == ["s2", "88.0±0.6", "96.0±0.6*", "79.4±0.6", "93.0±0.6*"] for line in lines)
    assert f"diverged: {DIVERGED}: train loss became NaN at step 40" in text
    assert all(len(line) <= 60 for line in terminal_summary(report, width=60))


# -------------------------------------------------------------------------------------------- write, load


def test_write_report_is_atomic_repeatable_and_refreshes_latest(tmp_path):
    records = all_records()
    for n in (1, 40, len(records)):  # as after each scenario; the finished run's write adds the HTML page
        built = make_report(records[:n])
        run_dir = write_report(built, tmp_path, plots=n == len(records))
        assert run_dir == tmp_path / "20250101-120000"
        assert json.loads((run_dir / "report.json").read_text()) == built
        for name in ("report.json", "report.md", "results.csv"):
            assert (tmp_path / "latest" / name).read_bytes() == (run_dir / name).read_bytes()
        if n == 1:
            assert sorted(p.name for p in run_dir.iterdir()) == ["report.json", "report.md", "results.csv"]
        rows = list(csv.DictReader(io.StringIO((run_dir / "results.csv").read_text())))
        assert [r["id"] for r in rows] == [s["id"] for s in built["scenarios"]]  # one flat row per scenario
        last = built["scenarios"][-1]["metrics"]["test_accuracy"]
        assert rows[-1]["test_accuracy"] == ("" if last is None else repr(last))
        assert {r["run_id"] for r in rows} == {built["run_id"]} and {r["precision"] for r in rows} == {"fp32"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["20250101-120000", "latest"]
    for directory in (run_dir, tmp_path / "latest"):
        assert sorted(p.name for p in directory.iterdir()) == ["report.html", "report.json", "report.md", "results.csv"]
        assert (directory / "report.json").stat().st_mode & 0o444 == 0o444
    assert "<html" in (run_dir / "report.html").read_text()
    second = write_report(make_report(records[:2], run_id="second"), tmp_path)
    assert load_report(tmp_path / "latest" / "report.json")["run_id"] == "second"
    assert load_report(second / "report.json")["scenarios"] == make_report(records[:2])["scenarios"]
    assert len(load_report(run_dir / "report.json")["scenarios"]) == len(records)


def test_latest_is_a_relative_link_or_where_links_fail_a_complete_copy(tmp_path, monkeypatch):
    (tmp_path / "latest").mkdir()  # as cnnbench 0.1 left it: a folder of files
    (tmp_path / "latest" / "report.html").write_text("an earlier run's page")
    first = write_report(make_report(all_records()[:3], run_id="first"), tmp_path)
    assert os.readlink(tmp_path / "latest") == "first"
    assert (tmp_path / "latest" / "report.html").read_text() == (first / "report.html").read_text()

    def no_links(*args, **kwargs):
        raise OSError("symbolic links are not allowed here")

    monkeypatch.setattr(os, "symlink", no_links)
    second = write_report(make_report(all_records()[:2], run_id="second"), tmp_path, plots=False)
    second = write_report(make_report(all_records()[:4], run_id="second"), tmp_path)  # the run's last write
    latest = tmp_path / "latest"
    assert not latest.is_symlink() and sorted(p.name for p in latest.iterdir()) == sorted(
        p.name for p in second.iterdir()
    )
    for name in ("report.json", "report.html"):
        assert (latest / name).read_bytes() == (second / name).read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["first", "latest", "second"]  # nothing left aside
    assert load_report(first / "report.json")["run_id"] == "first"


def test_interrupted_write_keeps_the_previous_report(tmp_path, monkeypatch):
    run_dir = write_report(make_report(all_records()[:3]), tmp_path, plots=False)
    before = (run_dir / "report.json").read_bytes()

    def crash(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        write_report(make_report(), tmp_path, plots=False)
    assert (run_dir / "report.json").read_bytes() == before
    assert sorted(p.name for p in run_dir.iterdir()) == ["report.json", "report.md", "results.csv"]


@pytest.mark.parametrize("run_id", ["", "latest", "..", "a/b"])
def test_run_id_must_name_a_directory(tmp_path, run_id):
    built = make_report(all_records()[:1])
    built["run_id"] = run_id
    with pytest.raises(ValueError, match="cannot name a report directory"):
        write_report(built, tmp_path)


def test_load_report_rejects_wrong_schema_and_bad_json(tmp_path):
    good = make_report(all_records()[:4])
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps(good | {"schema": "cnnbench/0"}))
    with pytest.raises(ValueError, match=r"wrong\.json is not a cnnbench/1 report: schema is 'cnnbench/0'"):
        load_report(wrong)
    broken = tmp_path / "broken.json"
    broken.write_text('{"schema": "cnnbench/1",\n "run_id": ')
    with pytest.raises(ValueError, match=r"broken\.json is not valid JSON \(line 2, column 12"):
        load_report(broken)
    with pytest.raises(ValueError, match=r"cannot read report .*missing\.json"):
        load_report(tmp_path / "missing.json")


def test_load_report_names_missing_keys(tmp_path):
    bad = make_report(all_records()[:4])
    del bad["scenarios"][2]["metrics"]["gflops"]
    del bad["environment"]["cpu"]
    path = tmp_path / "report.json"
    path.write_text(json.dumps(bad))
    with pytest.raises(ValueError) as info:
        load_report(path)
    message = str(info.value)
    assert str(path) in message and "environment lacks 'cpu'" in message
    assert "scenarios[2] (resnet18-s2-q1-gap-seed1).metrics lacks 'gflops'" in message


# -------------------------------------------------------------------------------------------- environment


def test_collect_environment_outside_a_repo(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    env = collect_environment("abc123")
    assert SPEC_KEYS["environment"] | {"orbax", "python", "hostname"} <= env.keys()
    assert env["git_commit"] is None and env["suite_hash"] == "abc123"
    assert env["device_count"] >= 1 and env["backend"] in ("cpu", "gpu", "tpu", "cuda", "rocm")
    assert env["fingerprint"] == fingerprint(env)


def test_fingerprint_tracks_hardware_and_software_only():
    assert fingerprint(ENVIRONMENT) == fingerprint(ENVIRONMENT | {"hostname": "other", "git_commit": "abc"})
    assert fingerprint(ENVIRONMENT) != fingerprint(ENVIRONMENT | {"device_kind": "NVIDIA H100"})
    assert fingerprint(ENVIRONMENT) != fingerprint(ENVIRONMENT | {"jax": "0.11.0"})


def test_report_modules_do_not_import_jax():
    modules = "cnnbench.report.run, cnnbench.results.recommend, cnnbench.engine.environment"
    code = f"import sys, {modules}; print('jax' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


# ---------------------------------------------------------------------------------------- layer transfer

CURVE = [0.90, 0.93, 0.95, 0.91, 0.70, 0.60]  # resnet18 has 5 stages: 0 … 5 frozen


def _point(frozen: int, seed: int) -> dict:
    r = record("resnet18", "s2", "q4", "gap", seed)
    stages = ("stem", "layer1", "layer2", "layer3", "layer4")[:frozen]
    r.update(id=f"resnet18-s2-q4-gap-freeze{frozen}-seed{seed}", layer_transfer=frozen, frozen_stages=list(stages))
    r["metrics"] = dict(r["metrics"], test_accuracy=CURVE[frozen] + (0.01 if seed == 2 else -0.01))
    return r


@pytest.fixture(scope="module")
def lt_report() -> dict:
    return make_report(all_records() + [_point(k, seed) for k in range(6) for seed in (1, 2)])


def test_points_are_aggregated_over_seeds_with_the_scratch_reference(lt_report: dict) -> None:
    rows = lt_report["layer_transfer"]
    assert [r["frozen"] for r in rows] == list(range(6)) and rows[0]["last_frozen"] is None
    assert rows[3]["last_frozen"] == "layer2" and rows[3]["n_seeds"] == 2
    assert [round(r["mean"], 6) for r in rows] == CURVE and rows[1]["std"] == pytest.approx(0.01 * 2**0.5)
    scratch = next(a for a in lt_report["aggregates"] if (a["arch"], a["strategy"], a["quadrant"], a["head"])
                   == ("resnet18", "scratch", "q4", "gap"))  # fmt: skip
    assert rows[0]["scratch"] == pytest.approx(scratch["mean"])


def test_points_stay_out_of_the_strategy_tables(lt_report: dict) -> None:
    plain = make_report(all_records())
    assert lt_report["aggregates"] == plain["aggregates"] and lt_report["recommendation"] == plain["recommendation"]
    assert lt_report["summary"]["scenarios"] == plain["summary"]["scenarios"] + 12


def test_report_has_the_table_the_terminal_line_and_the_plot(lt_report: dict, tmp_path: Path) -> None:
    run_dir = write_report(lt_report, tmp_path)
    md = (run_dir / "report.md").read_text()
    assert "## Layer transfer" in md and "| 3 | layer2 | 91.0 ± 1.4 |" in md
    assert "![layer transfer](layer_transfer.png)" in md
    assert (run_dir / "layer_transfer.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "latest" / "layer_transfer.png").exists()
    lines = terminal_summary(lt_report)
    start = next(i for i, x in enumerate(lines) if x.startswith("layer transfer"))
    text = " ".join(x.strip() for x in lines[start : start + 2])
    assert text.startswith("layer transfer resnet18 q4 gap, % by frozen stages: 0:90.0 1:93.0 2:95.0 3:91.0")
    assert text.endswith("5:60.0 | scratch 70.0") and all(len(x) <= 100 for x in lines)
    assert not (write_report(make_report(all_records()), tmp_path / "plain") / "layer_transfer.png").exists()
    write_report(make_report(all_records(), run_id="without-curve"), tmp_path)  # a later run without a curve
    assert not (tmp_path / "latest" / "layer_transfer.png").exists() and (run_dir / "layer_transfer.png").exists()


def test_best_strategy_and_head_per_quadrant_with_spread_and_margin(report):
    row = next(r for r in report["best"] if (r["arch"], r["quadrant"]) == ("resnet18", "q2"))
    assert (row["strategy"], row["head"], row["n_seeds"]) == ("s2", "gap", 2)
    assert row["mean"] == pytest.approx(0.96) and row["std"] == pytest.approx(SPREAD * 2**0.5)
    assert row["margin"] == pytest.approx(0.01) and row["runner_up"] in ("s1 × gap", "s2 × fc")
    assert len(report["best"]) == len(ARCHS) * len(QUADRANTS)
    line = next(x for x in terminal_summary(report) if x.startswith("best on q2") and "resnet18" in x)
    assert line.endswith(f"with resnet18: s2 × gap 96.0% ±0.6 (2 seeds), +1.0 pts over {row['runner_up']}")
    assert f"- {line}" in render_markdown(report)


def test_the_schema_document_and_the_validator_require_the_same_keys():
    """docs/report-schema.md's tables mark keys required; ``validate`` must require exactly those, so the document
    users read and the check every written report goes through cannot drift apart."""
    from cnnbench.results.schema import REQUIRED_KEYS

    sections = {"Top level": "report", "`environment`": "environment", "`targets`": "target",
                "`scenarios`": "scenario", "`metrics`": "metrics", "`recommendation`": "recommendation"}  # fmt: skip
    documented: dict[str, set[str]] = {}
    kind = None
    for line in (Path(__file__).parents[1] / "docs" / "report-schema.md").read_text().splitlines():
        if line.startswith("#"):
            kind = sections.get(line.lstrip("#").strip())
        elif kind and line.startswith("| `") and line.split("|")[2].strip() == "yes":
            documented.setdefault(kind, set()).update(re.findall(r"`(\w+)`", line.split("|")[1]))
    assert documented == {kind: set(REQUIRED_KEYS[kind]) for kind in sections.values()}
    assert documented == SPEC_KEYS  # and both are SPEC §8's


def test_pareto_front_keeps_the_archs_no_other_beats_on_both_cost_and_accuracy():
    from cnnbench.report.views import pareto
    from cnnbench.results.records import Report

    # (arch, GFLOPs, accuracy): big is dominated by mid (dearer and no better); tiny and mid and huge trade off
    archs = {"tiny": (0.01, 0.80), "mid": (0.5, 0.90), "big": (2.0, 0.88), "huge": (9.0, 0.95)}
    records = []
    for arch, (gflops, acc) in archs.items():
        for strategy in ("s1", "scratch"):
            r = record("lenet5", strategy, "q2", "gap", 0)
            worse = 0.1 if strategy == "scratch" else 0.0
            r.update(id=f"{arch}-{strategy}-q2-gap", arch=arch, seed=0, status="passed")
            r["metrics"].update(gflops=gflops, test_accuracy=acc - worse)
            records.append(r)
    front = pareto(Report.from_json(make_report(records)))
    assert [(p.arch, p.label, p.gflops, p.accuracy, p.front) for p in front] == [
        ("tiny", "s1 × gap", 0.01, 0.80, True), ("mid", "s1 × gap", 0.5, 0.90, True),
        ("big", "s1 × gap", 2.0, 0.88, False), ("huge", "s1 × gap", 9.0, 0.95, True),
    ]  # fmt: skip
