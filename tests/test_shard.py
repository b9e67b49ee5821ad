"""Sharded suites (SPEC §10): ``K/N`` parsing, the cost-balanced split that keeps programs whole and gathers the
units sharing a base when that saves work, the cost estimate from measured steps, joining the parts' reports
(``cnnbench merge``) and judging a stored report (``cnnbench gate``) as a run judges itself."""

from __future__ import annotations

import itertools
import json
from dataclasses import replace
from pathlib import Path

import pytest

from cnnbench import cli
from cnnbench.config.gate import Tolerances
from cnnbench.config.shard import Shard, ShardError, Unit, balance, partition, selection_digest
from cnnbench.config.suite import load_suite
from cnnbench.engine.catalog import registry_catalog
from cnnbench.engine.cost import STEP_S, shard_units, step_seconds
from cnnbench.engine.measurement import TargetRecord
from cnnbench.results import gate
from cnnbench.results.build import build_report
from cnnbench.results.merge import MergeError, merge_reports
from cnnbench.results.records import Report, ScenarioRecord

STANDARD_SIZES = {"q1": (2000, 400, 2000), "q2": (2000, 400, 2000), "q3": (200, 50, 2000), "q4": (100, 50, 2000)}


# ------------------------------------------------------------------------------------------------ the split


@pytest.mark.parametrize("text, index, count", [("1/1", 1, 1), ("2/4", 2, 4), (" 3 / 3 ", 3, 3)])
def test_a_shard_is_parsed_from_k_over_n(text: str, index: int, count: int):
    shard = Shard.parse(text)
    assert (shard.index, shard.count, str(shard)) == (index, count, f"{index}/{count}")


@pytest.mark.parametrize("text", ["0/3", "4/3", "2", "a/b", "1/0", "-1/2", "1/2/3"])
def test_a_shard_that_names_no_part_is_refused_with_the_form_expected(text: str):
    with pytest.raises(ShardError, match=r"expected K/N with 1 <= K <= N, e\.g\. 2/4"):
        Shard.parse(text)


def test_the_split_gives_every_unit_to_one_part_and_balances_by_cost_not_count():
    units = [Unit("big", ("b0",), 90.0), *(Unit(f"small{i}", (f"s{i}",), 10.0) for i in range(9))]
    parts = partition(units, {}, 2)
    assert sorted(s for p in parts for s in p.scenarios) == sorted(s for u in units for s in u.scenarios)
    assert [p.scenarios for p in parts] == [["b0"], [f"s{i}" for i in range(9)]]  # 90 s against 9 × 10 s
    assert balance(parts) == 1.0
    assert [p.scenarios for p in partition(list(reversed(units)), {}, 2)] == [p.scenarios for p in parts]


def test_units_sharing_an_expensive_base_gather_and_a_cheap_one_spreads():
    units = [Unit(f"a{i}", (f"a{i}",), 10.0, frozenset({"base:a"})) for i in range(4)]
    units += [Unit(f"b{i}", (f"b{i}",), 10.0, frozenset({"base:b"})) for i in range(4)]
    gathered = partition(units, {"base:a": 100.0, "base:b": 100.0}, 2)
    assert [sorted(p.shared) for p in gathered] == [["base:a"], ["base:b"]]  # each base paid once
    assert [p.seconds for p in gathered] == [140.0, 140.0]
    spread = partition(units[:4], {"base:a": 1.0}, 2)  # a base cheaper than the imbalance: both parts pay it
    assert [p.seconds for p in spread] == [21.0, 21.0]


def test_more_parts_than_units_leaves_parts_empty():
    parts = partition([Unit("u", ("x",), 1.0)], {}, 3)
    assert [p.scenarios for p in parts] == [["x"], [], []]


def test_the_selection_digest_ignores_order_and_tells_selections_apart():
    assert selection_digest(["a", "b"]) == selection_digest(["b", "a"]) != selection_digest(["a"])


# ------------------------------------------------------------------------------------------- the estimate


@pytest.fixture(scope="module")
def standard():
    return load_suite("standard", registry_catalog())


