"""The layer-transfer curve (Yosinski et al. 2014, "How transferable are features in deep neural networks?"):
for one arch, target and head, test accuracy as a function of how many of the pretrained base's stages stay
frozen, from 0 (fine-tune everything) to all (train the head alone), with ``scratch`` as the reference.

A suite asks for it with a ``[layer_transfer]`` table; its points are ``s2`` scenarios cut at every stage
(``Scenario.freeze``), kept out of the strategy tables. This module computes the points; the report layer
(``cnnbench.report``) draws them as tables, terminal lines and a plot.
"""

from __future__ import annotations

from collections.abc import Sequence

from cnnbench.results.aggregate import SeedStats, accuracies, over_seeds, scratch_means
from cnnbench.results.records import GroupKey, LayerPoint, ScenarioRecord

PLOT = "layer_transfer.png"


def points(scenarios: Sequence[ScenarioRecord]) -> list[LayerPoint]:
    """Per (arch, quadrant, head, frozen count): test accuracy over seeds and the last frozen stage, plus the
    ``scratch`` mean of the same (arch, quadrant, head) when the run has it."""
    scratch = scratch_means(over_seeds(s for s in scenarios if s.layer_transfer is None))
    groups: dict[GroupKey, list[ScenarioRecord]] = {}
    for s in scenarios:
        if s.layer_transfer is not None:
            groups.setdefault(s.key, []).append(s)
    rows = []
    for key, runs in sorted(groups.items(), key=lambda kv: (kv[0].arch, kv[0].quadrant, kv[0].head, kv[0].freeze)):
        values = accuracies(runs)
        stats = SeedStats.of(list(enumerate(values))) if values else None
        stages = next((r.frozen_stages for r in runs if r.frozen_stages), ())
        assert key.arch is not None and key.quadrant is not None and key.head is not None and key.freeze is not None
        rows.append(LayerPoint(
            arch=key.arch, quadrant=key.quadrant, head=key.head, frozen=key.freeze,
            last_frozen=stages[-1] if stages else None, mean=stats.mean if stats else None,
            std=stats.std if stats else 0.0, n_seeds=len(values), scratch=scratch.get(key.cell),
        ))  # fmt: skip
    return rows


def curves(rows: Sequence[LayerPoint]) -> dict[tuple[str, str, str], list[LayerPoint]]:
    """The points by (arch, quadrant, head) curve, in frozen-stage order."""
    out: dict[tuple[str, str, str], list[LayerPoint]] = {}
    for row in rows:
        out.setdefault((row.arch, row.quadrant, row.head), []).append(row)
    return out
