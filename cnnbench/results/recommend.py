"""The seed notes' strategy-per-quadrant table (SPEC §4), and the check of that table against measured results.

Accuracies are aggregated over seeds per (arch, strategy, quadrant, head); a record counts when its
``metrics.test_accuracy`` is a finite number, whatever its status (a diverged run that still reports an
accuracy is evidence against its strategy). The **winner** of an (arch, quadrant, head) is the strategy with the
highest mean test accuracy, ``scratch`` included; an exact tie goes to the recommended strategy.

**Tie rule.** With ``margin = winner_mean - recommended_mean``, the verdict is

- ``won`` when the recommended strategy is the winner;
- ``tied within noise`` when ``margin <= max(winner_std, recommended_std, TIE_FLOOR)``, where the stds are sample
  standard deviations over seeds (0 for one seed) and ``TIE_FLOOR`` is one accuracy point (0.01), so that one
  seed per strategy cannot declare a loss on a sub-point difference;
- ``lost`` otherwise;
- ``not run`` when the recommended strategy has no accuracy for that (arch, quadrant, head).

``recommended_won`` is true for ``won`` and ``tied within noise``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace

from cnnbench.config.quadrants import QUADRANT_LABELS, RECOMMENDED
from cnnbench.results.aggregate import SeedStats, over_seeds, scratch_means, tie_noise, transfer_gain
from cnnbench.results.records import BestRow, CheckRow, GroupKey, ScenarioRecord

STRATEGY_ORDER = ("s1", "s2", "s3", "scratch")

VERDICTS = ("won", "tied within noise", "lost", "not run")

__all__ = ["STRATEGY_ORDER", "VERDICTS", "best", "check", "sentence", "transfer_gains"]


def transfer_gains(scenarios: Sequence[ScenarioRecord]) -> list[float | None]:
    """Per scenario (same order): its test accuracy minus the mean ``scratch`` accuracy of its (arch, quadrant,
    head), or None when either is missing."""
    baseline = scratch_means(over_seeds(scenarios))
    return [transfer_gain(s.test_accuracy, baseline.get(s.key.cell)) for s in scenarios]


def check(scenarios: Iterable[ScenarioRecord]) -> list[CheckRow]:
    """One row per (arch, quadrant, head) with results: the winner, the recommended strategy, the margin and the
    verdict under the tie rule of this module, plus a plain-language ``sentence``."""
    cells: dict[GroupKey, dict[str, SeedStats]] = {}
    for key, stats in over_seeds(scenarios).items():
        cells.setdefault(key.cell, {})[key.coordinates[1]] = stats
    return [_row(cell, by_strategy) for cell, by_strategy in cells.items()]


def _row(cell: GroupKey, by_strategy: dict[str, SeedStats]) -> CheckRow:
    assert cell.arch is not None and cell.quadrant is not None and cell.head is not None  # a record's cell
    recommended = RECOMMENDED.get(cell.quadrant)
    winner = max(_ordered(by_strategy, recommended), key=lambda s: by_strategy[s].mean)
    win = by_strategy[winner]
    rec = None if recommended is None else by_strategy.get(recommended)
    margin = None if rec is None else win.mean - rec.mean
    noise = None if rec is None else tie_noise(win, rec)
    if rec is None or margin is None or noise is None:
        verdict = "not run"
    elif winner == recommended:
        verdict = "won"
    else:
        verdict = "tied within noise" if margin <= noise else "lost"
    row = CheckRow(
        arch=cell.arch, quadrant=cell.quadrant, head=cell.head, recommended=recommended, winner=winner,
        winner_mean=win.mean, winner_std=win.std, winner_n_seeds=win.n_seeds,
        recommended_mean=rec.mean if rec else None, recommended_std=rec.std if rec else None,
        recommended_n_seeds=rec.n_seeds if rec else 0, margin=margin, noise=noise, verdict=verdict,
        recommended_won=verdict in ("won", "tied within noise"),
    )  # fmt: skip
    return replace(row, sentence=sentence(row))


def _ordered(by_strategy: dict[str, SeedStats], recommended: str | None) -> list[str]:
    """Strategies with the recommended one first, then the canonical order, so ``max`` breaks exact ties for it."""
    rank = {s: i for i, s in enumerate(STRATEGY_ORDER)}
    return sorted(by_strategy, key=lambda s: (s != recommended, rank.get(s, len(rank)), s))


def sentence(row: CheckRow) -> str:
    """One plain-language line for a check row, e.g. ``q4 (small, similar): s3 recommended; s2 won by 3.1 pts
    (noise ±1.2) — the seed notes' advice loses here.``"""
    where = f"{row.quadrant} ({QUADRANT_LABELS.get(row.quadrant, 'unknown quadrant')})"
    rec, win, verdict = row.recommended, row.winner, row.verdict
    n_seeds, std, mean = row.winner_n_seeds or 0, row.winner_std or 0.0, row.winner_mean or 0.0
    spread = f"±{100 * std:.1f}" if n_seeds > 1 else "1 seed"
    win_at = f"{100 * mean:.1f}% ({spread})"
    if verdict == "not run" or row.margin is None or row.noise is None:
        return f"{where}: {rec} recommended but has no result; {win} won at {win_at}."
    if verdict == "won":
        return f"{where}: {rec} recommended and won at {win_at} — the seed notes' advice holds."
    by = f"{win} won by {100 * row.margin:.1f} pts (noise ±{100 * row.noise:.1f})"
    if verdict == "tied within noise":
        return f"{where}: {rec} recommended; {by}, a tie within noise — the advice holds."
    return f"{where}: {rec} recommended; {by} — the seed notes' advice loses here."


def best(scenarios: Iterable[ScenarioRecord]) -> list[BestRow]:
    """Per (arch, quadrant): the strategy × head with the best mean test accuracy over seeds, its spread, and its
    margin over the runner-up — the answer to "which transfer strategy should I use on this data, and by how much
    does it win"."""
    groups: dict[tuple[str, str], list[tuple[GroupKey, SeedStats]]] = {}
    for key, stats in over_seeds(scenarios).items():
        arch, _, quadrant, _ = key.coordinates
        groups.setdefault((arch, quadrant), []).append((key, stats))
    rows = []
    for (arch, quadrant), entries in groups.items():
        ranked = sorted(entries, key=lambda e: -e[1].mean)
        (key, top), runner_up = ranked[0], ranked[1] if len(ranked) > 1 else None
        _, strategy, _, head = key.coordinates
        rows.append(BestRow(
            arch=arch, quadrant=quadrant, strategy=strategy, head=head, mean=top.mean, std=top.std,
            n_seeds=top.n_seeds,
            runner_up=None if runner_up is None else f"{runner_up[0].strategy} × {runner_up[0].head}",
            margin=None if runner_up is None else top.mean - runner_up[1].mean,
        ))  # fmt: skip
    return rows