def test_every_zoo_arch_has_a_measured_step():
    assert set(STEP_S) == set(registry_catalog().archs) and all(0 < s < 5 for s in STEP_S.values())


def test_a_step_scales_with_pixels_channels_and_batch(standard):
    base = step_seconds(standard, "resnet18", 64)
    assert base == STEP_S["resnet18"]
    bigger = replace(standard, input=replace(standard.input, img_size=64), widths={"resnet18": 0.5})
    assert step_seconds(bigger, "resnet18", 32) == pytest.approx(base * 4 * 4 / 2)


def test_standard_splits_into_whole_programs_with_pretrained_ones_sharing_their_base(standard):
    scenarios = standard.scenarios()
    units, shared = shard_units(standard, scenarios, STANDARD_SIZES)
    assert sorted(s for u in units for s in u.scenarios) == sorted(s.id for s in scenarios)
    by_id = {s.id: s for s in scenarios}
    for unit in units:  # a unit is one program: every quadrant and seed of one arch × strategy × head
        assert {by_id[s].program for s in unit.scenarios} == {unit.name}
        assert unit.shared == ({f"base:{by_id[unit.scenarios[0]].arch}"} if "scratch" not in unit.name else set())
    assert len(units) == 9 * 4 * 3 + 6 and set(shared) == {f"base:{a}" for a in standard.archs}
    cost = {u.name: u.seconds for u in units}
    assert cost["densenet121-s1-gap"] > 4 * cost["lenet5-s1-gap"]
    assert cost["resnet18-s1-gap"] > 5 * cost["resnet18-s3-gap"]  # s3 trains a head on cached features
    parts = partition(units, shared, 4)
    assert balance(parts) < 1.05
    groups = [{by_id[s].group for s in p.scenarios} for p in parts]
    assert all(not (a & b) for a, b in itertools.combinations(groups, 2))  # every seed of a group in one part


# --------------------------------------------------------------------------------------- merging and gating

ENV = {"cnnbench": "0.1.0", "jax": "0.10.2", "flax": "0.12.8", "optax": "0.2.8", "backend": "cpu",
       "device_kind": "cpu", "device_count": 1, "cpu": "AMD EPYC", "git_commit": "c0ffee", "suite_hash": "abc",
       "fingerprint": "f00", "hostname": "h"}  # fmt: skip
GROUPS = ["a-s1-q1-gap", "a-s3-q1-gap", "a-s1-q2-gap", "a-s3-q2-gap"]
TOLERANCES = {"accuracy_drop": 0.02, "noise_sigmas": 2.0, "throughput_drop": 0.3}


def rec(group: str, seed: int, acc: float, train: float = 1000.0) -> ScenarioRecord:
    arch, strategy, quadrant, head = group.split("-")
    return ScenarioRecord.from_json({
        "id": f"{group}-seed{seed}", "arch": arch, "strategy": strategy, "quadrant": quadrant, "head": head,
        "seed": seed, "status": "passed",
        "metrics": {"test_accuracy": acc, "train_images_per_s": train, "infer_images_per_s": 5000.0}})  # fmt: skip


def target(quadrant: str, arch: str, score: float) -> TargetRecord:
    row = {"arch": arch, "score": score, "similar": score >= 0.4, "target": {}, "source": {}}
    return TargetRecord(f"t-{quadrant}", quadrant, 100, 50, 50, 10).with_similarity([row])


