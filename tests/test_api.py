"""The Python API (docs/api.md): every example of the page runs as written, and the four functions do what the page
says — the zoo's names filtered in its order, pretrained bases read from the cache bit for bit, a run narrowed by its
filters returning its typed report, a stored report read back whole, bad arguments refused before any work."""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import cnnbench
from cnnbench import api
from cnnbench.config.suite import load_suite
from cnnbench.engine import pretrain
from cnnbench.engine.catalog import registry_catalog
from cnnbench.engine.runner import Runner
from cnnbench.results.records import Report
from cnnbench.zoo import MODELS

PAGE = Path(__file__).parents[1] / "docs" / "api.md"
SUITE = "tiny.toml"  # the page's suite, written by ``workdir``


def _blocks(language: str) -> list[tuple[int, str]]:
    """The page's fenced blocks in ``language``: each one's first line number and its code."""
    text = PAGE.read_text(encoding="utf-8")
    return [(text.count("\n", 0, m.start(1)) + 1, m.group(1))
            for m in re.finditer(rf"^```{language}\n(.*?)^```$", text, flags=re.M | re.S)]  # fmt: skip


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shared_cache: Path) -> Path:
    """An empty working directory with the page's ``tiny.toml`` (which pretrains lenet5 as conftest's tiny suite does,
    so the session's cache holds its base once), the session's cache as the default cache."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CNNBENCH_CACHE", str(shared_cache))
    ((_, suite),) = _blocks("toml")
    (tmp_path / SUITE).write_text(suite)
    return tmp_path


def _params(model: nnx.Module) -> list[np.ndarray]:
    return [np.asarray(leaf) for leaf in jax.tree.leaves(nnx.state(model, nnx.Param))]


def _entry(workdir: Path, cache: Path) -> Path:
    """The cache entry of the tiny suite's lenet5 base (built if missing)."""
    return Runner(load_suite(str(workdir / SUITE), registry_catalog()), cache).pretrained("lenet5").path


def test_every_example_of_the_page_runs(workdir: Path) -> None:
    """The page's python blocks, in order, in one namespace (as a notebook runs them); a failure's traceback points
    at the page's line."""
    namespace: dict = {}
    for line, code in _blocks("python"):
        exec(compile("\n" * (line - 1) + code, str(PAGE), "exec"), namespace)
    runs = namespace["runs"]
    assert runs["run_id"].nunique() == 2
    assert set(namespace["accuracy"].columns) == {"s3", "scratch"}
    assert namespace["stored"].run_id == namespace["report"].run_id == runs["run_id"].iloc[0]


def test_list_models_filters_the_zoo_in_its_order() -> None:
    every = cnnbench.list_models()
    assert every == MODELS.names()
    assert cnnbench.list_models("resnet*") == [n for n in every if n.startswith("resnet")]
    assert cnnbench.list_models("resnet*") == ["resnet18", "resnet34", "resnet50"]
    assert cnnbench.list_models("*resnet50") == ["resnet50", "seresnet50"]
    assert cnnbench.list_models("vgg1?") == ["vgg11", "vgg16", "vgg19"]
    assert cnnbench.list_models("unet*") == []


