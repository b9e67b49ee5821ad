"""The quality gate (SPEC §9) on synthetic reports: the accuracy rule over seeds, throughput per program over
quadrants and seeds and only on matching fingerprints, new / missing / not-run groups, bad baseline files, and the
session judging a group when its last seed has run and a program when its last scenario has."""

from __future__ import annotations

import json
import math
import re
from dataclasses import replace
from pathlib import Path

import pytest

from cnnbench.config.gate import Tolerances
from cnnbench.config.scenario import group_id, program_id
from cnnbench.config.suite import load_suite
from cnnbench.engine.catalog import registry_catalog
from cnnbench.engine.measurement import Measurement, Metrics, Outcome, TargetRecord, Timing
from cnnbench.report.run import render_markdown, terminal_summary
from cnnbench.report.run_text import gate_lines
from cnnbench.results import gate
from cnnbench.results.build import build_report
from cnnbench.results.gate import BaselineError, judge, judge_throughput, load_baseline
from cnnbench.results.records import ScenarioRecord

ENV = {"cnnbench": "0.1.0", "jax": "0.10.2", "flax": "0.12.8", "optax": "0.2.8", "backend": "cpu",
       "device_kind": "cpu", "device_count": 1, "cpu": "AMD EPYC", "git_commit": None, "suite_hash": "abc",
       "fingerprint": "f00"}  # fmt: skip
TOL = Tolerances(accuracy_drop=0.02, noise_sigmas=2.0, throughput_drop=0.3)


def rec(group: str, seed: int, acc: float | None, train: float = 1000.0, infer: float = 5000.0) -> ScenarioRecord:
    """A scenario record of ``group`` (``arch-strategy-quadrant-head``) for one seed."""
    arch, strategy, quadrant, head = group.split("-")
    metrics = {"test_accuracy": acc, "train_images_per_s": train, "infer_images_per_s": infer}
    return ScenarioRecord.from_json({
        "id": f"{group}-seed{seed}", "arch": arch, "strategy": strategy, "quadrant": quadrant, "head": head,
        "seed": seed, "status": "passed" if acc is not None else "error", "metrics": metrics})  # fmt: skip


def seeds(group: str, values: list[float], **rates: float) -> list[ScenarioRecord]:
    return [rec(group, i, v, **rates) for i, v in enumerate(values)]


def baseline_file(tmp_path: Path, records: list[dict], env: dict = ENV) -> Path:
    report = build_report("base-run", "2026-01-01T00:00:00+00:00", "2026-01-01T00:10:00+00:00", env, [], records)
    path = tmp_path / "baseline.json"
    path.write_text(json.dumps(report.to_json()))
    return path


# ------------------------------------------------------------------------------------------ accuracy rule


def test_unchanged_results_pass():
    values = [0.91, 0.93, 0.92]
    row = judge("a-s1-q1-gap", seeds("a-s1-q1-gap", values), seeds("a-s1-q1-gap", values), TOL)
    assert row.verdict == "passed" and row.accuracy.drop == 0.0
    speed = judge_throughput("a-s1-gap", seeds("a-s1-q1-gap", values), seeds("a-s1-q1-gap", values), TOL)
    assert speed.verdict == "passed" and speed.train_ratio == speed.infer_ratio == 1.0


def test_a_drop_beyond_tolerance_and_noise_regresses_with_both_values_in_the_message():
    base, new = [0.90, 0.91, 0.92], [0.85, 0.86, 0.87]  # each std 0.01: noise = 0.01 * sqrt(2/3) = 0.0082
    row = judge("a-s1-q1-gap", seeds("a-s1-q1-gap", base), seeds("a-s1-q1-gap", new), TOL)
    acc = row.accuracy
    assert acc.drop == pytest.approx(0.05) and acc.noise == pytest.approx(0.01 * math.sqrt(2 / 3))
    assert acc.allowed == pytest.approx(0.02)  # 2 × noise = 1.6 pts is below the 2-point tolerance
    assert row.verdict == "regressed"
    assert row.message == (
        "a-s1-q1-gap regressed against the baseline: test accuracy 91.0% ± 1.0 (3 seeds) in the baseline -> "
        "86.0% ± 1.0 (3 seeds) now: dropped 5.0 pts, tolerance 2.0 pts (accuracy_drop 2.0 pts, 2 x noise 0.8 pts)"
    )


