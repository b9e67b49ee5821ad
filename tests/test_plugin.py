"""The pytest plugin as its users see it (SPEC §1, §6, §7, §8): pytest runs on the tiny suite in a pytester
directory, and the tests assert the collected ids, exit codes, outcome counts, messages and report files.

Runs that train are subprocesses: JAX keeps process-wide state (the persistent compilation cache, config flags,
compiled programs) that in-process runs would share, and only a fresh process can show that pytest without
``--cnnbench`` imports no JAX. They share one pretraining cache, so lenet5 pretrains once. Collection and usage
errors, which train nothing, run in-process: a subprocess would spend most of their time starting Python. They
still load the engine (JAX, scipy) to check the suite's names or a user's dataset, so this module loads it first:
pytester drops the modules an in-process run imported, and importing a C extension such as jaxlib a second time in
one process aborts it.
"""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
import pytest

import cnnbench.engine.placement  # noqa: F401  (the engine and its C extensions: see the module docstring)
from cnnbench import cli
from cnnbench.engine import timing
from cnnbench.results.schema import load_report

SUITE = "tiny.toml"
RUN_ID = re.compile(r"\d{8}-\d{6}-tiny(-\d+)?")  # -2, -3, ... when runs start in the same second
HEAVY_MODULES = ("jax", "jaxlib", "flax", "optax", "orbax.checkpoint", "cnnbench.session", "cnnbench.engine.runner")

# Written into the pytester directory: records which heavy modules the pytest process had imported by the end.
MODULES_PROBE = f"""
import json, sys

def pytest_sessionfinish(session):
    loaded = [m for m in {HEAVY_MODULES!r} if m in sys.modules]
    with open("modules.json", "w") as f:
        json.dump(loaded, f)
"""

# lenet5 at 32×32×1 (SPEC §2): base stages c1, c3, c5 (the classifier is dropped); features 1×1×120.
LENET_STAGE_PARAMS = {"c1": 5 * 5 * 1 * 6 + 6, "c3": 5 * 5 * 6 * 16 + 16, "c5": 5 * 5 * 16 * 120 + 120}
LENET_BASE = sum(LENET_STAGE_PARAMS.values())  # 50,692
HEAD_PARAMS = {"gap": 120 * 10 + 10, "fc": 120 * 256 + 256 + 256 * 10 + 10}  # digits: 10 classes


def scenario_ids(suite_text: str, **only: tuple[str, ...]) -> set[str]:
    """The ids SPEC §1 gives the suite's scenarios (one seed), restricted per coordinate by ``only``."""
    raw = tomllib.loads(suite_text)
    axes = {"arch": raw["archs"], "strategy": raw["strategies"], "quadrant": list(raw["quadrants"]),
            "head": raw["heads"]}  # fmt: skip
    for name, values in only.items():
        axes[name] = [v for v in axes[name] if v in values]
    return {f"{a}-{s}-{q}-{h}" for a, s, q, h in itertools.product(*axes.values())}


def collected(result: pytest.RunResult, suite: str = r"[\w.-]+\.toml|smoke") -> list[str]:
    """The scenario ids a ``--collect-only -q`` run listed as items of a suite file, ``<suite>::<id>``, in order
    (duplicates kept)."""
    return [m.group(1) for line in result.outlines if (m := re.fullmatch(rf"(?:{suite})::([\w.-]+)", line.strip()))]


class Bench:
    """pytest run inside the pytester directory (in a subprocess unless told), with the tiny suite written there."""

    def __init__(self, pytester: pytest.Pytester, suite_text: str, cache: Path) -> None:
        self.pytester, self.suite_text, self.cache = pytester, suite_text, cache
        self.path = pytester.path
        self.reports = pytester.path / "reports"
        self.write_suite(SUITE, suite_text)

    def write_suite(self, name: str, text: str) -> str:
        (self.path / name).write_text(text)
        return name

    def run(
        self, *args: str, suite: str = SUITE, cache: Path | None = None, inprocess: bool = False
    ) -> pytest.RunResult:
        options = ["--cnnbench", f"--cnnbench-suite={suite}", f"--cnnbench-cache={cache or self.cache}",
                   f"--cnnbench-report={self.reports}", *args]  # fmt: skip
        if inprocess:
            return self.pytester.runpytest_inprocess(*options)
        return self.pytester.runpytest_subprocess(*options, timeout=600)

    def collect(self, *args: str, **kw) -> list[str]:
        result = self.run("--collect-only", "-q", *args, inprocess=True, **kw)
        assert result.ret == 0, result.stdout.str() + result.stderr.str()
        return collected(result)

    def report(self) -> tuple[dict, Path]:
        return read_report(self.reports)


@pytest.fixture
def bench(pytester: pytest.Pytester, tiny_suite_text: str, shared_cache: Path) -> Bench:
    return Bench(pytester, tiny_suite_text, shared_cache)


def read_report(root: Path) -> tuple[dict, Path]:
    """A run's report.json, checked against schema cnnbench/1 (docs/report-schema.md), and its run directory, after
    checking that latest/ holds the same files."""
    runs = [p for p in root.iterdir() if p.name != "latest"]
    assert len(runs) == 1 and RUN_ID.fullmatch(runs[0].name), sorted(p.name for p in root.iterdir())
    for name in ("report.json", "report.md", "report.html"):
        assert (runs[0] / name).read_text() == (root / "latest" / name).read_text()
    return load_report(root / "latest" / "report.json"), runs[0]  # validated against the schema on the way


def _by_id(report: dict) -> dict[str, dict]:
    return {s["id"]: s for s in report["scenarios"]}


