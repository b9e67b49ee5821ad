"""Joining the reports of a suite's parts — the shards of ``--cnnbench-shard K/N``, or runs that selected disjoint
scenarios — into the one report a whole run would have written (SPEC §10), for ``cnnbench merge``.

Parts join only when they measured the same thing the same way: one suite (by digest), one commit and one
hardware/software fingerprint, no scenario in two parts and, for shards, every part of one split of one
selection, each finished. Anything else is refused with the files named, since a merged report that mixes
builds or hardware would gate a change against itself. The merged report is rebuilt from the parts' records
(aggregates, recommendation, best strategies recomputed over all of them); a target's similarity is the mean over
the archs every part measured; the parts' profiles add up.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cnnbench.engine.measurement import merge_targets
from cnnbench.profiling import combined
from cnnbench.results.build import build_report
from cnnbench.results.records import Report, ScenarioRecord

SHOWN = 5  # scenario ids a refusal lists before "and N more"


class MergeError(ValueError):
    """Reports that cannot be merged; the message names the files and why."""


def merge_reports(parts: Sequence[tuple[Path, Report]], partial: bool = False) -> Report:
    """One report of the ``parts`` (each its file and its report); raises MergeError naming the files where they
    are of different suites, commits or fingerprints, overlap, are not all transfer runs, or — unless
    ``partial`` — leave a shard missing or unfinished."""
    if len(parts) < 2:
        raise MergeError(f"merge needs at least two reports, got {len(parts)}")
    for path, report in parts:
        if report.hardware or not isinstance(report.suite, dict) or "groups" not in report.suite:
            raise MergeError(
                f"{path} is not a transfer suite's report written by this cnnbench (a hardware run, or a report from "
                "before merging existed); merge joins the parts of one transfer suite"
            )
    _same(parts, "suite", lambda r: (r.suite or {}).get("digest"))
    _same(parts, "git commit", lambda r: r.environment.git_commit)
    _same(parts, "hardware/software fingerprint", lambda r: r.environment.fingerprint)
    _disjoint(parts)
    _complete(parts, partial)
    return _joined([report for _, report in parts])


def _same(parts: Sequence[tuple[Path, Report]], what: str, key) -> None:
    values = {key(report) for _, report in parts}
    if len(values) > 1:
        listing = "; ".join(f"{path}: {key(report)}" for path, report in parts)
        raise MergeError(f"the reports are of different {what}s ({listing}); merge only the parts of one run")


def _disjoint(parts: Sequence[tuple[Path, Report]]) -> None:
    seen: dict[str, Path] = {}
    for path, report in parts:
        for record in report.scenarios:
            if record.id in seen:
                both = [r.id for r in report.scenarios if r.id in seen and seen[r.id] == seen[record.id]]
                more = f" and {len(both) - SHOWN} more" if len(both) > SHOWN else ""
                raise MergeError(
                    f"{seen[record.id]} and {path} overlap: both hold {', '.join(both[:SHOWN])}{more}; merge each part "
                    "once, and only parts of one split (the same --cnnbench-shard N)"
                )
            seen[record.id] = path


def _complete(parts: Sequence[tuple[Path, Report]], partial: bool) -> None:
    """Shards: all parts of one split of one selection, every part present and finished (unless ``partial``)."""
    shards: list[tuple[Path, dict[str, Any], Report]] = [
        (path, (r.suite or {}).get("shard") or {}, r) for path, r in parts
    ]
    if not any(shard for _, shard, _ in shards):
        return
    whole = [str(path) for path, shard, _ in shards if not shard]
    if whole:
        raise MergeError(f"{', '.join(whole)} ran the whole selection, the others one --cnnbench-shard part each; "
                         "merge the parts of one split")  # fmt: skip
    _same(parts, "shard count", lambda r: _shard(r)["count"])
    _same(parts, "selection (filters, -k) before sharding", lambda r: _shard(r)["selection"])
    if partial:
        return
    count = shards[0][1]["count"]
    missing = sorted(set(range(1, count + 1)) - {shard["index"] for _, shard, _ in shards})
    if missing:
        raise MergeError(f"parts {', '.join(f'{k}/{count}' for k in missing)} are missing: the merged report would "
                         "lack their scenarios; merge every part, or pass --partial to merge these anyway")  # fmt: skip
    unfinished = [f"{path} ({len(r.scenarios)} of its {shard['scenarios']} scenarios)"
                  for path, shard, r in shards if r.finished is None]  # fmt: skip
    if unfinished:
        raise MergeError(f"{', '.join(unfinished)} did not finish: run the part again, or pass --partial to merge "
                         "what it holds")  # fmt: skip


def _shard(report: Report) -> dict[str, Any]:
    return (report.suite or {}).get("shard") or {}


def _joined(reports: Sequence[Report]) -> Report:
    first = reports[0]
    suite = dict(first.suite or {})
    order = {group: i for i, group in enumerate(suite["groups"])}
    records: list[ScenarioRecord] = sorted((r for report in reports for r in report.scenarios),
                                           key=lambda r: (order.get(r.group, len(order)), r.seed))  # fmt: skip
    selected = {g for report in reports for g in (report.suite or {}).get("selected_groups", [])}
    suite["selected_groups"] = [g for g in suite["groups"] if g in selected]
    suite.pop("shard", None)
    suite["parts"] = [{"run_id": r.run_id, "shard": (r.suite or {}).get("shard"), "hostname":
                       r.environment.value("hostname"), "started": r.started, "finished": r.finished}
                      for r in reports]  # fmt: skip
    targets = merge_targets(target for report in reports for target in report.targets)
    profiles = [report.profile.to_json() for report in reports if report.profile is not None]
    finished = [r.finished for r in reports]
    return build_report(
        run_id=f"{min(reports, key=lambda r: r.started).run_id}-merged",
        started=min(r.started for r in reports),
        finished=None if None in finished else max(f for f in finished if f is not None),
        environment=first.environment.to_json(),
        targets=[targets[q] for q in sorted(targets)],
        scenarios=records,
        suite=suite,
        profile=combined(profiles) if profiles else None,
    )
