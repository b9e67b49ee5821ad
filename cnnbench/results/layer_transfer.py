"""The layer-transfer curve (Yosinski et al. 2014, "How transferable are features in deep neural networks?"):
for one arch, target and head, test accuracy as a function of how many of the pretrained base's stages stay
frozen, from 0 (fine-tune everything) to all (train the head alone), with ``scratch`` as the reference.

A suite asks for it with a ``[layer_transfer]`` table; its points are ``s2`` scenarios cut at every stage
(``Scenario.freeze``), kept out of the strategy tables and reported here as a table and a plot.
"""

from __future__ import annotations

import statistics
import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

from cnnbench.results import recommend

PLOT = "layer_transfer.png"


def points(scenarios: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per (arch, quadrant, head, frozen count): test accuracy over seeds and the last frozen stage, plus the
    ``scratch`` mean of the same (arch, quadrant, head) when the run has it."""
    main = [s for s in scenarios if s.get("layer_transfer") is None]
    scratch = recommend.scratch_means(recommend.aggregate(main))
    groups: dict[tuple, list[Mapping[str, Any]]] = {}
    for s in scenarios:
        if s.get("layer_transfer") is not None:
            groups.setdefault((s["arch"], s["quadrant"], s["head"], s["layer_transfer"]), []).append(s)
    rows = []
    for (arch, quadrant, head, frozen), runs in sorted(groups.items()):
        values = [a for a in map(recommend.accuracy_of, runs) if a is not None]
        stages = next((r.get("frozen_stages") for r in runs if r.get("frozen_stages") is not None), [])
        rows.append({
            "arch": arch, "quadrant": quadrant, "head": head, "frozen": frozen,
            "last_frozen": stages[-1] if stages else None,
            "mean": statistics.fmean(values) if values else None,
            "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "n_seeds": len(values),
            "scratch": scratch.get((arch, quadrant, head)),
        })  # fmt: skip
    return rows


def markdown(rows: Sequence[Mapping[str, Any]], plot: bool) -> list[str]:
    """The report section: one table per curve, and the plot."""
    if not rows:
        return []
    lines = ["## Layer transfer", "", "Test accuracy (%) with the first *k* stages of the pretrained base frozen and "
             "the rest fine-tuned (Yosinski et al. 2014); *k* = 0 fine-tunes everything."]  # fmt: skip
    for (arch, quadrant, head), curve in curves(rows).items():
        scratch = curve[0]["scratch"]
        lines += ["", f"`{arch}` on {quadrant}, `{head}` head" + (
            f" (scratch: {100 * scratch:.1f})" if scratch is not None else ""), "",
            "| frozen stages | up to | accuracy |", "|---:|---|---:|"]  # fmt: skip
        for p in curve:
            acc = "-" if p["mean"] is None else f"{100 * p['mean']:.1f}" + (
                f" ± {100 * p['std']:.1f}" if p["n_seeds"] > 1 else "")
            lines.append(f"| {p['frozen']} | {p['last_frozen'] or '—'} | {acc} |")
    if plot:
        lines += ["", f"![layer transfer]({PLOT})"]
    return lines


def terminal_lines(rows: Sequence[Mapping[str, Any]], width: int = 100) -> list[str]:
    """Lines for the end of a pytest run, none wider than ``width``: per curve, accuracy % at each number of
    frozen stages and the scratch reference."""
    lines = []
    for (arch, quadrant, head), curve in curves(rows).items():
        cells = " ".join(f"{p['frozen']}:" + ("-" if p["mean"] is None else f"{100 * p['mean']:.1f}") for p in curve)
        scratch = curve[0]["scratch"]
        text = f"layer transfer {arch} {quadrant} {head}, % by frozen stages: {cells}" + (
            "" if scratch is None else f" | scratch {100 * scratch:.1f}")
        lines += textwrap.wrap(text, width, subsequent_indent="  ")
    return lines


def curves(rows: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str, str], list[Mapping[str, Any]]]:
    """The points by (arch, quadrant, head) curve, in frozen-stage order."""
    curves: dict[tuple[str, str, str], list[Mapping[str, Any]]] = {}
    for row in rows:
        curves.setdefault((row["arch"], row["quadrant"], row["head"]), []).append(row)
    return curves