# ---------------------------------------------------------------------------------------------- collection


def test_collects_one_item_per_scenario_with_the_spec_id(bench: Bench, tiny_suite_text: str) -> None:
    bench.pytester.makepyfile(test_plain="def test_plain():\n    pass\n")
    result = bench.run("--collect-only", "-q", inprocess=True)
    assert result.ret == 0
    ids = collected(result)
    assert len(ids) == len(set(ids)) == 1 * 4 * 2 * 2  # archs × strategies × quadrants × heads
    assert set(ids) == scenario_ids(tiny_suite_text)
    assert "lenet5-s1-q4-gap" in ids and "lenet5-scratch-q3-fc" in ids
    assert "test_plain" not in result.stdout.str()  # `pytest --cnnbench` alone runs the suite, not the project
    assert not bench.reports.exists()  # collecting trains nothing and writes no report


def test_keyword_expression_selects_scenarios(bench: Bench) -> None:
    result = bench.run("--collect-only", "-q", "-k", "s3 and q4", inprocess=True)
    assert sorted(collected(result)) == ["lenet5-s3-q4-fc", "lenet5-s3-q4-gap"]
    result.stdout.fnmatch_lines(["2/16 tests collected (14 deselected)*"])


FILTERS = [
    ({"arch": ("lenet5",)}, 16),
    ({"strategy": ("s1", "scratch")}, 8),
    ({"quadrant": ("q3",)}, 8),
    ({"head": ("fc",)}, 8),
    ({"strategy": ("s2",), "quadrant": ("q4",), "head": ("gap",)}, 1),
]


@pytest.mark.parametrize(("only", "count"), FILTERS, ids=lambda v: "-".join(v) if isinstance(v, dict) else None)
def test_filter_options_select_the_subset(bench: Bench, tiny_suite_text: str, only: dict, count: int) -> None:
    options = [f"--cnnbench-{name}={','.join(values)}" for name, values in only.items()]
    ids = bench.collect(*options)
    assert len(ids) == count
    assert set(ids) == scenario_ids(tiny_suite_text, **only)


def test_a_list_option_takes_repeats_and_comma_lists(bench: Bench, tiny_suite_text: str) -> None:
    ids = bench.collect("--cnnbench-strategy=s1", "--cnnbench-strategy", "s3, scratch", "--cnnbench-head=fc")
    assert sorted(ids) == sorted(scenario_ids(tiny_suite_text, strategy=("s1", "s3", "scratch"), head=("fc",)))


INI_TWINS = [
    ({}, {}),
    ({"cnnbench_arch": "lenet5"}, {"arch": ("lenet5",)}),
    ({"cnnbench_strategy": "s3,scratch"}, {"strategy": ("s3", "scratch")}),
    ({"cnnbench_quadrant": "q4"}, {"quadrant": ("q4",)}),
    ({"cnnbench_head": "gap"}, {"head": ("gap",)}),
]


@pytest.mark.parametrize(("ini", "only"), INI_TWINS, ids=["suite", "arch", "strategy", "quadrant", "head"])
def test_ini_twins_do_what_their_options_do(
    pytester: pytest.Pytester, tiny_suite_text: str, shared_cache: Path, ini: dict, only: dict
) -> None:
    """``cnnbench = true`` and ``cnnbench_suite`` alone run the suite; each filter's ini twin filters like it."""
    (pytester.path / SUITE).write_text(tiny_suite_text)
    lines = ["[pytest]", "cnnbench = true", f"cnnbench_suite = {SUITE}", f"cnnbench_cache = {shared_cache}",
             *(f"{key} = {value}" for key, value in ini.items())]  # fmt: skip
    pytester.makefile(".ini", pytest="\n".join(lines))
    result = pytester.runpytest_inprocess("--collect-only", "-q")
    assert result.ret == 0, result.stderr.str()
    assert set(collected(result)) == scenario_ids(tiny_suite_text, **only)
    assert len(collected(result)) == len(scenario_ids(tiny_suite_text, **only))


def test_command_line_option_overrides_its_ini_twin(pytester: pytest.Pytester, tiny_suite_text: str) -> None:
    (pytester.path / SUITE).write_text(tiny_suite_text)
    pytester.makefile(".ini", pytest=f"[pytest]\ncnnbench = true\ncnnbench_suite = {SUITE}\ncnnbench_quadrant = q3")
    result = pytester.runpytest_inprocess("--collect-only", "-q", "--cnnbench-quadrant=q4")
    assert set(collected(result)) == scenario_ids(tiny_suite_text, quadrant=("q4",))


def test_without_cnnbench_the_plugin_collects_nothing_and_imports_no_jax(bench: Bench) -> None:
    bench.pytester.makepyfile(test_plain="def test_plain():\n    pass\n")
    bench.pytester.makeconftest(MODULES_PROBE)
    # its options alone do not enable it
    result = bench.pytester.runpytest_subprocess(f"--cnnbench-suite={SUITE}", "--cnnbench-quadrant=q4", "-v")
    assert result.ret == 0
    result.assert_outcomes(passed=1)
    assert re.search(r"plugins:.*cnnbench", result.stdout.str())  # the plugin is loaded, just idle
    assert f"{SUITE}::" not in result.stdout.str()
    assert json.loads((bench.path / "modules.json").read_text()) == []
    assert not bench.reports.exists() and not (bench.path / ".cnnbench-cache").exists()


