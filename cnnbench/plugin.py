"""The pytest plugin (SPEC §7): options, the scenario parametrization, fixtures and the terminal summary.

Registered through the ``pytest11`` entry point. Without ``--cnnbench`` it only adds its options: no suite is
read and nothing heavy is imported. With it, the suite is validated in ``pytest_configure`` — before any
collection or training — and a bad value stops the run with a usage error naming the value and the valid ones.
"""

from __future__ import annotations

import json
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

SESSION = pytest.StashKey["Any"]()
SCENARIO_FILE = Path(__file__).with_name("scenarios.py")
BENCH_FILE = Path(__file__).with_name("bench_items.py")
FROM_SUITE = ("precision", "batch", "mode")  # options whose default is the suite's own setting
TRANSFER_ONLY = ("strategy", "quadrant", "head", "target", "baseline", "save_baseline", "shard", "devices")

# name, help, default (every option also has an ini twin: cnnbench_<name with _>)
OPTIONS = (
    ("suite", "suite to run: a built-in name (smoke, ...) or a path to a .toml", "smoke"),
    ("arch", "run only these archs (comma-separated)", ""),
    ("strategy", "run only these strategies: s1, s2, s3, scratch (comma-separated)", ""),
    ("quadrant", "run only these quadrants: q1..q4 (comma-separated)", ""),
    ("head", "run only these heads: fc, gap, svm (comma-separated)", ""),
    (
        "target",
        "a dataset of your own (a folder of class sub-folders of images, or an .npz): run the suite on it "
        "alone, in the quadrant its size and measured similarity put it",
        "",
    ),
    ("report", "directory the reports are written to (a run writes <dir>/<run-id>/ and <dir>/latest/)", "reports"),
    ("cache", "directory of the pretrained-base and compilation cache", ".cnnbench-cache"),
    (
        "baseline",
        "a stored report.json to gate against: a scenario whose accuracy (or, on the same hardware, "
        "throughput) regressed beyond the suite's [gate] tolerances fails",
        "",
    ),
    ("save-baseline", "store this run's report at this path, for later runs' --cnnbench-baseline", ""),
    (
        "precision",
        "fp32, or bf16 mixed precision (params, optimizer state and BatchNorm statistics fp32; convolutions and "
        "matrix products bf16); a hardware suite: the precisions to time (comma-separated)",
        "",
    ),
    (
        "seeds-together",
        "train a group's seeds in one program, vmapped over their stacked states: on, off, or auto (on a GPU or TPU; "
        "off on a CPU, where it measured slower)",
        "auto",
    ),
    (
        "devices",
        "N or all: the devices each scenario trains, evaluates and is timed on, data-parallel (the global batch "
        "split over them); default one on a CPU, all on an accelerator or in a multi-process job",
        "",
    ),
    (
        "shard",
        "K/N: run only the K-th of N parts of the selected scenarios, split by their estimated cost with each "
        "program (arch × strategy × head) kept whole; `cnnbench merge` joins the parts' reports",
        "",
    ),
    ("batch", "a hardware suite: the batch sizes to time instead of the suite's (comma-separated)", ""),
    ("mode", "a hardware suite: the modes to time, train and/or infer (comma-separated)", ""),
)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("cnnbench", "cnnbench: CNN transfer-learning benchmarks")
    group.addoption("--cnnbench", action="store_true", default=None, help="run the cnnbench suite's scenarios")
    parser.addini("cnnbench", "run the cnnbench suite's scenarios (as --cnnbench)", type="bool", default=False)
    group.addoption("--cnnbench-force", action="store_true", default=None,
                    help="run a suite meant for an accelerator (requires_accelerator) on a CPU anyway")  # fmt: skip
    parser.addini("cnnbench_force", "run a suite meant for an accelerator on a CPU anyway (as --cnnbench-force)",
                  type="bool", default=False)  # fmt: skip
    for name, text, default in OPTIONS:
        key = name.replace("-", "_")
        shown = default or ("the suite's" if name in FROM_SUITE else "none")
        group.addoption(
            f"--cnnbench-{name}",
            dest=f"cnnbench_{key}",
            default=None,
            metavar="VALUE",
            help=f"{text} (default: {shown})",
        )
        parser.addini(f"cnnbench_{key}", f"{text} (as --cnnbench-{name})", default=default)


