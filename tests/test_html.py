"""The self-contained HTML report: building blocks, what each section shows, robustness, and a real render."""

from __future__ import annotations

import base64
import importlib.util
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from cnnbench.report.html import escape, figure, page, render_html, table
from cnnbench.results.build import build_report

PNG = b"\x89PNG\r\n\x1a\n"
ROOT = Path(__file__).resolve().parents[1]
STRATEGIES = ("s1", "s2", "s3", "scratch")
# Mean test accuracy per quadrant and strategy: s1 wins q1 as recommended; s2 beats the recommended s3 in q4.
MEANS = {"q1": {"s1": 0.90, "s2": 0.88, "s3": 0.70, "scratch": 0.85},
         "q4": {"s1": 0.90, "s2": 0.93, "s3": 0.88, "scratch": 0.70}}  # fmt: skip
OFFSET = {"resnet18": 0.0, "lenet5": -0.02}
ENVIRONMENT = {
    "cnnbench": "0.1.0", "jax": "0.10.2", "flax": "0.12.8", "optax": "0.2.8", "backend": "cpu", "device_kind": "cpu",
    "device_count": 1, "cpu": "AMD EPYC", "git_commit": "c5d3c9f114bb21e6654418c150c27252c902b028",
    "suite_hash": "9f2c1a", "fingerprint": "826c0a421fde",
}  # fmt: skip
TARGETS = [
    {"name": "textures-large", "quadrant": "q1", "n_train": 3000, "n_val": 300, "n_test": 600, "n_classes": 6,
     "similarity": 0.051},
    {"name": "digits-small", "quadrant": "q4", "n_train": 300, "n_val": 100, "n_test": 500, "n_classes": 10,
     "similarity": 0.388, "measured_quadrant": "q3", "warning": "measured dissimilar"},
]  # fmt: skip
ERRORED = "resnet18-s2-q1-gap-seed1"


def record(arch: str, strategy: str, quadrant: str, head: str, seed: int, curve: bool = True) -> dict:
    """A scenario record as the runner hands it to the report; seeds 1 and 2 sit 0.4 points below and above the
    mean (std 0.6 points)."""
    acc = MEANS[quadrant][strategy] + OFFSET[arch] + (0.004 if seed == 2 else -0.004)
    metrics = {
        "test_accuracy": acc, "transfer_gain": None, "train_images_per_s": 1000.0 * (1 + STRATEGIES.index(strategy)),
        "infer_images_per_s": 8000.0, "compile_s": 3.5, "train_s": 20.0, "params_trainable": 2570,
        "params_total": 314_000, "gflops": 0.0712,
    }  # fmt: skip
    points = [{"step": step, "val_accuracy": acc * step / 30, "train_loss": 1 / step, "elapsed_s": step / 10}
              for step in (10, 20, 30)] if curve else []  # fmt: skip
    if strategy == "s1" and points:
        points[0]["phase"] = "head"
    return {"id": f"{arch}-{strategy}-{quadrant}-{head}-seed{seed}", "arch": arch, "strategy": strategy,
            "quadrant": quadrant, "head": head, "seed": seed, "status": "passed", "error": None, "metrics": metrics,
            "curve": points}  # fmt: skip


def make_report(records: list[dict], run_id: str = "20250101-120000") -> dict:
    return build_report(run_id, "2025-01-01T12:00:00+00:00", "2025-01-01T12:08:00+00:00", ENVIRONMENT, TARGETS,
                        records, suite={"name": "smoke"}).to_json()  # fmt: skip


