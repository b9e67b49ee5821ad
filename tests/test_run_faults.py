"""Runs that stop early, share a report folder or cannot write (issue 18): real ``pytest --cnnbench`` processes on
the tiny suite, stopped by real signals — SIGTERM, Ctrl-C's SIGINT to the process group, SIGKILL — once their report
holds a scenario or two. What must hold: every finished scenario is in a valid report marked ``interrupted``, no
baseline is saved from it unless asked, ``latest`` shows one run's complete files, two runs started in the same
second keep both reports, and a path that cannot be written stops the run before it trains (exit 4).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import cnnbench.engine.placement  # noqa: F401  (in-process runs: load the engine's C extensions once, as test_plugin)
from cnnbench.results.schema import load_report
from cnnbench.stopping import StopSignals

SUITE = "tiny.toml"
Q4 = "--cnnbench-quadrant=q4"  # the runs here take one quadrant: one target to build, and half the scenarios
SCENARIOS = 8  # the tiny suite's q4: lenet5 × 4 strategies × 2 heads, one seed
# The conftest of every run here. HOLD: each process stops after its first scenario until a signal ends the wait,
# so a signal always lands mid-run (the q4 runs take seconds). CLOCK: every run starts "in the same second".
CONFTEST = """
import os
import time

if os.environ.get("CLOCK"):
    _strftime = time.strftime
    time.strftime = lambda fmt, *args: "20260101-000000" if fmt == "%Y%m%d-%H%M%S" else _strftime(fmt, *args)


def pytest_runtest_teardown(item):
    if os.environ.get("HOLD") and not getattr(item.session, "held", False):
        item.session.held = True
        time.sleep(300)
"""


def start(path: Path, cache: Path, *args: str, hold: bool = False, clock: bool = False) -> subprocess.Popen:
    """``pytest --cnnbench`` on the tiny suite in ``path``, in its own process group (as a shell runs a job); with
    ``hold``, each of its processes waits after its first scenario, with ``clock`` its run id is fixed."""
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--cnnbench", f"--cnnbench-suite={SUITE}",
               f"--cnnbench-cache={cache}", "--cnnbench-report=reports", *args]  # fmt: skip
    env = os.environ | {"HOLD": "1" if hold else "", "CLOCK": "1" if clock else ""}
    return subprocess.Popen(command, cwd=path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            start_new_session=True)  # fmt: skip


def finish(proc: subprocess.Popen) -> str:
    out, _ = proc.communicate(timeout=300)
    return out


def wait_for_scenarios(reports: Path, proc: subprocess.Popen, n: int) -> dict:
    """The report in ``reports/latest`` once it holds ``n`` scenarios; fails if the run ends first."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the run ended before its report held {n} scenarios:\n{finish(proc)}")
        try:
            report = load_report(reports / "latest" / "report.json")
        except ValueError:  # not written yet
            report = None
        if report is not None and len(report["scenarios"]) >= n:
            return report
        time.sleep(0.2)
    proc.kill()
    pytest.fail(f"no report with {n} scenarios after 300 s:\n{finish(proc)}")


@pytest.fixture
def project(pytester: pytest.Pytester, tiny_suite_text: str) -> Path:
    (pytester.path / SUITE).write_text(tiny_suite_text)
    (pytester.path / "conftest.py").write_text(CONFTEST)
    return pytester.path


def test_sigterm_leaves_a_report_marked_interrupted_and_saves_no_baseline(project: Path, shared_cache: Path) -> None:
    proc = start(project, shared_cache, Q4, "--cnnbench-save-baseline=baseline.json", hold=True)
    wait_for_scenarios(project / "reports", proc, 1)
    proc.send_signal(signal.SIGTERM)  # a cancelled CI job, `timeout`, a batch scheduler
    out = finish(proc)
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, out
    report = load_report(project / "reports" / "latest" / "report.json")
    done = len(report["scenarios"])
    assert report["interrupted"] == "SIGTERM" and report["finished"] and 1 <= done < SCENARIOS
    assert {s["status"] for s in report["scenarios"]} == {"passed"}
    run_dir = (project / "reports" / "latest").resolve()
    assert run_dir.name == report["run_id"] and (run_dir / "report.html").is_file()
    assert (
        f"interrupted (SIGTERM) at {report['finished']}, before all its selected items had run"
        in (run_dir / "report.md").read_text()
    )
    assert f"INTERRUPTED (SIGTERM): the report holds the {done} items that finished" in out
    assert (
        f"not saved as a baseline: it was interrupted (SIGTERM) and {SCENARIOS - done} of its {SCENARIOS} "
        "selected scenarios did not run; run the suite to its end, or pass --cnnbench-save-partial-baseline"
    ) in out
    assert not (project / "baseline.json").exists()


