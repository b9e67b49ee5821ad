"""One model of results, one figure per output: the committed baseline survives a load into the typed model and
a write back, and a group's train images/s and accuracy read the same in report.md, report.html, the terminal
summary, the gate section and ``cnnbench compare``."""

from __future__ import annotations

import json
import re
from pathlib import Path

from cnnbench.config.gate import Tolerances
from cnnbench.report import fmt
from cnnbench.report.compare import compare, load_runs
from cnnbench.report.compare import render_markdown as compare_markdown
from cnnbench.report.html import render_html
from cnnbench.report.io import write_report
from cnnbench.report.run import render_markdown, terminal_summary
from cnnbench.results import gate
from cnnbench.results.build import build_report
from cnnbench.results.records import Report, ScenarioRecord
from cnnbench.results.schema import REQUIRED_KEYS, load_report

BASELINE = Path(__file__).parent.parent / "reports" / "baselines" / "smoke-cpu.json"

# every key docs/report-schema.md documents, per level
DOCUMENTED = {
    "report": {*REQUIRED_KEYS["report"], "suite", "aggregates", "summary", "best", "layer_transfer", "gate"},
    "scenario": {*REQUIRED_KEYS["scenario"], "target", "error", "curve", "frozen_stages", "layer_transfer",
                 "head_first_steps", "stopped_at", "augment", "timing", "gate", "gate_throughput"},
}  # fmt: skip


def test_the_committed_baseline_round_trips_through_the_typed_model():
    original = load_report(BASELINE)
    report = Report.from_json(original)
    assert all(isinstance(s, ScenarioRecord) for s in report.scenarios)
    written = json.loads(json.dumps(report.to_json(), allow_nan=False))
    for key in DOCUMENTED["report"] & original.keys():
        if key != "scenarios":
            assert written[key] == original[key], key
    assert len(written["scenarios"]) == len(original["scenarios"])
    for before, after in zip(original["scenarios"], written["scenarios"], strict=True):
        for key in DOCUMENTED["scenario"] & before.keys():
            assert after[key] == before[key], (before["id"], key)


ENV = {"cnnbench": "0.1.0", "jax": "0.10.2", "flax": "0.12.8", "optax": "0.2.8", "backend": "cpu",
       "device_kind": "cpu", "device_count": 1, "cpu": "AMD EPYC", "git_commit": None, "suite_hash": "abc",
       "fingerprint": "f00"}  # fmt: skip
GROUP = "a-s1-q1-gap"
ACCURACIES = (0.80, 0.84, 0.86)
RATES = (1000.0, 1300.0, 1900.0)  # mean 1,400, median 1,300: the outputs must all show the median


def records(accuracies, rates) -> list[ScenarioRecord]:
    return [ScenarioRecord.from_json({
        "id": f"{GROUP}-seed{i}", "arch": "a", "strategy": "s1", "quadrant": "q1", "head": "gap", "seed": i,
        "status": "passed", "metrics": {"test_accuracy": acc, "train_images_per_s": rate, "infer_images_per_s": 5e3},
    }) for i, (acc, rate) in enumerate(zip(accuracies, rates, strict=True))]  # fmt: skip


def test_every_output_shows_the_same_figures(tmp_path: Path):
    base = build_report("base", "t0", "t1", ENV, [], records(ACCURACIES, RATES))
    base_dir = write_report(base, tmp_path / "base", plots=False)
    baseline = gate.load_baseline(base_dir / "report.json")
    new = records(ACCURACIES, RATES)
    summary = gate.summarize(baseline, new, ENV, Tolerances(), [GROUP], [GROUP])
    report = build_report("new", "t0", "t1", ENV, [], new, gate=summary)
    new_dir = write_report(report, tmp_path / "new", plots=False)

    rate = fmt.rate(1300.0)  # "1,300": the median, not the mean 1,400
    accuracy = "83.3"  # mean of the seeds in %
    markdown = render_markdown(report)
    html = render_html(report)
    terminal = "\n".join(terminal_summary(report))
    gate_json = report.to_json()["gate"]
    comparison = compare_markdown(compare(load_runs([base_dir, new_dir])))

    # throughput: report.md's table, report.html's table, the gate, cnnbench compare
    assert re.search(rf"\| a +\| gap +\| s1 +\| +{rate} \|", markdown)
    assert f'<td class="num">{rate}</td>' in html
    assert gate_json["throughput"][0]["train_new"] == 1300.0
    assert re.search(rf"\| a-s1-gap +\| +{rate} \| +{rate} \|", comparison)
    # accuracy: report.md, report.html, the terminal, the gate, cnnbench compare
    assert f"**{accuracy} ± 3.1**" in markdown
    assert f"{accuracy} ± 3.1" in html
    assert f"{accuracy}±3.1*" in terminal
    assert fmt.pct(gate_json["groups"][0]["accuracy"]["new_mean"]) == accuracy
    assert f"{accuracy} ± 3.1 (3)" in comparison