def test_one_noisy_seed_does_not_fail_when_the_seeds_scatter():
    # Same 5-point drop of the mean, but the seeds spread ±6 points: 2 × noise = 2 × 0.06·sqrt(2/3) ≈ 9.8 pts.
    base, new = [0.85, 0.91, 0.97], [0.74, 0.88, 0.96]
    row = judge("a-s1-q1-gap", seeds("a-s1-q1-gap", base), seeds("a-s1-q1-gap", new), TOL)
    assert row.accuracy.drop == pytest.approx(0.05)
    assert row.accuracy.allowed > 0.05 and row.verdict == "passed"


def test_a_single_new_seed_borrows_the_baselines_spread():
    base, new = [0.88, 0.90, 0.92], [0.87]  # s = 0.02 (baseline only), noise = 0.02 * sqrt(1/3 + 1) = 0.0231
    row = judge("a-s1-q1-gap", seeds("a-s1-q1-gap", base), seeds("a-s1-q1-gap", new), TOL)
    assert row.accuracy.noise == pytest.approx(0.02 * math.sqrt(4 / 3))
    assert row.accuracy.allowed == pytest.approx(2 * 0.02 * math.sqrt(4 / 3))
    assert row.verdict == "passed"  # a 3-point drop is inside 4.6 points of noise
    assert judge("a-s1-q1-gap", seeds("a-s1-q1-gap", base), seeds("a-s1-q1-gap", [0.84]), TOL).verdict == ("regressed")


def test_single_seeds_on_both_sides_are_judged_by_the_tolerance_alone():
    row = judge("a-s1-q1-gap", [rec("a-s1-q1-gap", 0, 0.90)], [rec("a-s1-q1-gap", 0, 0.885)], TOL)
    assert row.accuracy.noise == 0.0 and row.verdict == "passed"
    row = judge("a-s1-q1-gap", [rec("a-s1-q1-gap", 0, 0.90)], [rec("a-s1-q1-gap", 0, 0.875)], TOL)
    assert row.verdict == "regressed"


def test_a_drop_of_exactly_the_tolerance_passes():
    """0.457 - 0.407 is 0.05000000000000004 in floats: 100 of 2,000 test images, exactly a 5-point tolerance."""
    tolerance = Tolerances(accuracy_drop=0.05, noise_sigmas=2.0, throughput_drop=0.3)
    row = judge("a-s1-q1-fc", [rec("a-s1-q1-fc", 0, 0.457)], [rec("a-s1-q1-fc", 0, 0.407)], tolerance)
    assert row.accuracy.drop > 0.05 and row.verdict == "passed"
    row = judge("a-s1-q1-fc", [rec("a-s1-q1-fc", 0, 0.457)], [rec("a-s1-q1-fc", 0, 0.4065)], tolerance)
    assert row.verdict == "regressed"


def test_an_improvement_never_fails():
    row = judge("a-s1-q1-gap", seeds("a-s1-q1-gap", [0.5, 0.5]), seeds("a-s1-q1-gap", [0.9, 0.9]), TOL)
    assert row.accuracy.drop == pytest.approx(-0.4) and row.verdict == "passed"


# -------------------------------------------------------------------------------------------- throughput


def program(quadrant_rates: dict[str, list[float]], infer: float = 5000.0) -> list[ScenarioRecord]:
    """Records of program ``a-s1-gap``: per quadrant, one seed per train rate given."""
    return [rec(f"a-s1-{q}-gap", i, 0.9, train=t, infer=infer) for q, rates in quadrant_rates.items()
            for i, t in enumerate(rates)]  # fmt: skip