def _option(config: pytest.Config, name: str) -> str:
    value = config.getoption(f"cnnbench_{name}")
    return value if value is not None else config.getini(f"cnnbench_{name}")


def _list_option(config: pytest.Config, name: str) -> tuple[str, ...]:
    """A comma-separated option's values (empty: not given)."""
    return tuple(v.strip() for v in _option(config, name).split(",") if v.strip())


def _path_option(config: pytest.Config, name: str) -> Path:
    """A path option: relative to the working directory on the command line, to the rootdir in the ini."""
    value = config.getoption(f"cnnbench_{name}")
    if value is not None:
        return config.invocation_params.dir / value
    return config.rootpath / config.getini(f"cnnbench_{name}")


def _suite_option(config: pytest.Config) -> str:
    """The suite name or path; an ini path is relative to the rootdir, like the other ini paths."""
    value = config.getoption("cnnbench_suite")
    if value is not None:
        return value
    value = config.getini("cnnbench_suite")
    candidate = config.rootpath / value
    return str(candidate) if candidate.suffix == ".toml" or candidate.exists() else value


def _flag(config: pytest.Config, name: str) -> bool:
    """A boolean option, or its ini twin when the command line does not give it."""
    flag = config.getoption(name)
    return bool(flag if flag is not None else config.getini(name))


def enabled(config: pytest.Config) -> bool:
    """Whether this pytest run is a cnnbench run (``--cnnbench``, or ``cnnbench = true`` in the ini)."""
    return _flag(config, "cnnbench")


