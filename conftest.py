"""Fixtures shared by cnnbench's own tests: a tiny suite, one pretraining cache for the whole session, and the zoo
tests' abstract models and quick compiles."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

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
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pretraining/compilation cache reused by every test of the session, so lenet5 pretrains once."""
    return tmp_path_factory.mktemp("cnnbench-cache")


@pytest.fixture
def tiny_suite_text() -> str:
    return TINY_SUITE


@pytest.fixture(scope="module")
def quick_compiles() -> Iterator[None]:
    """XLA without its expensive optimisations while a module runs (``jax_disable_most_optimizations``): zoo tests
    check what the models compute, not how fast, and the optimisations cost about half of building and compiling
    each benchmark-scale model. Modules opt in with ``pytestmark = pytest.mark.usefixtures("quick_compiles")``."""
    import jax  # here, not at the top: the plugin tests check that a run without --cnnbench loads no JAX

    previous = jax.config.read("jax_disable_most_optimizations")
    jax.config.update("jax_disable_most_optimizations", True)
    yield
    jax.config.update("jax_disable_most_optimizations", previous)


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