def test_ini_cnnbench_true_adds_the_suite_to_the_projects_tests(
    pytester: pytest.Pytester, tiny_suite_text: str
) -> None:
    (pytester.path / SUITE).write_text(tiny_suite_text)
    pytester.makepyfile(test_plain="def test_plain():\n    pass\n")
    pytester.makefile(".ini", pytest=f"[pytest]\ncnnbench = true\ncnnbench_suite = {SUITE}\ncnnbench_quadrant = q4")
    result = pytester.runpytest_inprocess("--collect-only", "-q")
    assert result.ret == 0, result.stderr.str()
    assert "test_plain.py::test_plain" in result.outlines  # the project's own test stays
    assert sorted(collected(result)) == sorted(scenario_ids(tiny_suite_text, quadrant=("q4",)))
    deselected = pytester.runpytest_inprocess("--collect-only", "-q", f"--deselect={SUITE}::lenet5-s1-q4-gap")
    assert len(collected(deselected)) == 7 and "lenet5-s1-q4-gap" not in collected(deselected)


def test_a_builtin_suite_name_is_never_shadowed_and_a_suite_path_names_a_file(bench: Bench) -> None:
    (bench.path / "smoke").mkdir()  # a folder named like the built-in suite
    ids = bench.collect("--cnnbench-arch=lenet5", suite="smoke")
    assert len(ids) == 48 and "lenet5-s1-q1-fc" in ids  # the built-in suite's items, under its name: smoke::<id>
    (bench.path / "mysuites").mkdir()
    folder = bench.run(suite="mysuites", inprocess=True)
    assert folder.ret == pytest.ExitCode.USAGE_ERROR
    folder.stderr.fnmatch_lines(["ERROR: cnnbench: suite path */mysuites is a folder; a suite is a .toml file or a "
                                 "built-in name (full, hardware, smoke, standard)"])  # fmt: skip


