"""The pytest plugin (SPEC §7): options, the suite file's collection, fixtures, progress and the terminal summary.

Registered through the ``pytest11`` entry point. Without ``--cnnbench`` (or ``cnnbench = true`` in the ini) it only
adds its options: no suite is read and nothing heavy is imported. With it, the suite is validated in
``pytest_configure`` — before any collection or training — and a bad value stops the run with a usage error naming
the value and the valid ones. The suite file is then collected like any test file (``cnnbench.items``).

Paths: a path on the command line is relative to the directory pytest was invoked from; one in the ini file, and
the defaults (``reports``, ``.cnnbench-cache``), to the project — the ini file's directory, else the invocation
directory — never to a rootdir that a path argument moved. ``CNNBENCH_CACHE`` overrides the ini's cache.

Progress goes through the ``cnnbench`` logger: printed as ``[cnnbench] …`` lines (``-q`` keeps warnings only, ``-v``
adds debug lines), or by pytest's live logging when ``--log-cli-level``/``log_cli`` is on, and saved as ``run.log``
beside the report.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import replace
from logging.handlers import MemoryHandler
from pathlib import Path
from typing import Any, TextIO

import pytest

from cnnbench import items
from cnnbench.locations import CACHE_ENV, DEFAULT_CACHE, default_cache, unwritable_dir, unwritable_file
from cnnbench.progress import Progress, outcome
from cnnbench.stopping import StopSignals

SESSION = items.RUN
LOG = logging.getLogger("cnnbench")
LOGGING = pytest.StashKey["_Logging"]()
PROGRESS = pytest.StashKey[Any]()
SIGNALS = pytest.StashKey["StopSignals"]()  # SIGINT and SIGTERM stop the run and let it write its report
PYTEST_SESSION = pytest.StashKey[pytest.Session]()
WRITE_ERROR = pytest.StashKey[str]()  # why the run's last report write or baseline save failed
RUN_LOG = "run.log"
FROM_SUITE = ("precision", "batch", "mode")  # options whose default is the suite's own setting
TRANSFER_ONLY = (
    "strategy",
    "quadrant",
    "head",
    "target",
    "baseline",
    "save_baseline",
    "shard",
    "devices",
    "pretrained",
)

# name, metavar, help, default (every option also has an ini twin: cnnbench_<name with _>)
OPTIONS = (
    ("suite", "NAME|PATH", "suite to run: a built-in name (smoke, ...) or a path to a .toml file", "smoke"),
    ("arch", "LIST", "run only these archs", ""),
    ("strategy", "LIST", "run only these strategies: s1, s2, s3, scratch", ""),
    ("quadrant", "LIST", "run only these quadrants: q1..q4", ""),
    ("head", "LIST", "run only these heads: fc, gap, svm", ""),
    (
        "target",
        "PATH",
        "a dataset of your own (a folder of class sub-folders of images, or an .npz): run the suite on it "
        "alone, in the quadrant its size and measured similarity put it",
        "",
    ),
    (
        "report",
        "DIR",
        "directory the reports are written to (a run writes <dir>/<run-id>/ and <dir>/latest/)",
        "reports",
    ),
    (
        "cache",
        "DIR",
        f"directory of the pretrained-base and compilation cache (${CACHE_ENV} overrides the ini's)",
        DEFAULT_CACHE,
    ),
    (
        "baseline",
        "PATH",
        "a stored report.json to gate against: a scenario whose accuracy (or, on the same hardware, "
        "throughput) regressed beyond the suite's [gate] tolerances fails",
        "",
    ),
    ("save-baseline", "PATH", "store this run's report at this path, for later runs' --cnnbench-baseline", ""),
    (
        "precision",
        "NAME",
        "fp32, or bf16 mixed precision (params, optimizer state and BatchNorm statistics fp32; convolutions and "
        "matrix products bf16); a hardware suite: the precisions to time",
        "",
    ),
    (
        "seeds-together",
        "on|off|auto",
        "train a group's seeds in one program, vmapped over their stacked states: on, off, or auto (on a GPU or TPU; "
        "off on a CPU, where it measured slower)",
        "auto",
    ),
    (
        "devices",
        "N|all",
        "the devices each scenario trains, evaluates and is timed on, data-parallel (the global batch split over "
        "them); default one on a CPU, all on an accelerator or in a multi-process job",
        "",
    ),
    (
        "shard",
        "K/N",
        "run only the K-th of N parts of the selected scenarios, split by their estimated cost with each program "
        "(arch × strategy × head) kept whole; `cnnbench merge` joins the parts' reports",
        "",
    ),
    (
        "pretrained",
        "LIST",
        "tags of weights imported with `cnnbench weights import`: each one's arch starts its pretrained strategies "
        "from them instead of the glyph-pretrained base (the suite's [input] must be that arch's canonical one)",
        "",
    ),
    (
        "save-models",
        "DIR",
        "keep each passed scenario's trained model (base and new head) in DIR/<scenario id>/, for "
        "`cnnbench weights export DIR/<scenario id>` to write as a torchvision or timm state dict",
        "",
    ),
    ("batch", "LIST", "a hardware suite: the batch sizes to time instead of the suite's", ""),
    ("mode", "LIST", "a hardware suite: the modes to time, train and/or infer", ""),
)
FLAGS = (  # name, help: store_true options, each with an ini twin
    ("baseline-any-suite", "gate against a --cnnbench-baseline of another suite (refused without it)"),
    ("save-partial-baseline", "let --cnnbench-save-baseline store the report of an interrupted or incomplete run"),
)
LISTS = (
    "arch",
    "strategy",
    "quadrant",
    "head",
    "precision",
    "batch",
    "mode",
    "pretrained",
)  # comma lists, or the option repeated


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("cnnbench", "cnnbench: CNN transfer-learning benchmarks")
    group.addoption("--cnnbench", action="store_true", default=None, help="run the cnnbench suite's scenarios")
    parser.addini("cnnbench", "run the cnnbench suite's scenarios (as --cnnbench)", type="bool", default=False)
    group.addoption("--cnnbench-force", action="store_true", default=None,
                    help="run a suite meant for an accelerator (requires_accelerator) on a CPU anyway")  # fmt: skip
    parser.addini("cnnbench_force", "run a suite meant for an accelerator on a CPU anyway (as --cnnbench-force)",
                  type="bool", default=False)  # fmt: skip
    for name, text in FLAGS:
        group.addoption(f"--cnnbench-{name}", action="store_true", default=None, help=text)
        parser.addini(f"cnnbench_{name.replace('-', '_')}", f"{text} (as --cnnbench-{name})", type="bool",
                      default=False)  # fmt: skip
    for name, metavar, text, default in OPTIONS:
        key = name.replace("-", "_")
        shown = default or ("the suite's" if name in FROM_SUITE else "none")
        listed = key in LISTS
        group.addoption(
            f"--cnnbench-{name}",
            dest=f"cnnbench_{key}",
            default=None,
            action="append" if listed else "store",
            metavar=metavar,
            help=f"{text}{' (comma-separated, or the option repeated)' if listed else ''} (default: {shown})",
        )
        parser.addini(f"cnnbench_{key}", f"{text} (as --cnnbench-{name})", default=default)


def _option(config: pytest.Config, name: str) -> str:
    """An option's value: the command line's (a list option's values joined by commas), else the ini's."""
    value = config.getoption(f"cnnbench_{name}")
    if value is None:
        return config.getini(f"cnnbench_{name}")
    return ",".join(value) if isinstance(value, list) else value


def _list_option(config: pytest.Config, name: str) -> tuple[str, ...]:
    """A list option's values (empty: not given); a value that lists nothing (``,,``) is a usage error, not "all"."""
    text = _option(config, name)
    values = tuple(v.strip() for v in text.split(",") if v.strip())
    if text.strip() and not values:
        raise pytest.UsageError(f"cnnbench: --cnnbench-{name} {text!r} names no value; name one, or leave the "
                                "option out for all")  # fmt: skip
    return values


def project_dir(config: pytest.Config) -> Path:
    """Where the ini's relative paths and the default paths are anchored: the ini file's directory, else the
    directory pytest was invoked from (never the rootdir, which path arguments move)."""
    return config.inipath.parent if config.inipath else config.invocation_params.dir


def _path_option(config: pytest.Config, name: str) -> Path:
    """A path option: relative to the invocation directory on the command line, to the project in the ini; the
    cache's ini value or default gives way to ``CNNBENCH_CACHE``."""
    value = config.getoption(f"cnnbench_{name}")
    if value is not None:
        return config.invocation_params.dir / value
    ini = config.getini(f"cnnbench_{name}")
    if name == "cache" and (os.environ.get(CACHE_ENV, "").strip() or ini == DEFAULT_CACHE):
        return default_cache(project_dir(config))
    return project_dir(config) / ini


def _suite_option(config: pytest.Config) -> str:
    """The suite: a built-in name as it is (a folder of that name never shadows it), else a path — relative to
    the invocation directory on the command line, to the project in the ini."""
    from cnnbench.config.suite import builtin_suites

    value = config.getoption("cnnbench_suite")
    base = config.invocation_params.dir
    if value is None:
        value, base = config.getini("cnnbench_suite"), project_dir(config)
    path = base / value
    if value in builtin_suites() or (path.suffix != ".toml" and not path.exists()):
        return value  # a built-in name, or a name that is neither (read_suite lists the built-in ones)
    return str(path)


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
    config.stash[LOGGING] = _Logging(config)  # progress goes through the `cnnbench` logger (module docstring)
    _stop_on_signals(config)
    _place_worker(config)  # before anything imports JAX
    leader = _join_processes(config)  # before JAX computes anything
    # only with --cnnbench: without it the plugin imports nothing of cnnbench, and so no JAX (SPEC §7)
    from cnnbench.config.hardware import HardwareSuite
    from cnnbench.config.precision import PRECISIONS
    from cnnbench.config.shard import Shard
    from cnnbench.config.strategies import STRATEGIES
    from cnnbench.config.suite import SuiteError, read_suite
    from cnnbench.engine.catalog import registry_catalog
    from cnnbench.results.gate import load_baseline, other_suite
    from cnnbench.session import (
        COORDINATES,
        SEEDS_TOGETHER,
        Filters,
        Session,
        cpu_refusal,
        place_target,
        use_weights,
    )

    try:
        suite = read_suite(_suite_option(config), registry_catalog())
        if isinstance(suite, HardwareSuite):
            _configure_hardware(config, suite, leader)
            return
        precision = _option(config, "precision")
        if precision:  # a transfer run has one precision
            if precision not in PRECISIONS:
                raise SuiteError(f"--cnnbench-precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
            suite = replace(suite, precision=precision)
        for name in ("batch", "mode"):
            if _option(config, name):
                raise SuiteError(f"--cnnbench-{name} applies to a hardware suite; {suite.name!r} is a transfer suite")
        suite = use_weights(suite, _list_option(config, "pretrained"), _path_option(config, "cache"))
        filters = Filters(**{c: _list_option(config, c) for c in COORDINATES})
        filters.check(suite)
        baseline = load_baseline(_path_option(config, "baseline")) if _option(config, "baseline") else None
        mismatch = baseline and other_suite(baseline, suite.name)
        if mismatch and not _flag(config, "cnnbench_baseline_any_suite"):
            raise SuiteError(mismatch)
        if not _is_xdist_worker(config) and leader:
            based = [s.arch for s in filters.select(suite.scenarios()) if STRATEGIES.get(s.strategy).pretrained]
            _check_outputs(config, suite, list(dict.fromkeys(based)))
        if not _flag(config, "cnnbench_force"):
            refusal = cpu_refusal(suite, filters, _path_option(config, "cache"))
            if refusal:
                raise SuiteError(refusal)
        together = _option(config, "seeds_together")
        if together not in SEEDS_TOGETHER:
            raise SuiteError(f"--cnnbench-seeds-together {together!r}: expected one of {', '.join(SEEDS_TOGETHER)}")
        shard = Shard.parse(_option(config, "shard")) if _option(config, "shard") else None
        if _option(config, "target"):
            suite = place_target(suite, filters, _path_option(config, "target"), _path_option(config, "cache"))
            filters.check(suite)
        parallel = _devices(_option(config, "devices"), suite, filters)
    except (SuiteError, OSError, ValueError) as exc:  # ValueError: a UserDataError, BaselineError, bad filter
        raise pytest.UsageError(f"cnnbench: {exc}") from None
    session = Session(
        suite,
        filters,
        _path_option(config, "report"),
        _path_option(config, "cache"),
        writes_reports=not _is_xdist_worker(config) and leader,
        baseline=baseline,
        seeds_together=together,
        shard=shard,
        devices=parallel,
        save_models=_path_option(config, "save_models") if _option(config, "save_models") else None,
    )
    if not session.scenarios():
        raise pytest.UsageError(f"cnnbench: the filters select no scenario of suite {suite.name!r}")
    _begin_run(config, session)


def _begin_run(config: pytest.Config, run: Any) -> None:
    """Keep the run, save its log beside its report, and point collection at its suite file: ``pytest --cnnbench``
    alone collects the suite only; ``cnnbench = true`` in the ini adds it to what the project collects; explicit
    path arguments are left as they are (name the suite file among them to run its items)."""
    config.stash[SESSION] = run
    config.stash[items.SUITE_NODE] = items.suite_node_id(run.suite.path, config.rootpath)
    config.stash[LOGGING].save(run.claim if run.writes_reports else None)
    if run.writes_reports:
        _import_what_the_report_needs()
        config.pluginmanager.register(_Progress(config), "cnnbench-progress")
        config.pluginmanager.register(_Handover(run), "cnnbench-handover")
    if config.args_source == pytest.Config.ArgsSource.ARGS:
        return
    config.args = [run.suite.path] if config.getoption("cnnbench") else [*config.args, run.suite.path]


def _import_what_the_report_needs() -> None:
    """Import now, before any item runs, what the process that writes the report imports later: the progress
    estimate (the engine) and the page's plots (matplotlib). A Ctrl-C that lands inside an import leaves a
    half-initialised library behind (matplotlib was seen so, in a pytest-xdist controller importing the engine for
    its first progress line), and the final report then fails to render."""
    import cnnbench.engine.cost
    import cnnbench.report.html
    import cnnbench.report.plots  # noqa: F401


def _check_outputs(config: pytest.Config, suite: Any, based: list[str]) -> None:
    """The report folder, the baseline to save, the models' folder and the cache, checked before anything runs, so a
    path that cannot be written stops the run now and not after its work. A read-only cache is enough when it holds
    the pretrained base of every arch in ``based`` (the selected archs that train from one): nothing is built into
    it then."""
    from cnnbench.config.suite import SuiteError

    problems = []
    report = unwritable_dir(_path_option(config, "report"))
    if report:
        problems.append(f"--cnnbench-report: {report}")
    if _option(config, "save_baseline"):
        baseline = unwritable_file(_path_option(config, "save_baseline"))
        if baseline:
            problems.append(f"--cnnbench-save-baseline: {baseline}")
    if _option(config, "save_models"):
        models = unwritable_dir(_path_option(config, "save_models"))
        if models:
            problems.append(f"--cnnbench-save-models: {models}")
    cache = _path_option(config, "cache")
    read_only = unwritable_dir(cache)
    if read_only:
        from cnnbench.engine.runner import Runner

        runner = Runner(suite, cache) if based and cache.is_dir() else None
        missing = [arch for arch in based if runner is None or not runner.is_pretrained(arch)]
        if missing or not cache.is_dir():
            lacks = f", and it lacks the pretrained base of {', '.join(missing)}" if cache.is_dir() else ""
            problems.append(f"--cnnbench-cache (or {CACHE_ENV}): {read_only}{lacks}")
        else:
            LOG.info(f"the cache {cache} is read-only; it holds the base of every arch this run pretrains")
    if problems:
        raise SuiteError(f"cannot write where this run would: {'; '.join(problems)}. Choose paths that can be "
                         "written, or fix their permissions, before the run starts")  # fmt: skip


def _configure_hardware(config: pytest.Config, suite: Any, leader: bool) -> None:
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
        if not _is_xdist_worker(config) and leader:
            _check_outputs(config, suite, [])
    except SuiteError as exc:
        raise pytest.UsageError(f"cnnbench: {exc}") from None
    _begin_run(config, HardwareSession(suite, suite.points(), _path_option(config, "report"),
                                       writes_reports=not _is_xdist_worker(config) and leader))  # fmt: skip


def _place_worker(config: pytest.Config) -> None:
    """pytest-xdist on a GPU machine: a worker gets its own GPU and does not preallocate (``cnnbench.devices``);
    the controller warns when workers will share GPUs."""
    from cnnbench import devices

    if _is_xdist_worker(config):
        try:
            devices.configure_worker(config.workerinput["workerid"])  # type: ignore[attr-defined]  # set by xdist
        except RuntimeError as exc:  # JAX came in first (a conftest imported it): the worker uses every GPU
            LOG.warning(str(exc))
    elif isinstance(getattr(config.option, "numprocesses", None), int) and config.option.numprocesses > 1:
        warning = devices.sharing_warning(config.option.numprocesses, devices.gpu_count())
        if warning:
            LOG.warning(warning)


def _join_processes(config: pytest.Config) -> bool:
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
    LOG.info(f"process {hosts.index()} of {hosts.processes()}: every scenario spans the {hosts.devices()} devices of "
             "all processes; process 0 writes the reports, caches and baseline")  # fmt: skip
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


class _TerminalHandler(logging.Handler):
    """Prints the ``cnnbench`` logger's records as ``[cnnbench] …`` lines, live, even while pytest captures a
    test's output."""

    def __init__(self, config: pytest.Config, level: int) -> None:
        super().__init__(level)
        self.config = config

    def emit(self, record: logging.LogRecord) -> None:
        reporter = self.config.pluginmanager.getplugin("terminalreporter")
        if reporter is None:
            return
        capture = self.config.pluginmanager.getplugin("capturemanager")
        with capture.global_and_fixture_disabled() if capture else nullcontext():
            reporter.write_line(f"[cnnbench] {self.format(record)}")


class _RunLog(logging.Handler):
    """The run's ``run.log``, opened when the first line is written: only then is the run's folder claimed, so a
    run that logs nothing (``--collect-only``) leaves no folder behind."""

    def __init__(self, folder: Callable[[], Path]) -> None:
        super().__init__()
        self.folder = folder
        self.file: TextIO | None = None
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            if self.file is None:
                self.file = open(self.folder() / RUN_LOG, "a", encoding="utf-8")  # noqa: SIM115  # closed in close()
            self.file.write(self.format(record) + "\n")
            self.file.flush()
        except Exception:
            self.handleError(record)

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
        super().close()


class _Logging:
    """What a run adds to logging, taken away again when pytest unconfigures: the ``cnnbench`` logger's level, its
    terminal line printer, the lines logged before the run's folder is known (kept for ``run.log``), the log file."""

    def __init__(self, config: pytest.Config) -> None:
        verbosity = config.get_verbosity()
        live = config.getoption("log_cli_level", None) is not None or bool(config.getini("log_cli"))
        self.level = LOG.level
        LOG.setLevel(logging.DEBUG if verbosity > 0 or live else logging.INFO)
        self.handlers: list[tuple[logging.Logger, logging.Handler]] = []
        if not logging.root.handlers:
            # absl (under orbax) calls logging.basicConfig() when it first logs into a root without handlers, which
            # would print every propagated record to stderr once more
            self._add(logging.root, logging.NullHandler())
        # pytest's live logging prints the records itself, once its session starts; until then (placing a user's
        # dataset, say) this prints them at its level
        level = _level(config.getoption("log_cli_level", None) or config.getini("log_level")) if live else None
        self.printer = self._add(LOG, _TerminalHandler(config, level or (logging.WARNING if verbosity < 0 else 0)))
        self.live = live
        self.early = self._add(
            LOG, MemoryHandler(capacity=100_000, flushLevel=logging.CRITICAL + 1, flushOnClose=False)
        )

    def _add(self, logger: logging.Logger, handler: logging.Handler) -> Any:
        logger.addHandler(handler)
        self.handlers.append((logger, handler))
        return handler

    def save(self, folder: Callable[[], Path] | None) -> None:
        """Write the run's log into the folder ``folder()`` gives from now on, the lines logged so far first; None:
        keep no log (an xdist worker, a multi-process job's other processes)."""
        if folder is not None:
            self.early.setTarget(self._add(LOG, _RunLog(folder)))
            self.early.flush()
        LOG.removeHandler(self.early)

    def session_started(self) -> None:
        if self.live:
            LOG.removeHandler(self.printer)

    def flush(self) -> None:
        for _, handler in self.handlers:
            handler.flush()

    def close(self) -> None:
        for logger, handler in self.handlers:
            logger.removeHandler(handler)
            handler.close()
        LOG.setLevel(self.level)


def _level(name: str | int | None) -> int | None:
    """A logging level given by name or number (``--log-cli-level``'s), None if not given."""
    if name is None or name == "":
        return None
    return int(name) if str(name).isdigit() else logging.getLevelName(str(name).upper())


def _stop_on_signals(config: pytest.Config) -> None:
    """SIGINT (Ctrl-C) and SIGTERM stop the run (``cnnbench.stopping``): at once, and failing that before the next
    item through pytest's ``session.shouldstop``; pytest then ends the session and the report is written."""

    def stop(reason: str) -> None:
        session = config.stash.get(PYTEST_SESSION, None)
        if session is not None:
            session.shouldstop = reason

    config.stash[SIGNALS] = StopSignals(stop)
    config.add_cleanup(config.stash[SIGNALS].restore)


def pytest_sessionstart(session: pytest.Session) -> None:
    session.config.stash[PYTEST_SESSION] = session
    if LOGGING in session.config.stash:
        session.config.stash[LOGGING].session_started()


def pytest_unconfigure(config: pytest.Config) -> None:
    if LOGGING in config.stash:
        config.stash[LOGGING].close()


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    return items.collect_file(file_path, parent)


@pytest.hookimpl(trylast=True)  # after -k, -m, --lf and other plugins have deselected
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    session = config.stash.get(SESSION, None)
    if session is None or not hasattr(session, "selected_ids"):
        return
    session.selected_ids = _item_ids(config, (item.nodeid for item in items))  # the gate needs what was deselected
    if session.shard is not None and session.selected_ids:
        from cnnbench.config.shard import ShardError

        try:
            mine = set(session.take_shard(session.selected_ids))
        except ShardError as exc:
            raise pytest.UsageError(f"cnnbench: {exc}") from None
        others = [item for item in items if _item_id(config, item.nodeid) not in mine]
        if others:
            config.hook.pytest_deselected(items=others)
            items[:] = [item for item in items if _item_id(config, item.nodeid) in mine]


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node: Any, ids: list[str]) -> None:
    """pytest-xdist: the controller collects nothing itself; a worker's collection tells it what was selected."""
    session = node.config.stash.get(SESSION, None)
    if session is not None and hasattr(session, "selected_ids"):
        session.selected_ids = _item_ids(node.config, ids)


def _item_ids(config: pytest.Config, nodeids: Any) -> list[str]:
    return [i for i in (_item_id(config, n) for n in nodeids) if i is not None]


def _item_id(config: pytest.Config, nodeid: str) -> str | None:
    """The scenario or bench point id of a node id; None for an item that is not the suite's."""
    return items.item_id(nodeid, config.stash[items.SUITE_NODE])


class _Progress:
    """Logs a progress line when one of the suite's items finishes: done / selected, the time so far and an ETA.
    Registered on the process that writes the reports, so under pytest-xdist the controller counts every
    worker's items."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.started = time.perf_counter()
        self.progress: Progress | None = None

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when != "call" and (report.when != "setup" or report.passed):
            return
        name = _item_id(self.config, report.nodeid)
        if name is None:
            return
        run = self.config.stash[SESSION]
        if self.progress is None:
            self.progress = _progress(run, self.started)
        facts: dict[str, Any] = dict(report.user_properties)
        said = outcome(str(facts.get("cnnbench_status", report.outcome)), facts.get("test_accuracy"),
                       facts.get("images_per_s"))  # fmt: skip
        LOG.info(self.progress.done(name, said))


def _progress(run: Any, started: float) -> Progress:
    """The run's progress counter over its selected items, weighted by their estimated cost in a transfer run."""
    if not hasattr(run, "selected_ids"):  # a hardware run: its bench points weigh the same
        return Progress([p.id for p in run.points], started=started)
    from cnnbench.engine.cost import run_estimate  # the estimate builds the targets small: JAX

    selected = set(run.selected_ids)
    scenarios = [s for s in run.scenarios() if s.id in selected]
    return Progress(run.selected_ids, run_estimate(run.suite, scenarios, run.cache_dir), started)


@pytest.fixture
def cnnbench_scenario(request: pytest.FixtureRequest) -> Any:
    """The scenario a suite item runs (``cnnbench.items``)."""
    return request.node.stash[items.ITEM]


@pytest.fixture
def cnnbench_bench_point(request: pytest.FixtureRequest) -> Any:
    """The bench point a hardware suite's item runs (``cnnbench.items``)."""
    return request.node.stash[items.ITEM]


@pytest.fixture(scope="session")
def cnnbench_session(request: pytest.FixtureRequest) -> Any:
    """The run's ``cnnbench.session.Session``: run scenarios through it to get them into the report."""
    session = request.config.stash.get(SESSION, None)
    if session is None:
        pytest.skip("cnnbench scenarios run only with --cnnbench")
    return session


def _is_xdist_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


class _Handover:
    """On the process that writes the reports: takes each record a pytest-xdist worker sends with its item's report
    (``cnnbench.session.RECORD_PROPERTY``) into the run's report as soon as the item finishes, so a run interrupted
    before its workers end still reports every finished scenario. Runs before JUnit XML reads the properties, and
    takes the record out of them."""

    def __init__(self, run: Any) -> None:
        self.run = run

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        from cnnbench.session import RECORD_PROPERTY

        sent = [value for name, value in report.user_properties if name == RECORD_PROPERTY]
        if not sent:
            return
        report.user_properties = [(n, v) for n, v in report.user_properties if n != RECORD_PROPERTY]
        for exported in sent:
            self.run.merge(json.loads(str(exported)))
        self.run.write_quietly()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    state = session.config.stash.get(SESSION, None)
    if state is None:
        return
    if _is_xdist_worker(session.config):
        workeroutput = session.config.workeroutput  # type: ignore[attr-defined]  # set by pytest-xdist on workers
        workeroutput["cnnbench"] = json.dumps(state.export())
        return
    if not state.writes_reports:  # a multi-process job's process other than 0
        return
    session.config.stash[SIGNALS].finishing()
    state.interrupted = _interruption(session, exitstatus)
    session.config.stash[LOGGING].flush()
    try:
        if state.write(finished=True) is None:
            return
        if _option(session.config, "save_baseline"):
            partial = _flag(session.config, "cnnbench_save_partial_baseline")
            state.save_baseline(_path_option(session.config, "save_baseline"), partial=partial)
    except Exception as exc:  # a full disk, a baseline refused (ValueError), a page that failed to render: the
        # summary is still printed from the report in memory, with this error
        session.config.stash[WRITE_ERROR] = str(exc) if isinstance(exc, (OSError, ValueError)) else repr(exc)
        if session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.INTERNAL_ERROR
    if state.unflagged_regressions() and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _interruption(session: pytest.Session, exitstatus: int) -> str | None:
    """Why the run stopped before running what it selected: a signal, or ``-x``/``--maxfail``; None if it did
    not."""
    stopped = session.config.stash[SIGNALS].reason or session.shouldfail or session.shouldstop
    if not stopped and exitstatus == pytest.ExitCode.INTERRUPTED:  # a KeyboardInterrupt not from our handler
        stopped = "Ctrl-C (SIGINT)"
    return str(stopped) if stopped else None


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
    if state.interrupted:
        terminalreporter.write_line(f"INTERRUPTED ({state.interrupted}): the report holds the {len(state.records)} "
                                    "items that finished", red=True)  # fmt: skip
    if state.run_dir is not None:
        terminalreporter.write_line(f"report: {state.run_dir / 'report.md'} (and report.json, report.html, "
                                    f"results.csv, {RUN_LOG}; latest/ points to it)")  # fmt: skip
    error = config.stash.get(WRITE_ERROR, None)
    if error:
        terminalreporter.write_line(f"cnnbench could not finish writing: {error}", red=True)
    elif _option(config, "save_baseline"):
        terminalreporter.write_line(f"baseline saved: {_path_option(config, 'save_baseline')}")
