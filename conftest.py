"""Fixtures shared by cnnbench's own tests: a tiny suite, one pretraining cache for the whole session, and the zoo
tests' abstract models; and XLA without its expensive optimisations while the tests run.

The tests check what cnnbench computes, not how fast: XLA's optimisations cost about half of compiling each program
and compiling is most of the tests' time, so ``JAX_DISABLE_MOST_OPTIMIZATIONS`` is on for a test run and the pytest
runs it starts (set before JAX is imported; a value already in the environment wins). A ``pytest --cnnbench`` run
in this directory loads this file too, and keeps XLA's optimisations: its timings are the benchmark. Throughput is
bounded in benchmarks and in the gate's check of such a run, never in the tests.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

# The report's page and plots (matplotlib), which a run's plugin imports before its first item: loaded here first,
# because pytester drops the modules an in-process run imported, and matplotlib imported a second time in one process
# mixes its classes across the two copies (a GridSpec of one is refused by the other).
import cnnbench.report.html
import cnnbench.report.plots  # noqa: F401
from cnnbench.plugin import enabled

TINY_SUITE = """
name = "tiny"
archs = ["lenet5"]
strategies = ["s1", "s2", "s3", "scratch"]
heads = ["gap", "fc"]
seeds = [0]

[pretrain]
steps = 60
batch_size = 32
learning_rate = 3e-3
eval_size = 200
eval_points = 1

[train]
batch_size = 32
eval_points = 2

[quadrants.q3]
target = "textures"
n_train = 60
steps = 12

[quadrants.q4]
target = "digits"
n_train = 40
steps = 12
"""


@pytest.fixture(scope="session")
def shared_cache(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pretraining/compilation cache reused by every test of the session, so lenet5 pretrains once; under
    pytest-xdist one for all the workers (in the session's temporary directory, above each worker's own): the cache
    is built for concurrent runs, its lock makes one worker pretrain while the others wait, and XLA's persistent
    cache lets a program one worker compiled load in the other."""
    root = tmp_path_factory.getbasetemp()
    if hasattr(request.config, "workerinput"):  # an xdist worker: its basetemp is <session basetemp>/popen-gwN
        root = root.parent
    path = root / "cnnbench-cache"
    path.mkdir(exist_ok=True)
    return path


def pytest_configure(config: pytest.Config) -> None:
    if not enabled(config):  # the project's tests, not a ``pytest --cnnbench`` run, which loads this file too
        os.environ.setdefault("JAX_DISABLE_MOST_OPTIMIZATIONS", "1")


@pytest.fixture(scope="session", autouse=True)
def _persistent_compilation_cache(request: pytest.FixtureRequest) -> None:
    """XLA's persistent compilation cache in the shared cache, where a ``pytest --cnnbench`` run keeps it: a program
    one xdist worker, in-process test or pytest run started by a test compiled loads in the others instead of
    compiling again (set before the session compiles anything). A benchmark run keeps its own cache's."""
    if enabled(request.config):
        return
    from cnnbench.engine.programs import persist  # JAX: not at the top (see ``_abstract``)

    persist(request.getfixturevalue("shared_cache"))


@pytest.fixture(autouse=True)
def _inner_runs_are_not_xdist_workers(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """A pytest run a test starts (``pytester``) is not an xdist worker even when the tests run under ``-n``:
    pytest-benchmark reads the inherited PYTEST_XDIST_WORKER and would disable itself."""
    if "pytester" in request.fixturenames:
        for name in ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_XDIST_TESTRUNUID"):
            monkeypatch.delenv(name, raising=False)


@pytest.fixture
def optimized_compiles() -> Iterator[None]:
    """XLA's full optimisations while a test runs, for the few whose time goes into running their programs (many
    training steps) rather than compiling them; the module docstring says why the rest go without."""
    import jax  # here, not at the top: the plugin tests check that a run without --cnnbench loads no JAX

    previous = jax.config.read("jax_disable_most_optimizations")
    jax.config.update("jax_disable_most_optimizations", False)
    yield
    jax.config.update("jax_disable_most_optimizations", previous)


@pytest.fixture
def tiny_suite_text() -> str:
    return TINY_SUITE


@functools.cache
def _abstract(name: str, **kwargs: object) -> Any:
    from flax import nnx  # here, not at the top: the plugin tests check that a run without --cnnbench loads no JAX

    from cnnbench.zoo import create_model

    return nnx.eval_shape(lambda: create_model(name, **kwargs))


@pytest.fixture(scope="session")
def abstract() -> Callable[..., Any]:
    """``abstract(name, **config)``: the zoo model with shapes only (no memory, no compile), built once per
    session and shared by every test that only reads it."""
    return _abstract
