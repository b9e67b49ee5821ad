"""A suite file as pytest items, in the manner of pytest's "non-python tests": the plugin hands the run's suite
file to :class:`SuiteFile`, whose items are the suite's scenarios (or a hardware suite's bench points), each a
``pytest.Function`` of ``cnnbench.scenarios.test_scenario`` (``cnnbench.bench_items.test_bench``) with the
scenario in its stash. Node ids read ``<suite>::<scenario id>``, e.g. ``suites/mine.toml::resnet18-s1-q1-fc`` or
``smoke::resnet18-s1-q1-fc`` for a built-in suite, so ``-k``, ``--lf``, ``--deselect``, JUnit XML classnames and
pytest-xdist all see one file of named items.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cnnbench.config.suite import builtin_name

RUN = pytest.StashKey[Any]()  # the run's Session or HardwareSession (set by the plugin's pytest_configure)
SUITE_NODE = pytest.StashKey[str]()  # the node id of the run's suite file
ITEM = pytest.StashKey[Any]()  # the Scenario or BenchPoint an item runs


def suite_node_id(path: str | Path, rootpath: Path) -> str:
    """The node id of the suite file at ``path``: a built-in suite's name; else its path relative to pytest's
    rootdir, or its file name when it lies outside the rootdir."""
    name = builtin_name(path)
    if name is not None:
        return name
    absolute = Path(path).absolute()
    try:
        return absolute.relative_to(rootpath).as_posix()
    except ValueError:
        return absolute.name


def item_id(nodeid: str, suite_node: str) -> str | None:
    """The scenario or bench point id of an item's node id (without pytest-xdist's ``@group`` suffix); None for an
    item that is not the suite's."""
    prefix = f"{suite_node}::"
    return nodeid[len(prefix) :].partition("@")[0] if nodeid.startswith(prefix) else None


class SuiteFile(pytest.File):
    """The run's suite file: one item per selected scenario (or bench point), in the suite's order, each marked
    ``cnnbench`` and, for a scenario, ``xdist_group(<program>)`` so ``--dist loadgroup`` keeps a program's
    quadrants and seeds on one worker, where the gate can judge them."""

    def collect(self) -> Iterator[pytest.Item]:
        run = self.config.stash[RUN]
        if hasattr(run, "points"):
            from cnnbench.bench_items import test_bench

            for point in run.points:
                yield self._item(point, test_bench)
            return
        from cnnbench.scenarios import test_scenario

        for scenario in run.scenarios():
            yield self._item(scenario, test_scenario, pytest.mark.xdist_group(scenario.program))

    def _item(self, what: Any, function: Any, *marks: pytest.MarkDecorator) -> pytest.Item:
        item = SuiteItem.from_parent(self, name=what.id, callobj=function)
        item.stash[ITEM] = what
        for mark in (pytest.mark.cnnbench, *marks):
            item.add_marker(mark)
        return item


class SuiteItem(pytest.Function):
    """A scenario's or bench point's item: a function item whose reports name it by its id alone (``_ resnet18-s1-q1-fc
    _`` over its failure), as pytest names a test function, not by the folders and file above it."""

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, self.name


def collect_file(file_path: Path, parent: pytest.Collector) -> SuiteFile | None:
    """``pytest_collect_file``: the run's suite file as a :class:`SuiteFile`; None for any other file."""
    run = parent.config.stash.get(RUN, None)
    if run is None or file_path.resolve() != Path(run.suite.path).resolve():
        return None
    return SuiteFile.from_parent(parent, path=file_path, nodeid=parent.config.stash[SUITE_NODE])