def test_throughput_is_judged_per_program_on_the_median_over_quadrants_and_seeds():
    base = program({"q1": [1000.0, 1000.0], "q2": [1000.0, 1000.0]})
    one_slow = program({"q1": [1000.0, 950.0], "q2": [300.0, 980.0]})  # one scenario hit by the scheduler
    row = judge_throughput("a-s1-gap", base, one_slow, TOL)
    assert row.verdict == "passed" and row.n_baseline == row.n_new == 4
    assert row.train_ratio == pytest.approx(0.965) and row.infer_ratio == 1.0

    slow = program({"q1": [600.0, 610.0], "q2": [590.0, 620.0]}, infer=4900.0)  # train at 0.6: below 0.7
    row = judge_throughput("a-s1-gap", base, slow, TOL)
    assert row.verdict == "regressed" and row.train_ratio == pytest.approx(0.605)
    assert row.message == ("a-s1-gap throughput regressed against the baseline (median over 4 -> 4 scenarios): "
                              "train throughput 1,000 -> 605 images/s (x0.60; tolerance: at least x0.70)")  # fmt: skip
    assert judge_throughput("a-s1-gap", None, slow, TOL).verdict == "new"
    nothing = [replace(r, metrics=Metrics(test_accuracy=0.9)) for r in slow]
    assert judge_throughput("a-s1-gap", base, nothing, TOL).verdict == "no result"


def test_throughput_is_gated_only_on_the_same_fingerprint(tmp_path: Path):
    baseline = load_baseline(baseline_file(tmp_path, program({"q1": [1000.0], "q2": [1000.0]})))
    slow = program({"q1": [100.0], "q2": [100.0]})
    groups = ["a-s1-q1-gap", "a-s1-q2-gap"]
    gated = gate.summarize(baseline, slow, ENV, TOL, groups, groups)
    assert gated.throughput_regressed == ("a-s1-gap",) and gated.regressed == ()
    assert [r.program for r in gated.throughput] == ["a-s1-gap"] and gated.counts["passed"] == 2
    elsewhere = gate.summarize(baseline, slow, {**ENV, "fingerprint": "bee"}, TOL, groups, groups)
    assert elsewhere.throughput == () and elsewhere.throughput_regressed == ()
    assert not elsewhere.throughput_comparable


def test_fingerprints_decide_comparability(tmp_path: Path):
    baseline = load_baseline(baseline_file(tmp_path, seeds("a-s1-q1-gap", [0.9])))
    assert gate.comparable(baseline, ENV)[0]
    same, note = gate.comparable(baseline, {**ENV, "fingerprint": "bee"})
    assert not same and note.startswith("throughput not comparable") and "f00" in note and "bee" in note


# ------------------------------------------------------------------------------ new, missing, no result


def test_summary_sorts_groups_into_new_missing_not_run_and_not_selected(tmp_path: Path):
    stored = [
        *seeds("a-s1-q1-gap", [0.9, 0.9]),
        *seeds("a-s2-q1-gap", [0.9, 0.9]),
        *seeds("a-s3-q1-gap", [0.9, 0.9]),
        *seeds("a-old-q1-gap", [0.9]),
        *seeds("a-s1-q2-gap", [0.8]),
    ]
    baseline = load_baseline(baseline_file(tmp_path, stored))
    records = [*seeds("a-s1-q1-gap", [0.9, 0.9]), *seeds("a-s2-q1-gap", [0.5, 0.5]), *seeds("a-new-q1-gap", [0.7]),
               rec("a-s3-q1-gap", 0, None)]  # fmt: skip
    summary = gate.summarize(
        baseline, records, ENV, TOL,
        suite_groups=["a-s1-q1-gap", "a-s2-q1-gap", "a-s3-q1-gap", "a-new-q1-gap", "a-s1-q2-gap"],
        selected_groups=["a-s1-q1-gap", "a-s2-q1-gap", "a-s3-q1-gap", "a-new-q1-gap"],
    )  # fmt: skip
    verdicts = {r.group: r.verdict for r in summary.groups}
    assert verdicts == {"a-s1-q1-gap": "passed", "a-s2-q1-gap": "regressed", "a-new-q1-gap": "new",
                        "a-s3-q1-gap": "no result"}  # fmt: skip
    assert summary.counts == {"passed": 1, "regressed": 1, "new": 1, "no result": 1}
    assert summary.regressed == ("a-s2-q1-gap",) and summary.new == ("a-new-q1-gap",)
    assert summary.missing == ("a-old-q1-gap",)  # in the baseline, no longer in the suite
    assert summary.not_selected == 1 and summary.not_run == ()  # a-s1-q2-gap: filtered out
    assert summary.throughput_comparable and summary.same_suite

    report = build_report("r", "t0", "t1", ENV, [], records, gate=summary)
    lines = gate_lines(report.gate)
    assert lines[:2] == [
        "gate vs baseline run base-run: 4 groups — 1 passed, 1 regressed, 1 new, 1 no result",
        f"  ({baseline.path})",
    ]
    assert "regressed (1):" in lines and "new, not gated (1):" in lines
    assert "  a-old-q1-gap" in lines and "1 baseline groups were not selected by this run's filters" in lines
    markdown = render_markdown(report)
    assert "## Quality gate" in markdown
    assert re.search(
        r"\| `a-s2-q1-gap` +\| 90.0 ± 0.0 \| 50.0 ± 0.0 \| +\+40.0 \| +2.0 \| \*\*regressed\*\* +\|", markdown
    )
    row = r"\| `a-s2-gap` +\| +2 → 2 \| +1,000 \| +1,000 \| +1.00 \| +5,000 \| +5,000 \| +1.00 \| passed +\|"
    assert re.search(row, markdown)
    assert all(len(line) <= 100 for line in terminal_summary(report, width=100))