@pytest.hookimpl(trylast=True)  # after the terminal reporter exists, so progress lines can print
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "cnnbench: a cnnbench transfer-learning scenario")
    config.addinivalue_line("markers", "xdist_group(name): pytest-xdist --dist loadgroup runs a group on one worker")
    if not enabled(config):
        return
    log = _logger(config)
    _place_worker(config, log)  # before anything imports JAX
    leader = _join_processes(config, log)  # before JAX computes anything
    # only with --cnnbench: without it the plugin imports nothing of cnnbench, and so no JAX (SPEC §7)
    from cnnbench.config.hardware import HardwareSuite
    from cnnbench.config.precision import PRECISIONS
    from cnnbench.config.shard import Shard
    from cnnbench.config.suite import SuiteError, read_suite
    from cnnbench.engine.catalog import registry_catalog
    from cnnbench.results.gate import load_baseline
    from cnnbench.session import COORDINATES, SEEDS_TOGETHER, Filters, Session, cpu_refusal

    try:
        suite = read_suite(_suite_option(config), registry_catalog())
        if isinstance(suite, HardwareSuite):
            _configure_hardware(config, suite, log, leader)
            return
        precision = _option(config, "precision")
        if precision:
            if precision not in PRECISIONS:
                raise SuiteError(f"--cnnbench-precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
            suite = replace(suite, precision=precision)
        for name in ("batch", "mode"):
            if _option(config, name):
                raise SuiteError(f"--cnnbench-{name} applies to a hardware suite; {suite.name!r} is a transfer suite")
        filters = Filters(**{c: _list_option(config, c) for c in COORDINATES})
        filters.check(suite)
        if not _flag(config, "cnnbench_force"):
            refusal = cpu_refusal(suite, filters, _path_option(config, "cache"))
            if refusal:
                raise SuiteError(refusal)
        baseline = load_baseline(_path_option(config, "baseline")) if _option(config, "baseline") else None
        together = _option(config, "seeds_together")
        if together not in SEEDS_TOGETHER:
            raise SuiteError(f"--cnnbench-seeds-together {together!r}: expected one of {', '.join(SEEDS_TOGETHER)}")
        shard = Shard.parse(_option(config, "shard")) if _option(config, "shard") else None
        if _option(config, "target"):
            suite = _placed(config, suite, filters, log)
            filters.check(suite)
        parallel = _devices(_option(config, "devices"), suite, filters)
    except (SuiteError, OSError, ValueError) as exc:  # ValueError: a UserDataError, BaselineError, bad filter
        raise pytest.UsageError(f"cnnbench: {exc}") from None
    session = Session(
        suite,
        filters,
        _path_option(config, "report"),
        _path_option(config, "cache"),
        log=log,
        writes_reports=not _is_xdist_worker(config) and leader,
        baseline=baseline,
        seeds_together=together,
        shard=shard,
        devices=parallel,
    )
    if not session.scenarios():
        raise pytest.UsageError(f"cnnbench: the filters select no scenario of suite {suite.name!r}")
    config.stash[SESSION] = session
    if config.args_source != pytest.Config.ArgsSource.ARGS:
        config.args = [str(SCENARIO_FILE)]  # `pytest --cnnbench` alone runs the suite, not the project's tests


def _configure_hardware(config: pytest.Config, suite: Any, log: Any, leader: bool) -> None:
    """Set up the run of hardware suite ``suite``, narrowed by the arch, batch, precision and mode options."""
    from cnnbench.config.suite import SuiteError
    from cnnbench.session import HardwareSession, narrow

    given = [f"--cnnbench-{name.replace('_', '-')}" for name in TRANSFER_ONLY if _option(config, name)]
    if given:
        raise pytest.UsageError(f"cnnbench: {', '.join(given)} apply to transfer suites; {suite.name!r} is a "
                                "hardware suite (it times archs, it trains nothing)")  # fmt: skip
    try:
        batches = tuple(int(b) for b in _list_option(config, "batch"))
    except ValueError:
        raise pytest.UsageError(f"cnnbench: --cnnbench-batch {_option(config, 'batch')!r}: expected integers such "
                                "as 1,32,128") from None  # fmt: skip
    try:
        suite = narrow(suite, _list_option(config, "arch"), batches, _list_option(config, "precision"),
                       _list_option(config, "mode"))  # fmt: skip
    except SuiteError as exc:
        raise pytest.UsageError(f"cnnbench: {exc}") from None
    config.stash[SESSION] = HardwareSession(suite, suite.points(), _path_option(config, "report"), log=log,
                                            writes_reports=not _is_xdist_worker(config) and leader)  # fmt: skip
    if config.args_source != pytest.Config.ArgsSource.ARGS:
        config.args = [str(BENCH_FILE)]


def _place_worker(config: pytest.Config, log: Any) -> None:
    """pytest-xdist on a GPU machine: a worker gets its own GPU and does not preallocate (``cnnbench.devices``);
    the controller warns when workers will share GPUs."""
    from cnnbench import devices

    if _is_xdist_worker(config):
        try:
            devices.configure_worker(config.workerinput["workerid"])  # type: ignore[attr-defined]  # set by xdist
        except RuntimeError as exc:  # JAX came in first (a conftest imported it): the worker uses every GPU
            log(str(exc))
    elif isinstance(getattr(config.option, "numprocesses", None), int) and config.option.numprocesses > 1:
        warning = devices.sharing_warning(config.option.numprocesses, devices.gpu_count())
        if warning:
            log(warning)


def _join_processes(config: pytest.Config, log: Any) -> bool:
    """A process of a multi-process (multi-host) job — ``JAX_COORDINATOR_ADDRESS`` with ``JAX_NUM_PROCESSES`` and
    ``JAX_PROCESS_ID``, or a cluster JAX detects — joins the others (``jax.distributed``); alone, nothing happens.
    Returns whether this process writes the reports: alone, or process 0 of the job."""
    from cnnbench import devices

    try:
        request = devices.distributed_request()
    except ValueError as exc:
        raise pytest.UsageError(f"cnnbench: {exc}") from None
    if request is None:
        return True
    workers = getattr(config.option, "numprocesses", None)
    if _is_xdist_worker(config) or (isinstance(workers, int) and workers > 0):
        raise pytest.UsageError("cnnbench: a multi-process job (jax.distributed) runs each scenario over every "
                                "process's devices; run it without pytest-xdist's -n")  # fmt: skip
    from cnnbench.engine import hosts  # JAX, only in a multi-process job

    hosts.initialize(request)
    log(f"process {hosts.index()} of {hosts.processes()}: every scenario spans the {hosts.devices()} devices of all "
        "processes; process 0 writes the reports, caches and baseline")  # fmt: skip
    return hosts.leader()


def _devices(value: str, suite: Any, filters: Any) -> int | None:
    """``--cnnbench-devices``: None for the default, else the device count, checked against the devices JAX sees
    and against each selected quadrant's global batch, which must split evenly over them."""
    from cnnbench.config.suite import SuiteError

    if not value:
        return None
    if value != "all" and not (value.isdigit() and int(value) >= 1):
        raise SuiteError(f"--cnnbench-devices {value!r}: expected a device count (1, 2, …) or all")
    import jax  # the devices a count is checked against: only when one is given

    count = jax.device_count() if value == "all" else int(value)
    if count > jax.device_count():
        raise SuiteError(f"--cnnbench-devices {count}: JAX sees {jax.device_count()} device(s) "
                         f"({jax.default_backend()}); pass at most {jax.device_count()} or all")  # fmt: skip
    for quadrant, binding in suite.quadrants.items():
        batch = min(suite.train.batch_size, binding.n_train or suite.train.batch_size)
        if (not filters.quadrant or quadrant in filters.quadrant) and batch % count:
            raise SuiteError(f"--cnnbench-devices {count}: the global batch {batch} of {quadrant} does not divide over "
                             f"{count} devices; choose a device count that divides {batch}, or a [train] batch_size "
                             f"that is a multiple of {count}")  # fmt: skip
    return count


def _placed(config: pytest.Config, suite: Any, filters: Any, log: Any) -> Any:
    """The suite run on ``--cnnbench-target`` alone, in the quadrant the dataset's size and measured similarity
    put it in (pretraining the suite's archs first if they are not cached)."""
    from cnnbench.engine.placement import place_user_target  # loads JAX: only with --cnnbench-target

    archs = [a for a in suite.archs if not filters.arch or a in filters.arch]
    placed, where = place_user_target(suite, _path_option(config, "target"), archs, _path_option(config, "cache"), log)
    log(where.describe())
    return placed


def _logger(config: pytest.Config):
    """Print progress lines live, even while pytest captures a test's output."""

    def log(line: str) -> None:
        capture = config.pluginmanager.getplugin("capturemanager")
        reporter = config.pluginmanager.getplugin("terminalreporter")
        if reporter is None:
            return
        with capture.global_and_fixture_disabled() if capture else nullcontext():
            reporter.write_line(f"[cnnbench] {line}")

    return log


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "cnnbench_bench_point" in metafunc.fixturenames:
        session = metafunc.config.stash.get(SESSION, None)
        points = getattr(session, "points", [])
        metafunc.parametrize(
            "cnnbench_bench_point", [pytest.param(p, id=p.id, marks=pytest.mark.cnnbench) for p in points]
        )
    if "cnnbench_scenario" not in metafunc.fixturenames:
        return
    session = metafunc.config.stash.get(SESSION, None)
    scenarios: list[Any] = getattr(session, "scenarios", list)()  # none in a hardware run
    # xdist_group keeps a program's quadrants and seeds (so each group's seeds too) on one worker under
    # `-n N --dist loadgroup`, so the gate can judge them there
    metafunc.parametrize(
        "cnnbench_scenario",
        [pytest.param(s, id=s.id, marks=[pytest.mark.cnnbench, pytest.mark.xdist_group(s.program)]) for s in scenarios],
    )


@pytest.hookimpl(trylast=True)  # after -k, -m, --lf and other plugins have deselected
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    session = config.stash.get(SESSION, None)
    if session is None or not hasattr(session, "selected_ids"):
        return
    session.selected_ids = _scenario_ids(item.nodeid for item in items)  # the gate needs what was deselected
    if session.shard is not None and session.selected_ids:
        from cnnbench.config.shard import ShardError

        try:
            mine = set(session.take_shard(session.selected_ids))
        except ShardError as exc:
            raise pytest.UsageError(f"cnnbench: {exc}") from None
        others = [item for item in items if _scenario_id(item.nodeid) not in mine]
        if others:
            config.hook.pytest_deselected(items=others)
            items[:] = [item for item in items if _scenario_id(item.nodeid) in mine]


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node: Any, ids: list[str]) -> None:
    """pytest-xdist: the controller collects nothing itself; a worker's collection tells it what was selected."""
    session = node.config.stash.get(SESSION, None)
    if session is not None and hasattr(session, "selected_ids"):
        session.selected_ids = _scenario_ids(ids)


