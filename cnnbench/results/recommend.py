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

import math
import statistics
from collections.abc import Iterable, Mapping
from typing import Any

from cnnbench.config.quadrants import QUADRANT_LABELS, RECOMMENDED

STRATEGY_ORDER = ("s1", "s2", "s3", "scratch")

TIE_FLOOR = 0.01  # one accuracy point, as a fraction

VERDICTS = ("won", "tied within noise", "lost", "not run")

Key = tuple[str, str, str, str]  # (arch, strategy, quadrant, head)


def accuracy_of(scenario: Mapping[str, Any]) -> float | None:
    """The scenario's finite test accuracy, or None for a run without one (error, NaN, missing metrics)."""
    value = (scenario.get("metrics") or {}).get("test_accuracy")
    if isinstance(value, (int, float)) and math.isfinite(value):
        return float(value)
    return None


def scenario_key(scenario: Mapping[str, Any]) -> Key:
    """The (arch, strategy, quadrant, head) a scenario's seeds are aggregated under."""
    return scenario["arch"], scenario["strategy"], scenario["quadrant"], scenario["head"]


def aggregate(scenarios: Iterable[Mapping[str, Any]]) -> dict[Key, dict[str, Any]]:
    """Test accuracy over seeds per (arch, strategy, quadrant, head): mean, sample std, n_seeds, seeds, values.

    Keys keep the order in which they first appear; scenarios without a finite accuracy are skipped.
    """
    seeds: dict[Key, list[tuple[int, float]]] = {}
    for scenario in scenarios:
        accuracy = accuracy_of(scenario)
        if accuracy is not None:
            seeds.setdefault(scenario_key(scenario), []).append((scenario["seed"], accuracy))
    return {key: _stats(pairs) for key, pairs in seeds.items()}


def _stats(pairs: list[tuple[int, float]]) -> dict[str, Any]:
    values = [value for _, value in pairs]
    return {
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
        "n_seeds": len(values),
        "seeds": [seed for seed, _ in pairs],
        "values": values,
    }


def scratch_means(aggregates: Mapping[Key, Mapping[str, Any]]) -> dict[tuple[str, str, str], float]:
    """Mean ``scratch`` accuracy per (arch, quadrant, head): the baseline every transfer gain is measured from."""
    return {(a, q, h): stats["mean"] for (a, s, q, h), stats in aggregates.items() if s == "scratch"}


def transfer_gains(scenarios: list[Mapping[str, Any]]) -> list[float | None]:
    """Per scenario (same order): its test accuracy minus the mean ``scratch`` accuracy of its (arch, quadrant,
    head), or None when either is missing."""
    baseline = scratch_means(aggregate(scenarios))
    gains: list[float | None] = []
    for scenario in scenarios:
        accuracy = accuracy_of(scenario)
        scratch = baseline.get((scenario["arch"], scenario["quadrant"], scenario["head"]))
        gains.append(None if accuracy is None or scratch is None else accuracy - scratch)
    return gains


def check(scenarios: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per (arch, quadrant, head) with results: the winner, the recommended strategy, the margin and the
    verdict under the tie rule of this module, plus a plain-language ``sentence``."""
    groups: dict[tuple[str, str, str], dict[str, Mapping[str, Any]]] = {}
    for (arch, strategy, quadrant, head), stats in aggregate(scenarios).items():
        groups.setdefault((arch, quadrant, head), {})[strategy] = stats
    return [_row(arch, quadrant, head, by_strategy) for (arch, quadrant, head), by_strategy in groups.items()]


def _row(arch: str, quadrant: str, head: str, by_strategy: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    recommended = RECOMMENDED.get(quadrant)
    winner = max(_ordered(by_strategy, recommended), key=lambda s: by_strategy[s]["mean"])
    win, rec = by_strategy[winner], by_strategy.get(recommended)
    row: dict[str, Any] = {
        "arch": arch,
        "quadrant": quadrant,
        "head": head,
        "recommended": recommended,
        "winner": winner,
        "winner_mean": win["mean"],
        "winner_std": win["std"],
        "winner_n_seeds": win["n_seeds"],
        "recommended_mean": rec["mean"] if rec else None,
        "recommended_std": rec["std"] if rec else None,
        "recommended_n_seeds": rec["n_seeds"] if rec else 0,
        "margin": win["mean"] - rec["mean"] if rec else None,
        "noise": max(win["std"], rec["std"], TIE_FLOOR) if rec else None,
    }
    row["verdict"] = _verdict(row)
    row["recommended_won"] = row["verdict"] in ("won", "tied within noise")
    row["sentence"] = sentence(row)
    return row


def _ordered(by_strategy: Mapping[str, Any], recommended: str | None) -> list[str]:
    """Strategies with the recommended one first, then the canonical order, so ``max`` breaks exact ties for it."""
    rank = {s: i for i, s in enumerate(STRATEGY_ORDER)}
    return sorted(by_strategy, key=lambda s: (s != recommended, rank.get(s, len(rank)), s))


def _verdict(row: Mapping[str, Any]) -> str:
    if row["recommended_mean"] is None:
        return "not run"
    if row["winner"] == row["recommended"]:
        return "won"
    return "tied within noise" if row["margin"] <= row["noise"] else "lost"


def sentence(row: Mapping[str, Any]) -> str:
    """One plain-language line for a check row, e.g. ``q4 (small, similar): s3 recommended; s2 won by 3.1 pts
    (noise ±1.2) — the seed notes' advice loses here.``"""
    where = f"{row['quadrant']} ({QUADRANT_LABELS.get(row['quadrant'], 'unknown quadrant')})"
    rec, win, verdict = row["recommended"], row["winner"], row["verdict"]
    spread = f"±{100 * row['winner_std']:.1f}" if row["winner_n_seeds"] > 1 else "1 seed"
    win_at = f"{100 * row['winner_mean']:.1f}% ({spread})"
    if verdict == "not run":
        return f"{where}: {rec} recommended but has no result; {win} won at {win_at}."
    if verdict == "won":
        return f"{where}: {rec} recommended and won at {win_at} — the seed notes' advice holds."
    by = f"{win} won by {100 * row['margin']:.1f} pts (noise ±{100 * row['noise']:.1f})"
    if verdict == "tied within noise":
        return f"{where}: {rec} recommended; {by}, a tie within noise — the advice holds."
    return f"{where}: {rec} recommended; {by} — the seed notes' advice loses here."


def best(scenarios: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per (arch, quadrant): the strategy × head with the best mean test accuracy over seeds, its spread, and its
    margin over the runner-up — the answer to "which transfer strategy should I use on this data, and by how much
    does it win"."""
    groups: dict[tuple[str, str], list[tuple[str, str, Mapping[str, Any]]]] = {}
    for (arch, strategy, quadrant, head), stats in aggregate(scenarios).items():
        groups.setdefault((arch, quadrant), []).append((strategy, head, stats))
    rows = []
    for (arch, quadrant), entries in groups.items():
        ranked = sorted(entries, key=lambda e: -e[2]["mean"])
        (strategy, head, top), runner_up = ranked[0], ranked[1] if len(ranked) > 1 else None
        rows.append({
            "arch": arch, "quadrant": quadrant, "strategy": strategy, "head": head,
            "mean": top["mean"], "std": top["std"], "n_seeds": top["n_seeds"],
            "runner_up": None if runner_up is None else f"{runner_up[0]} × {runner_up[1]}",
            "margin": None if runner_up is None else top["mean"] - runner_up[2]["mean"],
        })  # fmt: skip
    return rows