def test_default_paths_stay_in_the_project_wherever_the_rootdir_goes(
    pytester: pytest.Pytester, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A path argument outside the project (``--option /abs/path``: pytest takes the value for a path) moves
    pytest's rootdir to a common ancestor; the cache and reports stay in the project, the ini's directory or else
    the invocation directory; ``CNNBENCH_CACHE`` overrides the ini's cache, the command line overrides both."""
    from cnnbench.plugin import _path_option

    monkeypatch.delenv("CNNBENCH_CACHE", raising=False)
    outside = tmp_path_factory.mktemp("outside")
    (outside / "data.npz").touch()
    moved = pytester.parseconfig("--cnnbench-target", str(outside / "data.npz"))
    assert moved.rootpath != pytester.path and pytester.path.is_relative_to(moved.rootpath)
    assert _path_option(moved, "cache") == pytester.path / ".cnnbench-cache"
    assert _path_option(moved, "report") == pytester.path / "reports"
    assert _path_option(moved, "target") == outside / "data.npz"

    pytester.makefile(".ini", pytest="[pytest]\ncnnbench_report = out\ncnnbench_cache = ini-cache")
    (pytester.path / "sub").mkdir()
    monkeypatch.chdir(pytester.path / "sub")  # invoked from a sub-folder: the ini's paths are the project's
    config = pytester.parseconfig(f"--cnnbench-baseline={outside / 'base.json'}")
    assert _path_option(config, "report") == pytester.path / "out"
    assert _path_option(config, "cache") == pytester.path / "ini-cache"
    assert _path_option(config, "baseline") == outside / "base.json"
    monkeypatch.setenv("CNNBENCH_CACHE", str(outside / "env-cache"))
    assert _path_option(pytester.parseconfig(), "cache") == outside / "env-cache"
    assert _path_option(pytester.parseconfig("--cnnbench-cache=cli"), "cache") == pytester.path / "sub" / "cli"


def test_a_run_with_paths_outside_the_project_keeps_its_cache_and_the_builtin_suite(
    bench: Bench, shared_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The user's case end to end: a dataset and a report folder outside the project, given as ``--option
    /abs/path``, a folder named ``smoke`` in the common ancestor pytest moves its rootdir to. The project's warm
    cache is used (no pretraining from cold elsewhere) and ``smoke`` is the built-in suite."""
    monkeypatch.delenv("CNNBENCH_CACHE", raising=False)
    outside = bench.path.parent / f"{bench.path.name}-outside"
    (outside / "reports").mkdir(parents=True)
    bands_npz(outside / "bands.npz")
    (bench.path.parent / "smoke").mkdir(exist_ok=True)
    (bench.path / ".cnnbench-cache").symlink_to(shared_cache)  # the project's warm cache
    placed = bench.pytester.runpytest_inprocess("--cnnbench", f"--cnnbench-suite={SUITE}", "--collect-only",
                                                "--cnnbench-target", str(outside / "bands.npz"))  # fmt: skip
    assert placed.ret == 0, placed.stderr.str()
    placed.stdout.fnmatch_lines([f"[[]cnnbench[]] pretrained lenet5: * ({bench.path}/.cnnbench-cache/pretrained/*)"])
    assert not (bench.path.parent / ".cnnbench-cache").exists()
    builtin = bench.pytester.runpytest_inprocess("--cnnbench", "--collect-only", "-q", "--cnnbench-arch=lenet5",
                                                 "--cnnbench-report", str(outside / "reports"))  # fmt: skip
    assert builtin.ret == 0, builtin.stderr.str()
    assert len(collected(builtin, "smoke")) == 48


# -------------------------------------------------------------------------------------------- usage errors


BAD_SUITES = {
    "bad-key.toml": lambda text: text.replace("[train]\n", "[train]\nlr = 0.1\n"),
    "bad-toml.toml": lambda text: text.replace('archs = ["lenet5"]', 'archs = ["lenet5"'),
}
BAD_INPUT = [
    pytest.param(SUITE, ["--cnnbench-arch=resnet19"], ["*'resnet19'*", "*lenet5*"], id="arch"),
    pytest.param(SUITE, ["--cnnbench-strategy=s1,s4"], ["*'s4'*", "*s1, s2, s3, scratch*"], id="strategy"),
    pytest.param(SUITE, ["--cnnbench-arch=,,,"], ["*--cnnbench-arch ',,,' names no value*"], id="empty-list"),
    pytest.param(SUITE, ["--cnnbench-head=mlp"], ["*'mlp'*", "*gap, fc*"], id="head"),
    pytest.param(SUITE, ["--cnnbench-quadrant=q9"], ["*'q9'*", "*q3, q4*"], id="quadrant"),
    pytest.param(SUITE, ["--cnnbench-arch=resnet18"], ["*'resnet18' is not in suite 'tiny'*lenet5*"],
                 id="arch-not-in-suite"),
    pytest.param(SUITE, ["--cnnbench-shard=4/3"], ["*shard '4/3': expected K/N with 1 <= K <= N, e.g. 2/4*"],
                 id="shard"),
    pytest.param(SUITE, ["--cnnbench-seeds-together=yes"],
                 ["*--cnnbench-seeds-together 'yes': expected one of auto, on, off*"], id="seeds-together"),
    pytest.param("nope", [], ["*unknown suite 'nope'*smoke*"], id="suite-name"),
    pytest.param("missing.toml", [], ["*missing.toml does not exist*"], id="suite-file"),
    pytest.param("bad-key.toml", [], ["*bad-key.toml*key 'train.lr': unknown key; expected one of*"], id="suite-key"),
    pytest.param("bad-toml.toml", [], ["*bad-toml.toml*not valid TOML*"], id="suite-toml"),
    pytest.param(SUITE, ["--cnnbench-target=leaves.npz"], ["*leaves.npz does not exist; a user dataset is a folder*"],
                 id="target-missing"),
    pytest.param(SUITE, ["--cnnbench-target=mismatched.npz"],
                 ["*mismatched.npz: split 'train' has 30 images in x_train but 29 labels in y_train*"],
                 id="target-bad"),
    pytest.param(SUITE, ["--cnnbench-baseline=mismatched.npz"],
                 ["*baseline unusable: cannot read report *mismatched.npz*make one with `pytest --cnnbench "
                  "--cnnbench-save-baseline *"], id="baseline-corrupt"),
]  # fmt: skip


@pytest.mark.parametrize(("suite", "options", "message"), BAD_INPUT)
def test_bad_input_is_a_usage_error_before_anything_runs(
    bench: Bench, suite: str, options: list[str], message: list[str]
) -> None:
    if suite in BAD_SUITES:
        bench.write_suite(suite, BAD_SUITES[suite](bench.suite_text))
    x, y = bands_npz(bench.path / "mismatched.npz")
    np.savez(bench.path / "mismatched.npz", x_train=x, y_train=y[:-1], x_test=x, y_test=y)
    cache = bench.path / "cache"
    result = bench.run(*options, suite=suite, cache=cache, inprocess=True)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: cnnbench: *"])
    for pattern in message:
        result.stderr.fnmatch_lines([pattern])
    assert "collected" not in result.stdout.str() and "[cnnbench]" not in result.stdout.str()
    assert not cache.exists() and not bench.reports.exists()


# ------------------------------------------------------------------------------------------------ real runs


def bands_npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A user's .npz: three classes of 32×32 grey images told apart by which band is bright; returns x, y."""
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 10)
    x = rng.integers(0, 60, (30, 32, 32), dtype=np.uint8)
    for i, c in enumerate(y):
        x[i, 10 * c : 10 * c + 10] += 150
    np.savez(path, x_train=x, y_train=y, x_test=x[::-1], y_test=y[::-1])
    return x, y


def test_a_users_dataset_runs_alone_in_its_measured_quadrant(bench: Bench) -> None:
    bands_npz(bench.path / "bands.npz")
    result = bench.run("--cnnbench-target=bands.npz", "-k", "gap and (s3 or scratch)")
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines([
        "*target bands: 24 training images (small, at most 1000 is small), similarity * over lenet5 "
        "(*: threshold 0.4) -> runs as q[34] (small, *)"
    ])  # fmt: skip
    result.stdout.fnmatch_lines([
        "[[]cnnbench[]] [[]1/2[]] lenet5-s3-q*-gap: passed, test accuracy *% · *s so far, about *s left",
        "[[]cnnbench[]] [[]2/2[]] lenet5-scratch-q*-gap: passed, *",
    ])  # fmt: skip
    report, run_dir = bench.report()
    log = (run_dir / "run.log").read_text()
    assert log == (bench.reports / "latest" / "run.log").read_text()
    assert "INFO cnnbench" in log and "target bands: 24 training images" in log and "[2/2] lenet5-scratch" in log
    # progress goes through the `cnnbench` logger: -q keeps warnings only, --log-cli-level sets the level, and no
    # line is printed twice
    quiet = bench.run("--cnnbench-target=bands.npz", "--collect-only", "-q", inprocess=True)
    assert quiet.ret == 0 and "[cnnbench]" not in quiet.stdout.str()
    for level, shown in (("INFO", 1), ("WARNING", 0)):
        live = bench.run("--cnnbench-target=bands.npz", "--collect-only", f"--log-cli-level={level}", inprocess=True)
        assert live.stdout.str().count("target bands: 24 training images") == shown, live.stdout.str()
    (target,) = report["targets"]
    quadrant = "q4" if target["similarity"] >= 0.4 else "q3"
    assert target["name"] == "bands" and target["quadrant"] == target["measured_quadrant"] == quadrant
    assert {s["id"] for s in report["scenarios"]} == {f"lenet5-s3-{quadrant}-gap", f"lenet5-scratch-{quadrant}-gap"}
    assert all(s["target"] == "bands" and s["status"] == "passed" for s in report["scenarios"])


def test_run_passes_and_writes_report_and_benchmarks(bench: Bench, tiny_suite_text: str) -> None:
    bench.pytester.makeconftest(MODULES_PROBE)  # the control of the no-JAX check: a run that trains has JAX
    result = bench.run("--cnnbench-quadrant=q4", "--benchmark-json=bench.json")
    expected = scenario_ids(tiny_suite_text, quadrant=("q4",))
    assert result.ret == 0, result.stdout.str()
    result.assert_outcomes(passed=len(expected))
    assert len(expected) == 8
    assert {"jax", "flax", "cnnbench.engine.runner"} <= set(json.loads((bench.path / "modules.json").read_text()))

    report, run_dir = bench.report()
    assert report["schema"] == "cnnbench/1" and report["run_id"] == run_dir.name
    assert report["finished"] is not None and report["environment"]["backend"] == "cpu"
    assert [(t["name"], t["quadrant"], t["n_train"], t["n_classes"]) for t in report["targets"]] == [
        ("digits", "q4", 40, 10)
    ]
    scenarios = _by_id(report)
    assert set(scenarios) == expected and len(report["scenarios"]) == 8
    assert report["summary"]["by_status"]["passed"] == 8
    for sid, s in scenarios.items():
        m = s["metrics"]
        assert s["status"] == "passed" and s["error"] is None, sid
        assert 0 < m["test_accuracy"] <= 1, sid
        assert m["train_images_per_s"] > 0 and m["infer_images_per_s"] > 0 and m["compile_s"] >= 0, sid
        assert m["params_total"] == LENET_BASE + HEAD_PARAMS[s["head"]], sid
    for head in ("gap", "fc"):
        # trainable parameters follow the strategy: s2 freezes the lower half (c1), s3 the whole base
        frozen = {"s1": (), "s2": ("c1",), "s3": ("c1", "c3", "c5"), "scratch": ()}
        for strategy, stages in frozen.items():
            s = scenarios[f"lenet5-{strategy}-q4-{head}"]
            assert s["frozen_stages"] == list(stages)
            trainable = LENET_BASE + HEAD_PARAMS[head] - sum(LENET_STAGE_PARAMS[n] for n in stages)
            assert s["metrics"]["params_trainable"] == trainable, s["id"]
        scratch = scenarios[f"lenet5-scratch-q4-{head}"]["metrics"]["test_accuracy"]
        for strategy in ("s1", "s2", "s3"):
            m = scenarios[f"lenet5-{strategy}-q4-{head}"]["metrics"]
            assert m["transfer_gain"] == pytest.approx(m["test_accuracy"] - scratch)
    # with the fc head even this tiny budget is far above chance (0.1 on ten digits) for every strategy
    assert all(scenarios[f"lenet5-{s}-q4-fc"]["metrics"]["test_accuracy"] > 0.3 for s in frozen)
    assert scenarios["lenet5-s1-q4-gap"]["metrics"]["compile_s"] > 0  # the first scenario compiles its programs
    assert "# cnnbench report" in (run_dir / "report.md").read_text()

    # where the time went: every phase of the run once per scenario or per shared piece, adding up to the wall time
    profile = report["profile"]
    phases = {p["name"]: p for p in profile["phases"]}
    assert {"pretrain", "similarity", "features", "data", "models", "train", "evaluate", "timing", "report"} <= set(
        phases
    )
    assert {"compile", "program cache load"} & set(phases)
    assert phases["models"]["calls"] == phases["train"]["calls"] == phases["timing"]["calls"] == 8
    assert phases["pretrain"]["calls"] == phases["similarity"]["calls"] == phases["features"]["calls"] == 1
    assert phases["report"]["calls"] == 8 + 1  # after each scenario, then the final write
    assert profile["processes"] == 1 and profile["process_s"] == profile["wall_s"]
    total = sum(p["seconds"] for p in phases.values()) + profile["other_s"]
    assert total == pytest.approx(profile["wall_s"], abs=0.02)

    result.stdout.fnmatch_lines(["*= cnnbench =*", f"cnnbench {run_dir.name}: 8 scenarios — 8 passed*"])
    result.stdout.fnmatch_lines(["*Where the time went*", "*phase*seconds*share %*calls*"])
    result.stdout.fnmatch_lines(
        [
            f"report: */reports/{run_dir.name}/report.md (and report.json, report.html, results.csv, run.log; latest/ "
            "points to it)"
        ]
    )

    benchmarks = json.loads((bench.path / "bench.json").read_text())["benchmarks"]
    assert sorted(b["name"] for b in benchmarks) == sorted(expected)
    for b in benchmarks:
        info, record = b["extra_info"], scenarios[b["name"]]
        assert b["fullname"] == f"{SUITE}::{b['name']}"
        assert info["cnnbench_id"] == b["name"] and info["status"] == "passed"
        assert info["test_accuracy"] == record["metrics"]["test_accuracy"]
        assert info["params_trainable"] == record["metrics"]["params_trainable"]
        assert b["stats"]["rounds"] == timing.ROUNDS  # the steady-state train step, compile excluded


def test_diverged_scenario_fails_alone_and_is_reported(bench: Bench) -> None:
    # A huge fine-tuning LR ratio blows up the base only where it is fine-tuned: s1 and s2. s3 (frozen base)
    # and scratch (base at the head's LR) run after them and pass.
    suite = bench.write_suite(
        "diverge.toml", bench.suite_text.replace("[train]\n", "[train]\nfinetune_lr_ratio = 1e30\n")
    )
    result = bench.run("--cnnbench-quadrant=q4", "--cnnbench-head=gap", "--junitxml=junit.xml", suite=suite)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=2, failed=2)
    result.stdout.fnmatch_lines([
        "*_ lenet5-s1-q4-gap _*", "lenet5-s1-q4-gap diverged: training loss became nan at step *",
        "*_ lenet5-s2-q4-gap _*", "lenet5-s2-q4-gap diverged: training loss became nan at step *",
        "FAILED diverge.toml::lenet5-s1-q4-gap*", "FAILED diverge.toml::lenet5-s2-q4-gap*",
    ])  # fmt: skip

    report, run_dir = bench.report()
    assert report["finished"] is not None
    statuses = {sid: s["status"] for sid, s in _by_id(report).items()}
    assert statuses == {"lenet5-s1-q4-gap": "diverged", "lenet5-s2-q4-gap": "diverged",
                        "lenet5-s3-q4-gap": "passed", "lenet5-scratch-q4-gap": "passed"}  # fmt: skip
    diverged = _by_id(report)["lenet5-s1-q4-gap"]
    assert "training loss became" in diverged["error"] and diverged["metrics"]["test_accuracy"] is None
    assert report["summary"]["by_status"] == {"passed": 2, "regressed": 0, "diverged": 2, "error": 0}
    assert "| `lenet5-s1-q4-gap` | diverged |" in (run_dir / "report.md").read_text()

    # JUnit XML names each item by its scenario under the suite file's classname, with its status and accuracy
    cases = ElementTree.parse(bench.path / "junit.xml").findall(".//testcase")
    assert {(c.get("classname"), c.get("name")) for c in cases} == {("diverge.toml", sid) for sid in statuses}
    for case in cases:
        properties = {p.get("name"): p.get("value") for p in case.iter("property")}
        assert properties["cnnbench_status"] == statuses[case.get("name")]
        assert (case.find("failure") is not None) == (statuses[case.get("name")] == "diverged")
    # --lf runs the two that failed again, by their node ids
    last_failed = bench.collect("--cnnbench-quadrant=q4", "--cnnbench-head=gap", "--lf", suite=suite)
    assert sorted(last_failed) == ["lenet5-s1-q4-gap", "lenet5-s2-q4-gap"]