def test_ctrl_c_under_xdist_reports_every_finished_scenario(project: Path, shared_cache: Path) -> None:
    proc = start(project, shared_cache, Q4, "-n", "2", "--cnnbench-save-baseline=baseline.json",
                 "--cnnbench-save-partial-baseline", hold=True)  # fmt: skip
    # Both workers past their first scenario, so neither is still importing: an interrupt inside an import can come
    # out of it as another exception (Python wraps what a class body's __set_name__ raises), an internal error.
    before = wait_for_scenarios(project / "reports", proc, 2)  # written by the controller from the workers' items
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal sends: the controller and its workers
    out = finish(proc)
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, out
    report = load_report(project / "reports" / "latest" / "report.json")
    ids = [s["id"] for s in report["scenarios"]]
    assert report["interrupted"] == "Ctrl-C (SIGINT)" and 1 <= len(set(ids)) == len(ids) < SCENARIOS
    assert {s["id"] for s in before["scenarios"]} <= set(ids)
    assert f"{len(ids)} passed" in out  # pytest counted the same items the report holds
    baseline = load_report(project / "baseline.json")  # asked for: saved, and says what it is
    assert [s["id"] for s in baseline["scenarios"]] == ids and baseline["interrupted"] == "Ctrl-C (SIGINT)"


def test_a_killed_run_and_two_runs_started_in_the_same_second_keep_their_own_folders(
    project: Path, shared_cache: Path
) -> None:
    """Three runs started "in the same second": the first is killed outright once it has written a scenario, then
    two more run at once. Each run keeps its own folder, and ``latest`` always shows
    one run's own files."""
    reports, first = project / "reports", "20260101-000000-tiny"
    proc = start(project, shared_cache, Q4, hold=True, clock=True)
    wait_for_scenarios(reports, proc, 1)
    os.killpg(proc.pid, signal.SIGKILL)
    finish(proc)
    killed = load_report(reports / "latest" / "report.json")
    assert os.readlink(reports / "latest") == killed["run_id"] == first  # relative: the folder can move
    assert killed["finished"] is None and not (reports / first / "report.html").exists()  # never another run's page

    runs = {s: start(project, shared_cache, Q4, f"--cnnbench-strategy={s}", clock=True) for s in ("scratch", "s3")}
    for proc in runs.values():
        out = finish(proc)
        assert proc.returncode == 0, out
    assert sorted(p.name for p in reports.iterdir()) == [first, f"{first}-2", f"{first}-3", "latest"]
    assert load_report(reports / first / "report.json") == killed  # the killed run's report is kept as it was
    seen = {}
    for run_dir in (reports / f"{first}-2", reports / f"{first}-3"):
        report = load_report(run_dir / "report.json")
        assert report["run_id"] == run_dir.name and report["finished"]
        assert sorted(p.name for p in run_dir.iterdir()) == ["report.html", "report.json", "report.md",
                                                             "results.csv", "run.log"]  # fmt: skip
        assert (run_dir / "run.log").read_text().count("[2/2]") == 1  # its own progress, not the other run's
        (strategy,) = {s["strategy"] for s in report["scenarios"]}
        seen[strategy] = sorted(s["id"] for s in report["scenarios"])
    assert seen == {s: [f"lenet5-{s}-q4-fc", f"lenet5-{s}-q4-gap"] for s in ("scratch", "s3")}
    assert os.readlink(reports / "latest") in (f"{first}-2", f"{first}-3")


# ----------------------------------------------------------------------------------------------- outputs


@pytest.mark.parametrize(
    ("option", "make", "expected"),
    [
        ("--cnnbench-report=out", lambda p: (p / "out").write_text(""),
         "--cnnbench-report: */out is a file, not a folder"),
        ("--cnnbench-report=f/out", lambda p: (p / "f").write_text(""), "--cnnbench-report: its parent */f is a file"),
        ("--cnnbench-save-baseline=dir", lambda p: (p / "dir").mkdir(),
         "--cnnbench-save-baseline: */dir is a folder; name a file in it, such as */dir/baseline.json"),
        ("--cnnbench-cache=c", lambda p: (p / "c").write_text(""),
         "--cnnbench-cache (or CNNBENCH_CACHE): */c is a file, not a folder*"),
    ],
)  # fmt: skip
def test_a_path_that_cannot_be_written_stops_the_run_before_it_starts(
    pytester: pytest.Pytester, tiny_suite_text: str, option: str, make, expected: str
) -> None:
    (pytester.path / SUITE).write_text(tiny_suite_text)
    make(pytester.path)
    result = pytester.runpytest_inprocess("--cnnbench", f"--cnnbench-suite={SUITE}", "--cnnbench-cache=cache",
                                          "--cnnbench-report=reports", option)  # fmt: skip
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: cnnbench: cannot write where this run would: {expected}. Choose paths*"])
    assert not (pytester.path / "reports").exists() or option.startswith("--cnnbench-save")


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs /proc, which not even root can write")
def test_a_read_only_folder_is_found_before_the_run(pytester: pytest.Pytester, tiny_suite_text: str) -> None:
    (pytester.path / SUITE).write_text(tiny_suite_text)
    result = pytester.runpytest_inprocess("--cnnbench", f"--cnnbench-suite={SUITE}", "--cnnbench-cache=cache",
                                          "--cnnbench-report=/proc/self/reports")  # fmt: skip
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: cnnbench: cannot write where this run would: --cnnbench-report: /proc/self "
                                 "cannot be written (*)*"])  # fmt: skip


