"""Placing a user's dataset in its quadrant (SPEC §4): by its size and by its similarity to the source domain as
the suite's own pretrained archs measure it, before any scenario is collected, so the scenarios run, and are
named, in the quadrant the data belongs to.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from cnnbench.config.quadrants import QUADRANT_LABELS, SMALL_MAX, placement, size_class
from cnnbench.config.suite import QuadrantBinding, Suite, SuiteError
from cnnbench.data.user import load_user_dataset
from cnnbench.engine.runner import DATA_SEED, Runner
from cnnbench.engine.similarity import THRESHOLD, Similarity

_UNPLACED = "q1"  # the key the dataset is bound under while it is measured; the Runner gives keys no meaning


@dataclass(frozen=True)
class Placement:
    """Where a user dataset landed and why."""

    name: str
    n_train: int
    measurements: tuple[Similarity, ...]

    @property
    def score(self) -> float:
        return sum(m.score for m in self.measurements) / len(self.measurements)

    @property
    def quadrant(self) -> str:
        return placement(self.n_train, self.score >= THRESHOLD)

    def describe(self) -> str:
        """One line for the terminal: size, score, threshold and the quadrant they give."""
        size = size_class(self.n_train)
        archs = ", ".join(m.arch for m in self.measurements)
        side = "similar" if self.score >= THRESHOLD else "dissimilar"
        return (
            f"target {self.name}: {self.n_train} training images ({size}, at most {SMALL_MAX} is small), similarity "
            f"{self.score:+.2f} over {archs} ({side}: threshold {THRESHOLD:g}) -> runs as {self.quadrant} "
            f"({QUADRANT_LABELS[self.quadrant]})"
        )


def place_user_target(suite: Suite, path: Path, archs: Sequence[str], cache_dir: Path) -> tuple[Suite, Placement]:
    """``suite`` with its quadrant bindings replaced by the dataset at ``path``, bound to the quadrant its size and
    its similarity (mean over ``archs``, pretrained with the suite's recipe; those on imported weights left out) put
    it in. The training budget is the
    suite's for that quadrant (the largest of the suite's budgets if it has none). Raises ``UserDataError`` for
    data that cannot be used, before any pretraining."""
    measuring = [arch for arch in archs if arch not in suite.weights]
    if not measuring:  # the similarity is to cnnbench's glyph source domain: imported weights never saw it
        raise SuiteError(
            f"a dataset of your own is placed by its similarity to cnnbench's source domain, measured with glyph-"
            f"pretrained bases, and every selected arch ({', '.join(archs)}) starts from imported weights; select an "
            "arch without them as well, or bind the dataset to a quadrant in a suite file ([quadrants.qN] target)"
        )
    ds = load_user_dataset(path, suite.img_size, suite.in_chans, DATA_SEED)
    binding = QuadrantBinding(str(path), None, 1, path)
    runner = Runner(replace(suite, quadrants={_UNPLACED: binding}), cache_dir, datasets={_UNPLACED: ds})
    where = Placement(ds.name, ds.n_train, tuple(runner.similarity(arch, _UNPLACED) for arch in measuring))
    steps = (
        suite.quadrants[where.quadrant].steps
        if where.quadrant in suite.quadrants
        else max(b.steps for b in suite.quadrants.values())
    )
    return replace(suite, quadrants={where.quadrant: replace(binding, steps=steps)}), where