def test_erroring_scenario_fails_alone_and_ini_twins_place_report_and_cache(
    pytester: pytest.Pytester, tiny_suite_text: str, shared_cache: Path
) -> None:
    # A user's head, registered from a conftest, that cannot be built: its scenarios error, the others run on.
    pytester.makeconftest("""
        from cnnbench.engine.heads import HEADS

        @HEADS.register("boom")
        class BoomHead:
            def __init__(self, *args, **kwargs):
                raise RuntimeError("the boom head cannot be built")
    """)
    (pytester.path / "broken.toml").write_text(
        tiny_suite_text.replace('heads = ["gap", "fc"]', 'heads = ["gap", "boom"]')
    )
    pytester.makefile(".ini", pytest="\n".join([
        "[pytest]", "cnnbench = true", "cnnbench_suite = broken.toml", "cnnbench_quadrant = q4",
        "cnnbench_strategy = s2,scratch", "cnnbench_report = ini-reports", f"cnnbench_cache = {shared_cache}",
    ]))  # fmt: skip
    result = pytester.runpytest_subprocess(timeout=600)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=2, failed=2)
    result.stdout.fnmatch_lines([
        "*lenet5-s2-q4-boom error: RuntimeError: the boom head cannot be built*",
        "FAILED broken.toml::lenet5-s2-q4-boom*",
    ])  # fmt: skip
    result.stdout.fnmatch_lines([f"[[]cnnbench[]] pretrained lenet5: * ({shared_cache}/pretrained/lenet5-*)"])

    report, _ = read_report(pytester.path / "ini-reports")
    records = _by_id(report)
    assert {sid: s["status"] for sid, s in records.items()} == {
        "lenet5-s2-q4-gap": "passed", "lenet5-s2-q4-boom": "error",
        "lenet5-scratch-q4-gap": "passed", "lenet5-scratch-q4-boom": "error",
    }  # fmt: skip
    error = records["lenet5-s2-q4-boom"]
    assert error["error"] == "RuntimeError: the boom head cannot be built"
    assert "Traceback" in error["traceback"] and error["metrics"]["test_accuracy"] is None
    assert not (pytester.path / "reports").exists()