def test_a_report_without_a_baseline_has_no_gate_section():
    report = build_report("r", "t0", "t1", ENV, [], seeds("a-s1-q1-gap", [0.9]))
    assert report.gate is None and "Quality gate" not in render_markdown(report)


# ------------------------------------------------------------------------------------------ bad baselines


def test_bad_baseline_files_are_named_with_the_fix(tmp_path: Path):
    with pytest.raises(BaselineError, match=r"baseline .*nope.json does not exist; make one with `pytest --cnnbench "
                                            r"--cnnbench-save-baseline .*nope.json`"):  # fmt: skip
        load_baseline(tmp_path / "nope.json")
    corrupt = tmp_path / "corrupt.json"
    corrupt.write_text('{"schema": "cnnbench/1", "run_id": ')
    with pytest.raises(BaselineError, match=r"baseline unusable: .*corrupt.json is not valid JSON \(line 1"):
        load_baseline(corrupt)
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"schema": "cnnbench/0", "runs": []}))
    with pytest.raises(BaselineError, match=r"other.json is not a cnnbench/1 report: schema is 'cnnbench/0'; "
                                            r"expected 'cnnbench/1'; make one with"):  # fmt: skip
        load_baseline(other)


# ---------------------------------------------------------------------------------- groups and the session


def test_groups_and_programs_name_their_units():
    suite = load_suite("standard", registry_catalog())
    by_id = {s.id: s for s in suite.scenarios()}
    plain, point = by_id["resnet18-s2-q3-gap-seed1"], by_id["resnet18-s2-q2-gap-freeze3-seed0"]
    assert (plain.group, plain.program) == ("resnet18-s2-q3-gap", "resnet18-s2-gap")
    assert (point.group, point.program) == ("resnet18-s2-q2-gap-freeze3", "resnet18-s2-gap-freeze3")
    record = {"id": point.id, **point.coordinates, "status": "passed"}  # what Runner.run records
    assert (group_id(record), program_id(record)) == (point.group, point.program)
    assert len({s.program for s in suite.scenarios() if s.freeze is None}) == 9 * 4 * 3  # arch × strategy × head


class FakeRunner:
    """Stands in for ``cnnbench.engine.runner.Runner``: every scenario "trains" to the accuracy given for its seed."""

    def __init__(self, accuracy: dict[int, float], images_per_s: float) -> None:
        self.accuracy, self.images_per_s = accuracy, images_per_s

    def train(self, scenarios) -> list[Outcome]:
        timing = Timing(None, None, None, None, None)
        return [Outcome("passed", Measurement(Metrics(test_accuracy=self.accuracy[s.seed],
                                                      train_images_per_s=self.images_per_s, infer_images_per_s=5000.0),
                                              (), (), (), 0, None, timing, timing)) for s in scenarios]  # fmt: skip

    def measure(self, trained: Outcome, timer) -> Outcome:
        return trained

    def target_info(self) -> list[TargetRecord]:
        return []