def _scenario_ids(nodeids: Any) -> list[str]:
    return [i for i in map(_scenario_id, nodeids) if i is not None]


def _scenario_id(nodeid: str) -> str | None:
    """The scenario id of a ``test_scenario[<id>]`` node id; None for any other item."""
    prefix, name = "test_scenario[", nodeid.rpartition("::")[2]
    return name[len(prefix) : -1] if name.startswith(prefix) else None


@pytest.fixture(scope="session")
def cnnbench_session(request: pytest.FixtureRequest) -> Any:
    """The run's ``cnnbench.session.Session``: run scenarios through it to get them into the report."""
    session = request.config.stash.get(SESSION, None)
    if session is None:
        pytest.skip("cnnbench scenarios run only with --cnnbench")
    return session


def _is_xdist_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def pytest_sessionfinish(session: pytest.Session) -> None:
    state = session.config.stash.get(SESSION, None)
    if state is None:
        return
    if _is_xdist_worker(session.config):
        workeroutput = session.config.workeroutput  # type: ignore[attr-defined]  # set by pytest-xdist on workers
        workeroutput["cnnbench"] = json.dumps(state.export())
        return
    if not state.writes_reports:  # a multi-process job's process other than 0
        return
    if state.write(finished=True) is None:
        return
    save = _option(session.config, "save_baseline")
    if save:
        state.save_baseline(_path_option(session.config, "save_baseline"))
    if state.unflagged_regressions() and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """pytest-xdist: fold a finished worker's scenario records into the controller's report."""
    state = node.config.stash.get(SESSION, None)
    exported = getattr(node, "workeroutput", {}).get("cnnbench")
    if state is not None and exported:
        state.merge(json.loads(exported))


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    state = config.stash.get(SESSION, None)
    if state is None or state.report is None:
        return
    from cnnbench.report.run import terminal_summary  # only a cnnbench run needs the report layer

    terminalreporter.section("cnnbench")
    for line in terminal_summary(state.report, width=100):
        terminalreporter.write_line(line)
    for name in state.unflagged_regressions():
        terminalreporter.write_line(
            f"FAILED gate: {name} regressed over scenarios that ran on different xdist "
            "workers (use --dist loadgroup to fail its own item)",
            red=True,
        )
    terminalreporter.write_line(
        f"report: {state.run_dir / 'report.md'} (and report.json, report.html; latest/ refreshed)"
    )
    if _option(config, "save_baseline"):
        terminalreporter.write_line(f"baseline saved: {_path_option(config, 'save_baseline')}")