# ---------------------------------------------------------------------------------- the gate and pytest-benchmark


GATED = "[gate]\naccuracy_drop = 0.02\nthroughput_drop = 0.9\n"  # CPU timings of tiny steps jitter under -n 2
GATE_ONLY = ("--cnnbench-quadrant=q4", "--cnnbench-head=gap", "--cnnbench-strategy=s3,scratch")


def test_baseline_saved_then_gated_and_pytest_benchmark_keeps_the_metrics(bench: Bench) -> None:
    suite = bench.write_suite("gated.toml", bench.suite_text + GATED)
    store = f"file://{bench.path / 'bench-store'}"
    storage = f"--benchmark-storage={store}"
    saved = bench.run(*GATE_ONLY, "--cnnbench-save-baseline=base/smoke.json", "--benchmark-autosave", storage,
                      suite=suite)  # fmt: skip
    assert saved.ret == 0, saved.stdout.str()
    saved.stdout.fnmatch_lines([f"baseline saved: {bench.path / 'base' / 'smoke.json'}"])
    baseline = json.loads((bench.path / "base" / "smoke.json").read_text())
    assert baseline["finished"] and {s["id"] for s in baseline["scenarios"]} == {
        "lenet5-s3-q4-gap",
        "lenet5-scratch-q4-gap",
    }
    (autosaved,) = (bench.path / "bench-store").glob("*/0001_*.json")
    infos = {b["name"]: b["extra_info"] for b in json.loads(autosaved.read_text())["benchmarks"]}
    for scenario in baseline["scenarios"]:
        assert infos[scenario["id"]]["test_accuracy"] == scenario["metrics"]["test_accuracy"]

    # The same commit against its own baseline passes, and pytest-benchmark compares the two runs' timings.
    again = bench.run(*GATE_ONLY, "--cnnbench-baseline=base/smoke.json", "--benchmark-autosave",
                      "--benchmark-compare=0001", storage, suite=suite)  # fmt: skip
    assert again.ret == 0, again.stdout.str()
    again.assert_outcomes(passed=2)
    again.stderr.fnmatch_lines(["Comparing against benchmarks from: *0001_*"])
    for run in ("0001_*", "NOW"):  # pytest-benchmark orders its rows by time: check each row on its own
        again.stdout.fnmatch_lines([f"lenet5-s3-q4-gap ({run})*"])
    again.stdout.fnmatch_lines(["gate vs baseline run *-tiny: 2 groups — 2 passed, 0 regressed, 0 new, 0 no result",
                                "  (*smoke.json)", "throughput gated: same hardware and software (fingerprint *)",
                                "throughput of 2 arch × strategy × head programs (median over quadrants and seeds): "
                                "2 passed"])  # fmt: skip
    report = load_report(bench.reports / "latest" / "report.json")
    assert report["gate"]["counts"]["passed"] == 2 and all(s["status"] == "passed" for s in report["scenarios"])
    cli = Path(sys.executable).with_name("pytest-benchmark")
    compare = subprocess.run([str(cli), f"--storage={store}", "compare", "0001", "0002", "--columns=median"],
                             capture_output=True, text=True, cwd=bench.path, timeout=120)  # fmt: skip
    assert compare.returncode == 0, compare.stderr
    assert "lenet5-scratch-q4-gap (0001" in compare.stdout and "(0002" in compare.stdout

    # A baseline of another suite is refused before anything runs, naming both suites, unless asked for.
    other = bench.write_suite("other.toml", bench.suite_text.replace('name = "tiny"', 'name = "other"') + GATED)
    options = [*GATE_ONLY, "--cnnbench-baseline=base/smoke.json", "--collect-only", "-q"]
    refused = bench.run(*options, suite=other, inprocess=True)
    assert refused.ret == pytest.ExitCode.USAGE_ERROR
    refused.stderr.fnmatch_lines(["ERROR: cnnbench: baseline */base/smoke.json is a report of suite 'tiny', not of "
                                  "'other': its accuracies come from other budgets and data. Gate against a baseline "
                                  "of 'other' (save one with --cnnbench-save-baseline), or pass "
                                  "--cnnbench-baseline-any-suite to gate against it anyway"])  # fmt: skip
    assert bench.run(*options, "--cnnbench-baseline-any-suite", suite=other, inprocess=True).ret == 0

    # A baseline whose s3 was 30 points better and whose scratch step was 100× faster: both regress, each in its
    # own item on the xdist worker that ran it (--dist loadgroup), with the values and the tolerance; the workers'
    # records merge into the one report, which says so.
    doctored = json.loads((bench.path / "base" / "smoke.json").read_text())
    for scenario in doctored["scenarios"]:
        if scenario["strategy"] == "s3":
            scenario["metrics"]["test_accuracy"] += 0.3
        else:
            scenario["metrics"]["train_images_per_s"] *= 100
    (bench.path / "doctored.json").write_text(json.dumps(doctored))
    gated = bench.run(*GATE_ONLY, "--cnnbench-baseline=doctored.json", "-n", "2", "--dist", "loadgroup", suite=suite)
    assert gated.ret == pytest.ExitCode.TESTS_FAILED
    gated.assert_outcomes(failed=2)
    gated.stdout.fnmatch_lines([
        "lenet5-s3-q4-gap regressed against the baseline: test accuracy *% (1 seed) in the baseline -> *% (1 seed) "
        "now: dropped 30.0 pts, tolerance 2.0 pts (accuracy_drop 2.0 pts, 2 x noise 0.0 pts)",
    ])  # fmt: skip
    gated.stdout.fnmatch_lines(
        [
            "lenet5-scratch-gap throughput regressed against the baseline (median over 1 -> 1 "
            "scenarios): train throughput * -> * images/s (x0.0*; tolerance: at least x0.10)"
        ]
    )
    report = load_report(bench.reports / "latest" / "report.json")
    assert len([p for p in bench.reports.iterdir() if p.name != "latest"]) == 3  # the workers wrote no report
    assert [s["id"] for s in report["scenarios"]] == ["lenet5-s3-q4-gap", "lenet5-scratch-q4-gap"]
    assert [s["status"] for s in report["scenarios"]] == ["regressed", "regressed"] and report["finished"]
    assert report["summary"]["by_status"]["regressed"] == 2 and report["gate"]["regressed"] == ["lenet5-s3-q4-gap"]
    assert report["gate"]["throughput_regressed"] == ["lenet5-scratch-gap"]
    accuracy = {s["strategy"]: s["metrics"]["test_accuracy"] for s in report["scenarios"]}
    gains = {s["strategy"]: s["metrics"]["transfer_gain"] for s in report["scenarios"]}  # over the merged records
    assert gains == {"s3": pytest.approx(accuracy["s3"] - accuracy["scratch"]), "scratch": 0.0}
    # the profile sums the two workers' phases (one scenario each) and adds the controller's report writing
    profile = report["profile"]
    phases = {p["name"]: p for p in profile["phases"]}
    assert profile["processes"] == 3 and phases["train"]["calls"] == phases["timing"]["calls"] == 2
    # process time: the workers' wall time (their training within it) and the controller's phases (its writing)
    assert profile["process_s"] > phases["train"]["seconds"] + phases["report"]["seconds"]
    assert profile["wall_s"] > phases["report"]["seconds"] > 0