TWO_SEEDS = """
archs = ["lenet5"]
strategies = ["s1"]
heads = ["gap"]
seeds = [0, 1]
[quadrants.q4]
target = "digits"
n_train = 40
steps = 5
"""


def gated_session(tmp_path: Path, accuracy: dict[int, float], baseline_accuracy: float = 0.9, train: float = 1000.0):
    from cnnbench.session import Filters, Session

    (tmp_path / "two.toml").write_text(TWO_SEEDS)
    suite = load_suite(str(tmp_path / "two.toml"), registry_catalog())
    stored = seeds("lenet5-s1-q4-gap", [baseline_accuracy, baseline_accuracy])
    baseline = load_baseline(baseline_file(tmp_path, stored))
    session = Session(suite, Filters(), tmp_path / "reports", tmp_path / "cache",
                      baseline=baseline)  # fmt: skip
    session._runner, session.environment = FakeRunner(accuracy, train), ENV
    return session


def test_the_session_judges_a_group_when_its_last_selected_seed_has_run(tmp_path: Path):
    session = gated_session(tmp_path, {0: 0.5, 1: 0.6})
    first, second = session.suite.scenarios()
    assert session.run(first, None).status == "passed" and session.records[0].gate is None
    record = session.run(second, None)
    assert record.status == "regressed" and record.gate.accuracy.new_n == 2
    assert record.error.startswith("lenet5-s1-q4-gap regressed against the baseline: test accuracy 90.0% ± 0.0 "
                                      "(2 seeds) in the baseline -> 55.0% ± 7.1 (2 seeds) now")  # fmt: skip
    report = json.loads((session.run_dir / "report.json").read_text())
    assert report["gate"]["regressed"] == ["lenet5-s1-q4-gap"] and session.unflagged_regressions() == []

    narrowed = gated_session(tmp_path, {0: 0.9, 1: 0.9})
    narrowed.selected_ids = [first.id]  # e.g. -k seed0: the group is complete after its one selected seed
    assert narrowed.run(first, None).gate.verdict == "passed"


def test_the_session_judges_a_programs_throughput_when_its_last_scenario_has_run(tmp_path: Path):
    session = gated_session(tmp_path, {0: 0.9, 1: 0.9}, train=300.0)  # baseline: 1,000 images/s
    first, second = session.suite.scenarios()
    assert session.run(first, None).gate_throughput is None
    record = session.run(second, None)
    assert record.status == "regressed" and record.gate.verdict == "passed"
    assert record.gate_throughput.train_ratio == pytest.approx(0.3)
    assert record.error == (
        "lenet5-s1-gap throughput regressed against the baseline (median over 2 -> 2 "
        "scenarios): train throughput 1,000 -> 300 images/s (x0.30; tolerance: at least x0.70)"
    )
    assert session.report.gate.throughput_regressed == ("lenet5-s1-gap",) and not session.unflagged_regressions()

    elsewhere = gated_session(tmp_path, {0: 0.9, 1: 0.9}, train=300.0)
    elsewhere.environment = {**ENV, "fingerprint": "bee"}  # other hardware: reported, never gated
    assert [elsewhere.run(s, None).status for s in (first, second)] == ["passed", "passed"]
    assert elsewhere.records[-1].gate_throughput is None


def test_a_group_split_across_xdist_workers_is_caught_by_the_controller(tmp_path: Path):
    workers = [gated_session(tmp_path, {0: 0.5, 1: 0.5}) for _ in range(2)]
    for worker, scenario in zip(workers, workers[0].suite.scenarios(), strict=True):
        worker.writes_reports = False
        assert worker.run(scenario, None).status == "passed"  # neither worker saw the whole group
    controller = gated_session(tmp_path, {})
    for worker in workers:
        controller.merge(worker.export())
    controller.write(finished=True)
    assert controller.report.gate.regressed == ("lenet5-s1-q4-gap",)
    assert controller.unflagged_regressions() == ["lenet5-s1-q4-gap"]