class Page(HTMLParser):
    """What the tests look at in a page: images, links, scripts, headings, and table cells with their classes."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.images: list[str] = []
        self.urls: list[str] = []
        self.tags: list[str] = []
        self.headings: list[str] = []
        self.cells: list[tuple[str, set[str]]] = []
        self._open: tuple[str, set[str]] | None = None
        self._text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.tags.append(tag)
        self.urls += [value or "" for name, value in attrs if name in ("src", "href")]
        if tag == "img":
            self.images.append(attributes.get("src") or "")
        if tag in ("h2", "h3", "td"):
            self._open, self._text = (tag, set((attributes.get("class") or "").split())), []

    def handle_data(self, data: str) -> None:
        self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if self._open and tag == self._open[0]:
            text = "".join(self._text).strip()
            if tag == "td":
                self.cells.append((text, self._open[1]))
            else:
                self.headings.append(text)
            self._open = None

    def has_cell(self, text: str, cls: str | None = None) -> bool:
        return any(t == text and (cls is None or cls in c) for t, c in self.cells)


@pytest.fixture(scope="module")
def report() -> dict:
    """Two archs run separately (two seeds each), merged into one report as `cnnbench compare` users do."""
    runs = [make_report([record(arch, s, q, h, seed) for h in ("gap", "fc") for q in MEANS for s in STRATEGIES
                         for seed in (1, 2)], run_id=arch) for arch in OFFSET]  # fmt: skip
    return make_report([s for run in runs for s in run["scenarios"]], run_id="merged-run")


@pytest.fixture(scope="module")
def rendered(report: dict) -> str:
    return render_html(report)


# --------------------------------------------------------------------------------------------- building blocks


def test_building_blocks_escape_and_mark_cells():
    assert escape('<a href="x">&') == "&lt;a href=&quot;x&quot;&gt;&amp;"
    html = table(["name", "acc"], [["<b>", "93.0"], ["s2", "91.0"]], right=[1],
                 cell_classes=[[None, "winner"], ["muted", None]])  # fmt: skip
    assert "<td>&lt;b&gt;</td>" in html and '<td class="num winner">93.0</td>' in html
    assert '<td class="muted">s2</td>' in html and '<th class="num">acc</th>' in html
    shown = figure(PNG + b"rest", "alt <text>", "a caption")
    assert f'src="data:image/png;base64,{base64.b64encode(PNG + b"rest").decode()}"' in shown
    assert 'alt="alt &lt;text&gt;"' in shown and "<figcaption>a caption</figcaption>" in shown
    document = page("run <1>", ["<p>one</p>", "<p>two</p>"])
    assert document.startswith("<!DOCTYPE html>") and "<title>run &lt;1&gt;</title>" in document
    assert "<p>one</p>\n<p>two</p>" in document and "<style>" in document


# ---------------------------------------------------------------------------------------------- the page


def test_page_is_self_contained(rendered):
    parsed = Page(rendered)
    assert len(parsed.images) >= 6  # 2 × accuracy, gain, throughput, 2 × learning curves
    for src in parsed.images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1], validate=True)[:8] == PNG
    assert not [url for url in parsed.urls if url.startswith(("http://", "https://", "//"))]
    assert "script" not in parsed.tags and "link" not in parsed.tags
    assert len(rendered) < 2_000_000


def test_page_holds_every_section_and_the_numbers(rendered, report):
    parsed = Page(rendered)
    for heading in ("Quality gate", "Environment", "Targets", "Recommendation check", "Transfer gain over scratch",
                    "Accuracy vs throughput, and cost", "Learning curves", "Scenarios that did not pass"):  # fmt: skip
        assert (heading in parsed.headings) is (heading != "Quality gate"), heading
    assert "Test accuracy by strategy × quadrant × head" in parsed.headings
    assert {"resnet18", "lenet5"} <= set(parsed.headings)  # one accuracy subsection per arch
    assert "merged-run" in rendered and "Layer transfer" not in parsed.headings
    assert parsed.has_cell("0.10.2") and parsed.has_cell("826c0a421fde")  # environment: jax version, fingerprint
    assert all(parsed.has_cell(t["name"]) for t in TARGETS)
    assert parsed.has_cell("q3", "bad") and parsed.has_cell("measured dissimilar", "bad")  # contradicted quadrant
    # accuracy tables: the winners, bold; recommendation check: verdict coloured
    assert parsed.has_cell("90.0 ± 0.6", "winner") and parsed.has_cell("93.0 ± 0.6", "winner")
    assert parsed.has_cell("91.0 ± 0.6", "winner")  # lenet5 q4 s2
    assert parsed.has_cell("86.0 ± 0.6") and not parsed.has_cell("86.0 ± 0.6", "winner")  # lenet5 q1 s2
    assert parsed.has_cell("lost", "bad") and parsed.has_cell("won", "good") and parsed.has_cell("lost: s2 +5.0", "bad")
    assert parsed.has_cell("s2 × gap") and parsed.has_cell("+5.0", "good")  # best rows; s1's gain in q1
    assert parsed.has_cell("4,000") and parsed.has_cell("0.0712")  # throughput table: scratch rate, GFLOPs
    assert "None: all 64 scenarios passed" in rendered


# -------------------------------------------------------------------------------------------- quality gate


def gate() -> dict:
    regressed = {
        "group": "resnet18-s1-q1-gap", "arch": "resnet18", "strategy": "s1", "quadrant": "q1", "head": "gap",
        "verdict": "regressed", "message": "accuracy dropped 5.0 points, 2.0 allowed",
        "accuracy": {"baseline_mean": 0.95, "baseline_std": 0.005, "baseline_n": 3, "new_mean": 0.90,
                     "new_std": 0.0057, "new_n": 2, "drop": 0.05, "allowed": 0.02},
    }  # fmt: skip
    slow = {
        "program": "resnet18-s1-gap", "arch": "resnet18", "strategy": "s1", "head": "gap", "verdict": "regressed",
        "message": "train throughput fell", "n_baseline": 6, "n_new": 5, "allowed_ratio": 0.75,
        "train_baseline": 1000.0, "train_new": 600.0, "train_ratio": 0.6,
        "infer_baseline": 4000.0, "infer_new": 4400.0, "infer_ratio": 1.1,
    }  # fmt: skip
    passed = dict(regressed, group="resnet18-s1-q4-gap", quadrant="q4", verdict="passed", message="",
                  accuracy=dict(regressed["accuracy"], baseline_mean=0.90, drop=0.0))  # fmt: skip
    new = dict(regressed, group="resnet18-s9-q1-gap", strategy="s9", verdict="new", accuracy=None,
               message="not in the baseline")  # fmt: skip
    return {
        "baseline": {"path": "reports/base/report.json", "run_id": "base-run", "suite_hash": "9f2c1a",
                     "fingerprint": "0123456789ab"},
        "tolerances": {"accuracy_drop": 0.02, "noise_sigmas": 2.0, "throughput_drop": 0.25},
        "throughput_comparable": True, "throughput_note": "same hardware and software",
        "groups": [regressed, passed, new], "regressed": [regressed["group"]], "new": [new["group"]],
        "throughput": [slow], "throughput_regressed": [slow["program"]],
        "missing": ["resnet18-s3-q1-gap"], "not_run": ["resnet18-s3-q4-gap"], "not_selected": 3,
    }  # fmt: skip


def test_gate_section_lists_regressed_new_and_missing_groups_first():
    report = make_report([record("resnet18", s, "q1", "gap", 1, curve=False) for s in ("s1", "s3")])
    text = render_html(report | {"gate": gate()})
    parsed = Page(text)
    assert parsed.headings[0] == "Quality gate"  # the first section
    assert "2 regressed" in text and "base-run" in text and "reports/base/report.json" in text
    assert "accuracy drop 2 pts" in text and "throughput drop 25 %" in text
    assert "fingerprint <code>0123456789ab</code> (this run: 826c0a421fde)" in text
    assert "suite hash <code>9f2c1a</code> (same as this run)" in text
    first = [t for t, _ in parsed.cells].index("resnet18-s1-q1-gap")
    cells = [t for t, _ in parsed.cells[first : first + 7]]
    assert cells[1:6] == ["regressed", "95.0 ± 0.5 (3)", "90.0 ± 0.6 (2)", "5.0", "2.0"]
    assert parsed.has_cell("regressed", "bad") and parsed.has_cell("5.0", "bad")
    program = [t for t, _ in parsed.cells].index("resnet18-s1-gap")
    cells = [t for t, _ in parsed.cells[program : program + 10]]
    assert cells == ["resnet18-s1-gap", "regressed", "6 → 5", "1,000", "600", "0.60", "4,000", "4,400", "1.10", "0.75"]
    assert parsed.has_cell("0.60", "bad") and not parsed.has_cell("1.10", "bad")
    flagged = [t for t, _ in parsed.cells if t.startswith("resnet18-s")][:4]
    assert flagged == ["resnet18-s1-q1-gap", "resnet18-s9-q1-gap", "resnet18-s3-q1-gap", "resnet18-s3-q4-gap"]
    assert parsed.has_cell("missing", "muted") and parsed.has_cell("not run", "muted")
    assert "All 3 groups" in parsed.headings and "Same hardware and software." in text


# ---------------------------------------------------------------------------------------------- robustness


def test_single_seed_without_scratch_curves_or_a_result_still_renders():
    records = [record("resnet18", s, q, "gap", 1, curve=False) for q in MEANS for s in ("s1", "s2")]
    errored = next(r for r in records if r["id"] == ERRORED)
    errored.update(status="error", error="RuntimeError: out of <memory>", metrics=None)
    html = render_html(make_report(records))
    parsed = Page(html)
    assert parsed.has_cell(ERRORED) and parsed.has_cell("error", "bad")
    assert parsed.has_cell("RuntimeError: out of <memory>", "pre")  # escaped in the source, shown as is
    assert parsed.has_cell("error", "muted")  # the accuracy cell of the errored scenario
    assert parsed.has_cell("89.6", "winner")  # one seed: no ± std
    assert "No <code>scratch</code> result" in html and "No curve recorded for resnet18" in html
    # accuracy bars, accuracy against throughput and the Pareto view of accuracy against cost
    assert all(src.startswith("data:image/png;base64,") for src in parsed.images) and len(parsed.images) == 3


def test_html_modules_do_not_import_jax():
    code = "import sys, cnnbench.report.html, cnnbench.report.plots; print('jax' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


# ------------------------------------------------------------------------------------------------ chromium


def screenshot_script():
    spec = importlib.util.spec_from_file_location("screenshot_report", ROOT / "scripts" / "screenshot_report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_screenshot_script_says_when_chromium_is_missing(tmp_path, monkeypatch, capsys):
    module = screenshot_script()
    monkeypatch.setattr(module.shutil, "which", lambda name: None)
    (tmp_path / "report.html").write_text("<p>x</p>")
    assert module.main([str(tmp_path / "report.html"), "--out", str(tmp_path / "shot.png")]) == 1
    assert "no Chromium found on PATH" in capsys.readouterr().err
    assert not (tmp_path / "shot.png").exists()


@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs the chromium browser")
def test_page_renders_in_headless_chromium(rendered, tmp_path):
    page_path = tmp_path / "report.html"
    page_path.write_text(rendered, encoding="utf-8")
    shot = screenshot_script().screenshot(page_path, tmp_path / "shot.png", width=1100, height=1600)
    from PIL import Image

    with Image.open(shot) as image:
        assert image.size == (1100, 1600)
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
    assert len(colours) > 200  # text, tables and plots, not a blank or error page