# ---------------------------------------------------------------------------------------------------- shards


SHARDED = "seeds = [0]\n", "seeds = [0, 1]\n"  # two seeds, so a group has seeds to keep together
SHARD_ONLY = ("--cnnbench-quadrant=q4", "--cnnbench-head=gap")  # 4 programs of 2 scenarios each


def test_shards_collect_disjoint_whole_programs_that_cover_the_selection(bench: Bench) -> None:
    suite = bench.write_suite("seeded.toml", bench.suite_text.replace(*SHARDED))
    whole = bench.collect(*SHARD_ONLY, suite=suite)
    parts = [bench.collect(*SHARD_ONLY, f"--cnnbench-shard={k}/3", suite=suite) for k in (1, 2, 3)]
    assert len(whole) == 8 and all(parts) and sorted(itertools.chain(*parts)) == sorted(whole)
    part_of = {i: k for k, part in enumerate(parts) for i in part}
    for program in {re.sub(r"-q4-gap-seed\d$", "", i) for i in whole}:  # both seeds of a program in one part
        assert part_of[f"{program}-q4-gap-seed0"] == part_of[f"{program}-q4-gap-seed1"]
    empty = bench.run("--collect-only", *SHARD_ONLY, "--cnnbench-shard=5/5", suite=suite, inprocess=True)
    assert empty.ret == pytest.ExitCode.USAGE_ERROR
    empty.stderr.fnmatch_lines(["*shard 5/5 has no scenarios: the 8 selected scenarios make 4 programs*use at "
                                "most 4 parts"])  # fmt: skip


