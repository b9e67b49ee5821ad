"""The one place a figure is summed up over seeds and scenarios, and the one definition of noise.

- **Accuracy over seeds**: per group, the mean and sample std (0 for one seed) of the finite test accuracies,
  whatever the scenario's status (a diverged run that still reports an accuracy is evidence against its
  strategy); :func:`over_seeds`.
- **Throughput over scenarios**: the **median** of the positive finite images/s (:func:`median_rate`), which the
  report's tables and plots, the gate and ``cnnbench compare`` all show: a millisecond step timed once per scenario
  on a shared machine is too noisy for a mean.
- **Noise of a comparison of two means**: :func:`tie_noise` (the recommendation check and ``cnnbench compare``:
  the larger std, at least :data:`TIE_FLOOR`) and :func:`difference_noise` (the gate: the standard error of the
  difference, from the pooled std).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from cnnbench.results.records import GroupKey, ScenarioRecord

TIE_FLOOR = 0.01  # one accuracy point, as a fraction: one seed per side cannot declare a loss on less


@dataclass(frozen=True)
class SeedStats:
    """Test accuracy of one group over the seeds that gave one: mean, sample std, count, seeds and values."""

    mean: float
    std: float
    n_seeds: int
    seeds: tuple[int, ...]
    values: tuple[float, ...]

    @classmethod
    def of(cls, pairs: Sequence[tuple[int, float]]) -> SeedStats:
        values = tuple(v for _, v in pairs)
        return cls(statistics.fmean(values), std(values), len(values), tuple(s for s, _ in pairs), values)

    def to_json(self) -> dict[str, Any]:
        return {"mean": self.mean, "std": self.std, "n_seeds": self.n_seeds, "seeds": list(self.seeds),
                "values": list(self.values)}  # fmt: skip


def std(values: Sequence[float]) -> float:
    """Sample standard deviation; 0 for fewer than two values."""
    return statistics.stdev(values) if len(values) > 1 else 0.0


def accuracies(records: Iterable[ScenarioRecord]) -> list[float]:
    """The finite test accuracies of ``records``, in order."""
    return [a for a in (r.test_accuracy for r in records) if a is not None]


def over_seeds(
    records: Iterable[ScenarioRecord], key: Callable[[ScenarioRecord], GroupKey] = lambda r: r.key
) -> dict[GroupKey, SeedStats]:
    """Test accuracy over seeds per group (``key``, the record's own unless told), in first-seen order; records
    without a finite accuracy are skipped, and a group with none has no entry."""
    seeds: dict[GroupKey, list[tuple[int, float]]] = {}
    for record in records:
        if record.test_accuracy is not None:
            seeds.setdefault(key(record), []).append((record.seed, record.test_accuracy))
    return {k: SeedStats.of(pairs) for k, pairs in seeds.items()}


def scratch_means(stats: dict[GroupKey, SeedStats]) -> dict[GroupKey, float]:
    """Mean ``scratch`` accuracy per (arch, quadrant, head) cell: the baseline every transfer gain is taken from."""
    return {key.cell: s.mean for key, s in stats.items() if key.strategy == "scratch"}


def transfer_gain(stats: SeedStats | float | None, scratch: float | None) -> float | None:
    """A mean (or one accuracy) minus the ``scratch`` mean of its cell; None without either."""
    value = stats.mean if isinstance(stats, SeedStats) else stats
    return None if value is None or scratch is None else value - scratch


def tie_noise(a: SeedStats, b: SeedStats) -> float:
    """How far apart two groups' means may be and still tie: the larger sample std, at least TIE_FLOOR."""
    return max(a.std, b.std, TIE_FLOOR)


def pooled_std(a: Sequence[float], b: Sequence[float]) -> float:
    """Pooled sample std of two samples; a one-seed sample has no spread of its own and takes the other's."""
    dof = (len(a) - 1) + (len(b) - 1)
    if dof == 0:
        return 0.0
    return math.sqrt(((len(a) - 1) * std(a) ** 2 + (len(b) - 1) * std(b) ** 2) / dof)


def difference_noise(a: Sequence[float], b: Sequence[float]) -> float:
    """The standard error of the difference of two samples' means: ``s·sqrt(1/n_a + 1/n_b)``, ``s`` pooled."""
    return pooled_std(a, b) * math.sqrt(1 / len(a) + 1 / len(b))


def rates(records: Iterable[ScenarioRecord], metric: str) -> list[float]:
    """The positive finite values of ``metric`` (e.g. ``train_images_per_s``) over ``records``."""
    values = (getattr(r.metrics, metric) for r in records)
    return [v for v in values if v is not None and math.isfinite(v) and v > 0]


def median_rate(records: Iterable[ScenarioRecord], metric: str) -> float | None:
    """The median of ``metric`` over ``records`` (None without a value): how every output sums up a group's or a
    program's images/s."""
    values = rates(records, metric)
    return statistics.median(values) if values else None


def mean_of(records: Iterable[ScenarioRecord], metric: str) -> float | None:
    """The mean of a metric that is not a rate (times, GFLOPs) over ``records``; None without a value."""
    values = [v for v in (getattr(r.metrics, metric) for r in records) if v is not None]
    return statistics.fmean(values) if values else None
