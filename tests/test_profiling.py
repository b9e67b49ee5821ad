"""Where a run's time goes (cnnbench.profiling): own time per phase, folding into inclusive phases, the xdist merge,
and the ``profile`` section a report carries through JSON and its documents."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cnnbench import profiling
from cnnbench.profiling import Profile
from cnnbench.report.run import render_markdown, terminal_summary
from cnnbench.results.build import build_report
from cnnbench.results.records import Report
from cnnbench.results.schema import validate


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def seconds(profile: Profile) -> dict[str, float]:
    return {p["name"]: p["seconds"] for p in profile.to_json()["phases"]}


def test_a_phase_inside_another_is_taken_out_of_it() -> None:
    clock = Clock()
    profile = Profile(clock)
    with profile.phase("train"):
        clock.now += 2.0
        with profile.phase("data"):
            clock.now += 0.5
        profile.add("compile", 3.0)  # measured by its caller: its time has passed inside train
        clock.now += 3.0 + 1.0
    clock.now += 0.25  # outside every phase: other
    out = profile.to_json()
    assert seconds(profile) == {"compile": 3.0, "data": 0.5, "train": 3.0}
    assert [p["name"] for p in out["phases"]] == ["compile", "data", "train"]  # PHASES order
    assert out["wall_s"] == out["process_s"] == 6.75 and out["processes"] == 1
    assert out["other_s"] == pytest.approx(0.25)


def test_an_inclusive_phase_keeps_what_runs_inside_it_but_compiling() -> None:
    clock = Clock()
    profile = Profile(clock)
    with profile.phase("pretrain", inclusive=True):
        clock.now += 1.0
        for _ in range(3):
            with profile.phase("data"):
                clock.now += 0.5
        with profile.phase("evaluate"):
            profile.add("program cache load", 0.25)
            clock.now += 0.25 + 2.0
    out = {p["name"]: (p["seconds"], p["calls"]) for p in profile.to_json()["phases"]}
    assert out == {"program cache load": (0.25, 1), "pretrain": (4.5, 1)}


def test_phases_are_counted_when_their_block_raises_and_unknown_names_are_refused() -> None:
    clock = Clock()
    profile = Profile(clock)
    with pytest.raises(RuntimeError), profile.phase("train"):
        clock.now += 1.5
        raise RuntimeError("diverged")
    assert seconds(profile) == {"train": 1.5}
    with pytest.raises(ValueError, match="unknown profile phase 'training'; known: compile, "):
        profile.add("training", 1.0)


def test_a_controller_sums_its_workers_and_counts_only_its_own_phases() -> None:
    workers = []
    for train in (10.0, 20.0):
        clock = Clock()
        worker = Profile(clock)
        with worker.phase("train"):
            clock.now += train
        clock.now += 5.0  # collection, imports
        workers.append(worker.to_json())
    clock = Clock()
    controller = Profile(clock)
    clock.now += 40.0  # waiting for the workers
    for exported in workers:
        controller.absorb(exported)
    with controller.phase("report"):
        clock.now += 2.0
    out = controller.to_json()
    assert out["processes"] == 3 and out["wall_s"] == 42.0
    assert out["process_s"] == (10 + 5) + (20 + 5) + 2.0  # the workers' wall time, the controller's phases
    assert out["other_s"] == 10.0 and seconds(controller) == {"train": 30.0, "report": 2.0}


def test_the_active_profile_is_the_one_a_session_activates() -> None:
    clock = Clock()
    mine = Profile(clock)
    before = profiling.active()
    profiling.activate(mine)
    try:
        with profiling.phase("timing"):
            clock.now += 1.0
        profiling.add("compile", 2.0)
    finally:
        profiling.activate(before)
    assert seconds(mine) == {"compile": 2.0, "timing": 1.0}


def test_the_report_carries_the_profile_through_json_and_prints_it(tmp_path: Path) -> None:
    clock = Clock()
    profile = Profile(clock)
    with profile.phase("train"):
        clock.now += 30.0
    profile.add("compile", 12.5)
    clock.now += 12.5 + 7.5
    env = {"cnnbench": "0", "jax": "0", "flax": "0", "optax": "0", "backend": "cpu", "device_kind": "cpu",
           "device_count": 1, "cpu": "x", "git_commit": None, "suite_hash": "abc"}  # fmt: skip
    report = build_report("r1", "2026-12-01T00:00:00+00:00", None, env, [], [], profile=profile.to_json())
    data = json.loads(json.dumps(report.to_json()))
    assert validate(data) == [] and Report.from_json(data) == report
    assert data["profile"]["phases"] == [
        {"name": "compile", "seconds": 12.5, "calls": 1},
        {"name": "train", "seconds": 30.0, "calls": 1},
    ]
    broken = dict(data, profile={"wall_s": 1.0, "phases": [{"name": "train"}]})
    assert validate(broken) == [
        "profile lacks 'processes'", "profile lacks 'process_s'", "profile lacks 'other_s'",
        "profile.phases[0] lacks 'seconds'", "profile.phases[0] lacks 'calls'",
    ]  # fmt: skip
    markdown = render_markdown(report)
    section = markdown.split("## Where the time went")[1]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in section.splitlines() if line.startswith("|")]
    assert rows[2:] == [["compile", "12.5", "25.0", "1"], ["train", "30.0", "60.0", "1"], ["other", "7.5", "15.0", ""]]
    lines = terminal_summary(report)
    assert any(line.split() == ["train", "30.0", "60.0", "1"] for line in lines), lines
