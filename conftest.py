"""Fixtures shared by cnnbench's own tests: a tiny suite and one pretraining cache for the whole session."""

from __future__ import annotations

from pathlib import Path

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