def test_a_suite_run_as_three_shards_merges_into_the_whole_runs_report_and_gate(bench: Bench) -> None:
    """Three parts merged hold the whole run's scenarios and accuracies, and `cnnbench gate` gives the merged
    report the verdicts, counts and exit code the whole run's own gate gave it."""
    suite = bench.write_suite("seeded.toml", (bench.suite_text + GATED).replace(*SHARDED))
    for k in (1, 2, 3):
        part = bench.run(*SHARD_ONLY, f"--cnnbench-shard={k}/3", f"--cnnbench-report={bench.path / 'parts' / str(k)}",
                         suite=suite)  # fmt: skip
        assert part.ret == 0, part.stdout.str()
        part.stdout.fnmatch_lines([f"[[]cnnbench[]] shard {k}/3: * of 4 programs, * of 8 scenarios, about * s*"])
    parts = [str(bench.path / "parts" / str(k) / "latest") for k in (1, 2, 3)]
    assert cli.main(["merge", *parts, "-o", str(bench.path / "merged")]) == 0
    merged = load_report(bench.path / "merged" / "report.json")

    doctored = json.loads(json.dumps(merged))  # a baseline in which s3 was 30 points better
    for scenario in doctored["scenarios"]:
        if scenario["strategy"] == "s3":
            scenario["metrics"]["test_accuracy"] += 0.3
    (bench.path / "doctored.json").write_text(json.dumps(doctored))
    whole = bench.run(*SHARD_ONLY, "--cnnbench-baseline=doctored.json", suite=suite)
    assert whole.ret == pytest.ExitCode.TESTS_FAILED
    whole_report = load_report(bench.reports / "latest" / "report.json")
    code = cli.main(["gate", str(bench.path / "merged"), "--baseline", str(bench.path / "doctored.json"),
                     "-o", str(bench.path / "gated")])  # fmt: skip
    assert code == 1
    gated = load_report(bench.path / "gated" / "report.json")

    def accuracies(report: dict) -> dict[str, float]:
        return {s["id"]: s["metrics"]["test_accuracy"] for s in report["scenarios"]}

    assert [s["id"] for s in gated["scenarios"]] == [s["id"] for s in whole_report["scenarios"]]
    assert accuracies(gated) == accuracies(whole_report)  # the same programs on the same inputs: bit for bit
    assert gated["gate"]["regressed"] == whole_report["gate"]["regressed"] == ["lenet5-s3-q4-gap"]
    for section, name in (("groups", "group"), ("throughput", "program")):
        assert {r[name]: r["verdict"] for r in gated["gate"][section]} == {
            r[name]: r["verdict"] for r in whole_report["gate"][section]
        }
    assert [s["status"] for s in gated["scenarios"]] == [s["status"] for s in whole_report["scenarios"]]
    assert gated["summary"] == whole_report["summary"]