def part_report(
    tmp_path: Path,
    index: int,
    records: list[ScenarioRecord],
    count: int = 2,
    env: dict | None = None,
    finished: str | None = "2026-01-01T01:00:00+00:00",
    targets: tuple[TargetRecord, ...] = (),
) -> tuple[Path, Report]:
    groups = list(dict.fromkeys(r.group for r in records))
    suite = {"name": "s", "path": "s.toml", "digest": "abc", "tolerances": TOLERANCES, "groups": GROUPS,
             "selected_groups": groups, "shard": {"index": index, "count": count, "selection": "sel",
                                                   "selected": 8, "scenarios": len(records)}}  # fmt: skip
    profile = {"wall_s": 10.0 * index, "processes": 1, "process_s": 10.0 * index, "other_s": 1.0,
               "phases": [{"name": "train", "seconds": 9.0, "calls": len(records)}]}  # fmt: skip
    report = build_report(f"2026010{index}-000000-s", f"2026-01-0{index}T00:00:00+00:00", finished, env or ENV,
                          list(targets), records, suite=suite, profile=profile)  # fmt: skip
    path = tmp_path / f"part{index}.json"
    path.write_text(json.dumps(report.to_json()))
    return path, report


def two_parts(tmp_path: Path) -> list[tuple[Path, Report]]:
    one = [rec("a-s1-q1-gap", 0, 0.8), rec("a-s1-q1-gap", 1, 0.82), rec("a-s1-q2-gap", 0, 0.9),
           rec("a-s1-q2-gap", 1, 0.91)]  # fmt: skip
    two = [rec("a-s3-q1-gap", 0, 0.6), rec("a-s3-q1-gap", 1, 0.62), rec("a-s3-q2-gap", 0, 0.7),
           rec("a-s3-q2-gap", 1, 0.71)]  # fmt: skip
    return [part_report(tmp_path, 2, two, targets=(target("q1", "b", 0.1),)),
            part_report(tmp_path, 1, one, targets=(target("q1", "a", 0.9),))]  # fmt: skip


def test_parts_merge_into_one_report_in_the_suites_order(tmp_path: Path):
    merged = merge_reports(two_parts(tmp_path))
    assert [r.id for r in merged.scenarios] == [f"{g}-seed{s}" for g in GROUPS for s in (0, 1)]
    assert merged.suite["selected_groups"] == GROUPS and "shard" not in merged.suite
    assert [p["shard"]["index"] for p in merged.suite["parts"]] == [2, 1]
    assert merged.run_id == "20260101-000000-s-merged" and merged.finished == "2026-01-01T01:00:00+00:00"
    (q1,) = merged.targets  # the archs both parts measured: the score is their mean, the placement recomputed
    assert [row["arch"] for row in q1.similarity_detail["by_arch"]] == ["a", "b"]
    assert q1.similarity == pytest.approx(0.5) and q1.measured_quadrant == "q4"
    assert merged.profile.processes == 2 and merged.profile.wall_s == 20.0
    assert {p.name: p.calls for p in merged.profile.phases} == {"train": 8}
    gains = {r.id: r.metrics.transfer_gain for r in merged.scenarios}  # recomputed over every part's records
    assert gains["a-s3-q1-gap-seed0"] is None  # no scratch in this suite: nothing to gain over


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda p: part_report(p, 2, [rec("a-s3-q1-gap", 0, 0.6)], env=ENV | {"git_commit": "beef"}),
         r"different git commits \(.*part1\.json: c0ffee; .*part2\.json: beef\)"),
        (lambda p: part_report(p, 2, [rec("a-s3-q1-gap", 0, 0.6)], env=ENV | {"fingerprint": "f01"}),
         "different hardware/software fingerprints"),
        (lambda p: part_report(p, 2, [rec("a-s1-q1-gap", 1, 0.6), rec("a-s3-q1-gap", 0, 0.6)]),
         r"part1\.json and .*part2\.json overlap: both hold a-s1-q1-gap-seed1; merge each part once"),
        (lambda p: part_report(p, 3, [rec("a-s3-q1-gap", 0, 0.6)], count=3),
         "different shard counts"),
        (lambda p: part_report(p, 2, [rec("a-s3-q1-gap", 0, 0.6)], finished=None),
         r"part2\.json \(1 of its 1 scenarios\) did not finish: run the part again, or pass --partial"),
    ],
)  # fmt: skip
def test_parts_of_different_runs_or_overlapping_parts_are_refused_naming_the_files(tmp_path: Path, change, message):
    first = part_report(tmp_path, 1, [rec("a-s1-q1-gap", 0, 0.8), rec("a-s1-q1-gap", 1, 0.8)])
    with pytest.raises(MergeError, match=message):
        merge_reports([first, change(tmp_path)])