def test_a_read_only_cache_serves_a_run_that_builds_nothing_into_it(
    pytester: pytest.Pytester, tiny_suite_text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read-only cache lacking a base the run would build is refused up front; one that a run needs nothing
    built into (scratch alone) is used. (Read-only is simulated: the tests may run as root.)"""
    from cnnbench import plugin

    (pytester.path / SUITE).write_text(tiny_suite_text)
    (pytester.path / "cache").mkdir()
    monkeypatch.setattr(plugin, "unwritable_dir", lambda p: "read-only (simulated)" if p.name == "cache" else None)
    options = ["--cnnbench", f"--cnnbench-suite={SUITE}", "--cnnbench-cache=cache", "--collect-only", "-q"]
    refused = pytester.runpytest_inprocess(*options)
    assert refused.ret == pytest.ExitCode.USAGE_ERROR
    refused.stderr.fnmatch_lines(["*--cnnbench-cache (or CNNBENCH_CACHE): read-only (simulated), and it lacks the "
                                  "pretrained base of lenet5*"])  # fmt: skip
    scratch = pytester.runpytest_inprocess(*options, "--cnnbench-strategy=scratch")
    assert scratch.ret == pytest.ExitCode.OK


FULL_DISK_AT_THE_END = """
import errno

import cnnbench.session


def pytest_sessionfinish(session):  # runs before the plugin's: the final report write finds the disk full
    def full(report, root, plots=True):
        raise OSError(errno.ENOSPC, "No space left on device", str(root))

    cnnbench.session.write_report = full
"""


def test_a_failed_last_write_still_prints_the_summary_and_names_the_path(project: Path, shared_cache: Path) -> None:
    (project / "conftest.py").write_text(FULL_DISK_AT_THE_END)
    proc = start(project, shared_cache, Q4, "--cnnbench-strategy=scratch", "--cnnbench-head=gap")
    out = finish(proc)
    assert proc.returncode == pytest.ExitCode.INTERNAL_ERROR, out
    summary = out.split("= cnnbench =")[-1]  # printed from the report in memory
    assert re.search(r"cnnbench \d{8}-\d{6}-tiny(-\d+)?: 1 scenarios — 1 passed", summary), out
    assert f"cnnbench could not finish writing: [Errno 28] No space left on device: '{project / 'reports'}'" in out
    report = load_report(project / "reports" / "latest" / "report.json")  # the write after the scenario stands
    assert report["finished"] is None and [s["id"] for s in report["scenarios"]] == ["lenet5-scratch-q4-gap"]


# ----------------------------------------------------------------------------------------------- signals

needs_main_thread = pytest.mark.skipif(
    threading.current_thread() is not threading.main_thread(), reason="signal handlers are set on the main thread"
)


@needs_main_thread
def test_a_stop_signal_raises_at_once_asks_for_a_stop_and_a_second_one_gets_the_default() -> None:
    asked: list[str] = []
    signals = StopSignals(asked.append)
    try:
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler runs between two bytecodes: here
        assert signals.reason == "SIGTERM" and asked == ["SIGTERM"]  # pytest's shouldstop, should the raise be lost
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # a second SIGTERM kills at once
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signals.restore()


@needs_main_thread
def test_a_signal_while_the_report_is_written_is_noted_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    signals = StopSignals(lambda reason: pytest.fail("a stop was asked for"))
    try:
        signals.finishing()
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.1)  # no KeyboardInterrupt: the report's last write goes on
        assert "Ctrl-C (SIGINT) while the report is being written: finishing it first; send it again" in caplog.text
        with pytest.raises(KeyboardInterrupt):  # the second acts at once
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
    finally:
        signals.restore()