def test_importing_cnnbench_loads_no_jax() -> None:
    """The API's names resolve lazily: the package and ``run``/``load_report`` load no JAX; the zoo's names do."""
    code = (
        "import sys, cnnbench\n"
        "assert 'jax' not in sys.modules\n"
        "assert cnnbench.run.__module__ == cnnbench.load_report.__module__ == 'cnnbench.api'\n"
        "assert 'jax' not in sys.modules\n"
        "assert cnnbench.list_models('lenet*') == ['lenet5'] and 'jax' in sys.modules\n"
        "assert set(cnnbench.__all__) <= set(dir(cnnbench))\n"
        "try:\n    cnnbench.nothing\nexcept AttributeError as exc:\n    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "module 'cnnbench' has no attribute 'nothing'"


def test_a_pretrained_base_is_read_from_the_cache_bit_for_bit(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = cnnbench.create_model("lenet5", pretrained=True, suite=SUITE)  # built here if no test has yet
    builds: list = []
    monkeypatch.setattr(pretrain, "pretrain", lambda *args: builds.append(args))
    second = cnnbench.create_model("lenet5", pretrained=True, suite=SUITE)
    assert builds == []  # a cache hit
    assert all(np.array_equal(a, b) for a, b in zip(_params(first), _params(second), strict=True))
    assert first.classifier is None and first(jnp.zeros((2, 32, 32, 1))).shape == (2, 120)
    # the tiny suite's input and width are lenet5's canonical ones, so a random init has the same shapes
    random = cnnbench.create_model("lenet5", num_classes=0)
    assert [p.shape for p in _params(random)] == [p.shape for p in _params(first)]
    assert all(not np.array_equal(a, b) for a, b in zip(_params(random), _params(first), strict=True))


def test_num_classes_puts_a_new_classifier_on_the_pretrained_base(workdir: Path) -> None:
    base = cnnbench.create_model("lenet5", pretrained=True, suite=SUITE)
    model = cnnbench.create_model("lenet5", pretrained=True, suite=SUITE, num_classes=5, rngs=nnx.Rngs(7))
    for stage in base.stage_names:
        assert all(np.array_equal(a, b) for a, b in
                   zip(_params(getattr(base, stage)), _params(getattr(model, stage)), strict=True))  # fmt: skip
    model.eval()
    assert model(jnp.zeros((3, 32, 32, 1))).shape == (3, 5)
    with pytest.raises(ValueError, match=r"built with \{.*'img_size': 32.*\{'img_size': 64\} would not fit"):
        cnnbench.create_model("lenet5", pretrained=True, suite=SUITE, img_size=64)


def test_a_pretrained_path_loads_that_entry(workdir: Path, shared_cache: Path) -> None:
    entry = _entry(workdir, shared_cache)
    from_entry = cnnbench.create_model("lenet5", pretrained=entry)
    from_suite = cnnbench.create_model("lenet5", pretrained=True, suite=SUITE)
    assert all(np.array_equal(a, b) for a, b in zip(_params(from_entry), _params(from_suite), strict=True))


def test_a_pretrained_path_must_be_an_entry_of_that_arch(workdir: Path, shared_cache: Path) -> None:
    entry = _entry(workdir, shared_cache)
    with pytest.raises(ValueError, match=r"is not a pretrained-base cache entry.*FileNotFoundError.*pretrained=True"):
        cnnbench.create_model("lenet5", pretrained=workdir)
    with pytest.raises(ValueError, match=r"holds a lenet5 base, not resnet18; pass a resnet18 entry"):
        cnnbench.create_model("resnet18", pretrained=entry)
    damaged = workdir / entry.name
    shutil.copytree(entry, damaged)
    shutil.rmtree(damaged / "state")
    with pytest.raises(ValueError, match=r"cannot be used \(.*is listed in SHA256SUMS but missing.*it is not a sound"):
        cnnbench.create_model("lenet5", pretrained=damaged)
    with pytest.raises(KeyError, match=r"unknown arch 'lenet6'; known: lenet5, alexnet"):
        cnnbench.create_model("lenet6", pretrained=True)


def test_run_returns_the_selected_scenarios_and_writes_nothing(workdir: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="cnnbench")
    report = cnnbench.run(SUITE, archs="lenet5", strategies="s3", quadrants=["q3", "q4"], heads="gap")
    assert isinstance(report, Report) and report.finished is not None
    assert [s.id for s in report.scenarios] == ["lenet5-s3-q3-gap", "lenet5-s3-q4-gap"]
    for record in report.scenarios:
        assert record.status == "passed", record.error
        assert isinstance(record.test_accuracy, float) and 0.0 <= record.test_accuracy <= 1.0
        assert record.metrics.train_images_per_s and record.metrics.train_images_per_s > 0
    assert {t.quadrant for t in report.targets} == {"q3", "q4"}
    assert sorted(p.name for p in workdir.iterdir()) == [SUITE]  # report=None: no file anywhere here
    assert "[2/2] lenet5-s3-q4-gap: passed, test accuracy" in caplog.text


def test_a_written_report_loads_back_whole(workdir: Path) -> None:
    report = cnnbench.run(SUITE, strategies="scratch", quadrants="q4", heads="gap", report="out")
    assert cnnbench.load_report("out/latest") == report
    assert cnnbench.load_report(Path("out") / report.run_id / "report.json") == report
    assert (Path("out") / report.run_id / "results.csv").read_text().count("\n") == 2  # header and one scenario
    with pytest.raises(ValueError, match=r"is a directory without a report.json"):
        cnnbench.load_report(workdir)
    (workdir / "other.toml").write_text((workdir / SUITE).read_text().replace('name = "tiny"', 'name = "other"'))
    with pytest.raises(ValueError, match=r"is a report of suite 'tiny', not of 'other'.* baseline_any_suite=True"):
        cnnbench.run("other.toml", strategies="scratch", quadrants="q4", heads="gap", baseline="out/latest/report.json")


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"archs": "resnet19"}, r"'resnet19' is not in suite 'tiny'; its archs: lenet5"),
        ({"strategies": ["s1", "s4"]}, r"'s4' is not in suite 'tiny'"),
        ({"quadrants": "q1"}, r"'q1' is not in suite 'tiny'; its quadrants: q3, q4"),
        ({"suite": "nope"}, r"unknown suite 'nope'; built-in: .*smoke"),
        ({"baseline": "missing.json"}, r"baseline missing.json does not exist"),
        ({"target": "missing-data"}, r"missing-data"),
        ({"report": f"{SUITE}/out"}, rf"report='{SUITE}/out' cannot be written: its parent {SUITE} is a file"),
    ],
)
def test_run_refuses_a_bad_argument_before_any_work(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, arguments: dict, message: str
) -> None:
    monkeypatch.setattr(api, "Session", lambda *args, **kwargs: pytest.fail("a session started"))
    monkeypatch.setattr(pretrain, "pretrain", lambda *args: pytest.fail("a base is being pretrained"))
    with pytest.raises(ValueError, match=message):
        cnnbench.run(**{"suite": SUITE, **arguments})


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="an accelerator runs such a suite")
def test_a_suite_meant_for_an_accelerator_needs_force_on_a_cpu(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (workdir / "big.toml").write_text("requires_accelerator = true\n" + (workdir / SUITE).read_text())
    monkeypatch.setattr(api, "Session", lambda *args, **kwargs: pytest.fail("a session started"))
    with pytest.raises(ValueError, match=r"is meant for a GPU or TPU"):
        cnnbench.run("big.toml", strategies="s3", quadrants="q4", heads="gap")