def test_a_missing_part_is_refused_unless_partial(tmp_path: Path):
    first = part_report(tmp_path, 1, [rec("a-s1-q1-gap", 0, 0.8)], count=3)
    second = part_report(tmp_path, 3, [rec("a-s3-q1-gap", 0, 0.6)], count=3)
    with pytest.raises(MergeError, match=r"parts 2/3 are missing: .* pass --partial"):
        merge_reports([first, second])
    assert len(merge_reports([first, second], partial=True).scenarios) == 2


def test_a_different_suite_is_refused(tmp_path: Path):
    first = part_report(tmp_path, 1, [rec("a-s1-q1-gap", 0, 0.8)])
    path, report = part_report(tmp_path, 2, [rec("a-s3-q1-gap", 0, 0.6)])
    other = replace(report, suite={**report.suite, "digest": "def"})
    with pytest.raises(MergeError, match="different suites"):
        merge_reports([first, (path, other)])


def test_the_gate_judges_a_merged_report_as_a_run_judges_itself(tmp_path: Path, capsys):
    parts = two_parts(tmp_path)
    for path, report in parts:  # the command line reads the files
        path.write_text(json.dumps(report.to_json()))
    assert cli.main(["merge", *(str(p) for p, _ in parts), "-o", str(tmp_path / "merged")]) == 0
    assert "merged 2 reports of suite 's': 8 scenarios (8 passed)" in capsys.readouterr().out
    merged = merge_reports(parts)
    baseline_records = [replace(r, metrics=replace(r.metrics, test_accuracy=r.metrics.test_accuracy + 0.1))
                        if r.group == "a-s3-q2-gap" else r for r in merged.scenarios]  # fmt: skip
    base = build_report("base", "t0", "t1", ENV, [], baseline_records)
    (tmp_path / "base.json").write_text(json.dumps(base.to_json()))
    baseline = gate.load_baseline(tmp_path / "base.json")

    summary = gate.judge_run(baseline, merged.scenarios, merged.environment, merged.suite)
    direct = gate.summarize(baseline, merged.scenarios, ENV, Tolerances(**TOLERANCES), GROUPS, GROUPS)
    assert summary == direct and summary.regressed == ("a-s3-q2-gap",)
    judged = gate.judged(merged.scenarios, summary)
    assert [r.status for r in judged].count("regressed") == 1 and judged[-1].status == "regressed"
    assert judged[-1].gate.verdict == "regressed" and judged[-2].gate is None  # on the group's last seed
    assert judged[-1].gate_throughput.program == "a-s3-gap"  # and the program's last scenario

    out = tmp_path / "gated"
    code = cli.main(["gate", str(tmp_path / "merged"), "--baseline", str(tmp_path / "base.json"), "-o", str(out)])
    printed = capsys.readouterr().out
    assert code == 1 and "gate: 1 group(s) regressed in accuracy, 0 program(s) in throughput" in printed
    stored = json.loads((out / "report.json").read_text())
    assert stored["gate"]["regressed"] == ["a-s3-q2-gap"] and stored["summary"]["by_status"]["regressed"] == 1
    assert {(out / name).is_file() for name in ("report.md", "report.html", "results.csv")} == {True}
    assert cli.main(["gate", str(tmp_path / "merged"), "--baseline", str(tmp_path / "merged" / "report.json")]) == 0


def test_the_gate_refuses_a_report_without_its_suites_tolerances(tmp_path: Path, capsys):
    report = build_report("r", "t0", "t1", ENV, [], [rec("a-s1-q1-gap", 0, 0.8)], suite={"name": "s"})
    (tmp_path / "r.json").write_text(json.dumps(report.to_json()))
    assert cli.main(["gate", str(tmp_path / "r.json"), "--baseline", str(tmp_path / "r.json")]) == 2
    assert "lacks tolerances, groups, selected_groups" in capsys.readouterr().err
