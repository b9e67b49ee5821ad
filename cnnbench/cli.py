"""The ``cnnbench`` command: look at the zoo and the built-in suites, pretrain bases, measure similarity, time
archs, look into and empty the cache, and compare, merge, gate and export run reports, without running pytest.

Only the config layer and the cache's layout are imported at the top: each command imports the engine (and with it
JAX), the zoo or the report layer when it runs, so ``cnnbench --help``, ``compare``, ``merge``, ``gate``,
``export``, ``cache info`` and ``cache clear`` never load JAX. The engine's progress goes to the ``cnnbench``
logger, which :func:`main` shows on stderr: stdout holds only a command's output (a table, JSON, CSV).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cnnbench
from cnnbench.config.hardware import HardwareSuite
from cnnbench.config.schema import suite_json_schema
from cnnbench.config.suite import SuiteError, builtin_suites, load_suite, read_suite
from cnnbench.engine import cache_store
from cnnbench.fileio import atomic_write, readable_size
from cnnbench.locations import CACHE_ENV, DEFAULT_CACHE, default_cache
from cnnbench.registry import UnknownNameError

if TYPE_CHECKING:  # the results layer, for annotations: the commands that judge import it when they run
    from cnnbench.results.records import GateSummary, Report

DESCRIPTION = (
    "Look at the model zoo and the built-in suites, pretrain bases, measure similarity, time archs, look into and "
    "empty the cache, and compare, merge, gate and export run reports, without running pytest. A suite's scenarios "
    "run under pytest: pytest --cnnbench [--cnnbench-suite NAME]."
)
CACHE_HELP = f"the cache directory (default: ${CACHE_ENV} if set, else ./{DEFAULT_CACHE})"

log = logging.getLogger(__name__)


class _Listed(argparse.Action):
    """A list option or positional that takes repeats and comma lists alike: ``--batch 1 --batch 4`` is
    ``--batch 1,4``, ``lenet5,resnet18`` is ``lenet5 resnet18``."""

    def __call__(self, parser: Any, namespace: argparse.Namespace, values: Any, option: str | None = None) -> None:
        given = [values] if isinstance(values, str) else list(values or [])
        items = [item.strip() for text in given for item in text.split(",") if item.strip()]
        setattr(namespace, self.dest, [*(getattr(namespace, self.dest) or []), *items])


def _cache(args: argparse.Namespace) -> Path:
    """``--cache``, else the default every entry point shares (:func:`cnnbench.locations.default_cache`)."""
    return Path(args.cache) if args.cache else default_cache()


def _zoo_rows(names: list[str]) -> list[dict]:
    """One row per model: canonical params and GMACs per image (counted from the jaxpr, SPEC §2's figures) and, at
    benchmark scale, params and GFLOPs (from XLA cost analysis)."""
    import jax  # the zoo commands load JAX when they run (see the module docstring)
    from flax import nnx

    from cnnbench.engine.macs import canonical_gmacs
    from cnnbench.engine.programs import flops
    from cnnbench.zoo import count_params, create_model, get_spec

    rows = []
    for name in names:
        spec = get_spec(name)
        bench = dict(spec.bench_config)
        model = nnx.eval_shape(partial(create_model, name, **bench))  # abstract: nothing is allocated
        model.eval()
        graphdef, state = nnx.split(model)
        x = jax.ShapeDtypeStruct((1, bench["img_size"], bench["img_size"], bench["in_chans"]), "float32")
        compiled = jax.jit(partial(_apply, graphdef)).lower(state, x).compile()
        rows.append(
            {
                "name": name,
                "family": spec.family,
                "paper": spec.paper,
                "year": spec.year,
                "params": spec.params,
                "gmacs": canonical_gmacs(name),
                "bench_config": bench,
                "bench_params": count_params(model)[0],
                "bench_gflops": (flops(compiled) or 0.0) / 1e9,
                "stages": list(spec.stages),
            }
        )
    return rows


def _apply(graphdef: Any, state: Any, x: Any) -> Any:
    from flax import nnx  # loaded already by _zoo_rows, its only caller

    return nnx.merge(graphdef, state)(x)


def _zoo(args: argparse.Namespace) -> int:
    from cnnbench.zoo import get_spec, list_models  # the zoo loads JAX (see the module docstring)

    names = args.names or list_models()
    try:
        for name in names:
            get_spec(name)
    except UnknownNameError as exc:
        print(f"cnnbench zoo: {exc}", file=sys.stderr)
        return 2
    rows = _zoo_rows(names)
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(
        f"{'name':<13} {'family':<11} {'year':>4} {'canonical params':>16} {'GMACs':>9} {'bench params':>12} "
        f"{'bench GFLOPs':>12}  stages"
    )
    for r in rows:
        print(
            f"{r['name']:<13} {r['family']:<11} {r['year']:>4} {r['params']:>16,} {r['gmacs']:>9.4g} "
            f"{r['bench_params']:>12,} {r['bench_gflops']:>12.4f}  {', '.join(r['stages'])}"
        )
    return 0


def _suite_runner(args: argparse.Namespace) -> tuple[Any, list[str]] | None:
    """The Runner of ``--suite`` and the archs to run (default: the suite's); None after printing what is wrong."""
    # the engine and the zoo load JAX: imported by the commands that need them (see the module docstring)
    from cnnbench.engine.catalog import registry_catalog
    from cnnbench.engine.runner import Runner
    from cnnbench.zoo import get_spec

    try:
        suite = load_suite(args.suite, registry_catalog())
        archs = args.archs or list(suite.archs)
        for arch in archs:
            get_spec(arch)
    except (SuiteError, UnknownNameError) as exc:
        print(f"cnnbench {args.command}: {exc}", file=sys.stderr)
        return None
    return Runner(suite, _cache(args)), archs


def _pretrain_rows(runner: Any, archs: list[str]) -> list[dict]:
    rows = []
    for arch in archs:
        result = runner.pretrained(arch)
        rows.append(
            {
                "arch": arch,
                "width": runner.suite.width(arch),
                "source_accuracy": result.source_accuracy,
                "seconds": result.seconds,
                "cache_hit": result.cache_hit,
                "path": str(result.path),
            }
        )
    return rows


def _print_pretrain(rows: list[dict]) -> None:
    print(f"{'arch':<13} {'width':>5} {'source accuracy':>15} {'pretrain s':>10}  cache")
    for r in rows:
        print(
            f"{r['arch']:<13} {r['width']:>5g} {r['source_accuracy']:>15.1%} {r['seconds']:>10.0f}  "
            f"{'hit' if r['cache_hit'] else 'built'} {r['path']}"
        )


def _similarity_rows(runner: Any, archs: list[str]) -> list[dict]:
    return [
        {
            "target_name": binding.name,
            "quadrant": quadrant,
            "n_train": binding.n_train,
            **runner.similarity(arch, quadrant).to_dict(),
        }
        for quadrant, binding in runner.suite.quadrants.items()
        for arch in archs
    ]


def _print_similarity(rows: list[dict]) -> None:
    from cnnbench.engine.similarity import METHOD, THRESHOLD  # loaded already by the command's runner

    print(
        f"{METHOD}: the share of the pretrained base's NCM accuracy gain over a random-init base on source "
        f"images that it keeps on the target; similar at >= {THRESHOLD:g}"
    )
    print(
        f"{'target':<12} {'quadrant':<8} {'n_train':>7} {'arch':<13} {'target NCM':>14} {'source NCM':>14} "
        f"{'score':>6}  similar"
    )
    for r in rows:
        t, s = r["target"], r["source"]
        print(
            f"{r['target_name']:<12} {r['quadrant']:<8} {r['n_train']:>7} {r['arch']:<13} "
            f"{t['pretrained']:>6.1%}/{t['random']:>6.1%} {s['pretrained']:>6.1%}/{s['random']:>6.1%} "
            f"{r['score']:>+6.2f}  {'yes' if r['similar'] else 'no'}"
        )


def _suite_command(rows: Callable[[Any, list[str]], list[dict]], show: Callable[[list[dict]], None]):
    """A command over a suite's archs: rows as JSON with ``--json``, else as a table."""

    def run(args: argparse.Namespace) -> int:
        from cnnbench.data.user import UserDataError  # the data layer: loaded with the command's runner

        loaded = _suite_runner(args)
        if loaded is None:
            return 2
        try:
            result = rows(*loaded)
        except UserDataError as exc:  # a user dataset the suite binds cannot be used
            print(f"cnnbench {args.command}: {exc}", file=sys.stderr)
            return 2
        if args.json:
            print(json.dumps(result, indent=1))
        else:
            show(result)
        return 0

    return run


def _suites(args: argparse.Namespace) -> int:
    # the catalog of archs, targets and heads comes from the registries, which load JAX
    from cnnbench.engine.catalog import registry_catalog

    if args.schema:
        print(json.dumps(suite_json_schema(registry_catalog()), indent=2))
        return 0
    for name in builtin_suites():
        suite = read_suite(name, registry_catalog())
        size = (
            f"{len(suite.points()):>4} bench points"
            if isinstance(suite, HardwareSuite)
            else f"{len(suite.scenarios()):>4} scenarios   "
        )
        print(f"{name:<10} {size}  {suite.description}")
    return 0


def _bench(args: argparse.Namespace) -> int:
    """Time archs at their canonical config per batch × precision × mode; a table, or ``--json`` rows."""
    # the engine loads JAX: imported when the command runs (see the module docstring)
    from cnnbench.engine.catalog import registry_catalog
    from cnnbench.engine.timing import Timer
    from cnnbench.report import hardware, terminal
    from cnnbench.results.build import build_report
    from cnnbench.session import HardwareSession, narrow

    try:
        suite = read_suite(args.suite, registry_catalog())
        if not isinstance(suite, HardwareSuite):
            raise SuiteError(f"suite {suite.path} is a transfer suite; `cnnbench bench` runs a hardware suite "
                             "(kind = \"hardware\"), such as the built-in `hardware`")  # fmt: skip
        try:
            batches = tuple(int(b) for b in args.batch)
        except ValueError:
            raise ValueError(f"--batch {','.join(args.batch)!r}: expected batch sizes such as 1,32,128") from None
        if (args.rounds is not None and args.rounds < 1) or (args.warmup is not None and args.warmup < 0):
            raise ValueError(f"--rounds must be at least 1 and --warmup not negative, got {args.rounds}, {args.warmup}")
        suite = narrow(suite, tuple(args.archs), batches, tuple(args.precision), tuple(args.mode))
        suite = replace(suite, bench=replace(suite.bench, **{k: v for k, v in
                        (("rounds", args.rounds), ("warmup", args.warmup)) if v is not None}))  # fmt: skip
    except ValueError as exc:  # SuiteError, or a batch size that is not an integer
        print(f"cnnbench bench: {exc}", file=sys.stderr)
        return 2
    session = HardwareSession(suite, suite.points(), Path(args.report or "reports"), writes_reports=bool(args.report))
    timer = Timer(suite.bench.rounds, suite.bench.min_round_s)
    for point in session.points:
        row = session.run(point, timer)
        log.info(f"{row.id}: {row.status}" + (f", {row.images_per_s:,.1f} img/s" if row.images_per_s else "")
                 + (f" ({row.error})" if row.error else ""))  # fmt: skip
    if args.report:
        log.info(f"report: {session.write(finished=True)}")
    if args.json:
        print(json.dumps([row.to_json() for row in session.records], indent=1))
        return 0
    report = build_report(session.run_id, session.started, None, session.environment or {}, [], [],
                          hardware=session.records)  # fmt: skip
    print("\n".join(terminal.render(hardware.terminal_document(report), 120)))
    return 0


def _compare(args: argparse.Namespace) -> int:
    """Reports side by side against the first; with ``--fail-on-regression``, each later one judged against it by
    the gate: exit 1 when any regressed."""
    # the report layer is imported when the command runs, so `cnnbench --help` stays light
    from cnnbench.report.compare import compare, load_runs, render_html, render_markdown
    from cnnbench.results.schema import report_file

    try:
        runs = load_runs([args.reference, *args.others])
        comparison = compare(runs)
        verdicts = {}
        for run in runs[1:] if args.fail_on_regression else ():
            try:
                verdicts[run.label] = _judge(run.report, report_file(runs[0].source))
            except ValueError as exc:  # UngatableReport: a report without its suite's tolerances and groups
                raise ValueError(f"{run.label} ({run.source}) cannot be judged against A: {exc}") from None
    except ValueError as exc:  # a path that is missing, not JSON or not a cnnbench/1 report
        print(f"cnnbench compare: {exc}", file=sys.stderr)
        return 2
    markdown = render_markdown(comparison)
    if args.json:
        gate = {label: summary.to_json() for label, summary in verdicts.items()} if args.fail_on_regression else None
        print(json.dumps({**comparison.to_json(), "gate": gate}, indent=1, allow_nan=False))
    else:
        print(markdown, end="")
    for path, render in ((args.markdown, lambda: markdown), (args.html, lambda: render_html(comparison))):
        if not path:
            continue
        try:
            atomic_write(Path(path), render())
        except OSError as exc:
            print(f"cnnbench compare: cannot write {path}: {exc}", file=sys.stderr)
            return 2
    for label, summary in verdicts.items():
        names = [*summary.regressed, *summary.throughput_regressed]
        print(f"gate: {label} against A: {_regressions(summary)}" + (f": {', '.join(names)}" if names else ""),
              file=sys.stderr)  # fmt: skip
    return 1 if any(_regressed(summary) for summary in verdicts.values()) else 0


def _judge(report: Report, baseline: Path) -> GateSummary:
    """The gate's verdicts on a stored report against the baseline report at ``baseline``, by the rule, tolerances
    and groups the report's suite section records (``gate.judge_run``): as the run judged itself, as ``cnnbench
    gate`` and ``cnnbench compare --fail-on-regression`` judge. Raises ValueError for a report it cannot judge."""
    from cnnbench.results import gate  # the results layer: loaded by the commands that judge

    return gate.judge_run(gate.load_baseline(baseline), report.scenarios, report.environment, report.suite)


def _regressed(summary: GateSummary) -> bool:
    return bool(summary.regressed or summary.throughput_regressed)


def _regressions(summary: GateSummary) -> str:
    """``2 group(s) regressed in accuracy, 0 program(s) in throughput``: the gate's count line."""
    return (f"{len(summary.regressed)} group(s) regressed in accuracy, {len(summary.throughput_regressed)} "
            "program(s) in throughput")  # fmt: skip


def _merge(args: argparse.Namespace) -> int:
    """Join the reports of a suite's parts (``--cnnbench-shard K/N``) into one, written into ``-o DIR``."""
    # the report layer is imported when the command runs, so `cnnbench --help` stays light
    from cnnbench.report.io import write_report_into
    from cnnbench.results.merge import merge_reports
    from cnnbench.results.records import StatusSummary
    from cnnbench.results.schema import read_report, report_file

    try:
        parts = [(report_file(path), read_report(report_file(path))) for path in args.reports]
        merged = merge_reports(parts, partial=args.partial)
        directory = write_report_into(merged, Path(args.output))
    except (ValueError, OSError) as exc:  # MergeError, an unreadable or malformed report, an unwritable directory
        print(f"cnnbench merge: {exc}", file=sys.stderr)
        return 2
    counts = StatusSummary.of(merged.scenarios).by_status
    shown = ", ".join(f"{n} {status}" for status, n in counts.items() if n)
    name = (merged.suite or {}).get("name")
    print(f"merged {len(parts)} reports of suite {name!r}: {len(merged.scenarios)} scenarios ({shown}); report: "
          f"{directory / 'report.md'} (and report.json, report.html, results.csv)")  # fmt: skip
    return 0


def _gate(args: argparse.Namespace) -> int:
    """Judge a stored report (a whole run's, or a merged one) against a baseline as the run's own gate would:
    exit 1 when a group's accuracy or a program's throughput regressed, 0 when none did."""
    from dataclasses import replace as with_fields

    from cnnbench.report.io import write_report_into
    from cnnbench.report.run import terminal_summary
    from cnnbench.results import gate
    from cnnbench.results.records import StatusSummary
    from cnnbench.results.schema import read_report, report_file

    try:
        report = read_report(report_file(args.report))
        summary = _judge(report, Path(args.baseline))
        records = tuple(gate.judged(report.scenarios, summary))
        gated = with_fields(report, scenarios=records, gate=summary, summary=StatusSummary.of(records))
        if args.output:
            write_report_into(gated, Path(args.output))
    except (ValueError, OSError) as exc:  # BaselineError, UngatableReport, a malformed report, an unwritable dir
        print(f"cnnbench gate: {exc}", file=sys.stderr)
        return 2
    print("\n".join(terminal_summary(gated, width=100)))
    print(
        f"gate: {_regressions(summary)}, against {args.baseline}" + (f"; report: {args.output}" if args.output else "")
    )
    return 1 if _regressed(summary) else 0


def _export(args: argparse.Namespace) -> int:
    """Many runs' flat rows as one CSV or JSON Lines table, on stdout or into ``-o PATH``."""
    # the report layer is imported when the command runs, so `cnnbench --help` stays light
    from cnnbench.report.flat import joined
    from cnnbench.results.schema import read_report, report_file

    try:
        rows = joined([(str(path), read_report(report_file(path))) for path in args.reports])
        text = rows.csv() if args.csv else rows.jsonl()
        if args.output:
            atomic_write(Path(args.output), text)
    except (ValueError, OSError) as exc:  # an unreadable or malformed report, mixed kinds, an unwritable PATH
        print(f"cnnbench export: {exc}", file=sys.stderr)
        return 2
    if not args.output:
        sys.stdout.write(text)
    else:
        print(f"exported {len(rows.rows)} rows ({rows.kind}) of {len(args.reports)} reports to {args.output}",
              file=sys.stderr)  # fmt: skip
    return 0


NOUNS = {cache_store.PRETRAINED: "pretrained bases", cache_store.SIMILARITY: "similarity entries",
         cache_store.XLA: "compiled programs", cache_store.WEIGHTS: "imported weights"}  # fmt: skip


def _cache_info(args: argparse.Namespace) -> int:
    """Where the cache is and what it holds: a table, or ``--json``."""
    contents = cache_store.inspect(_cache(args))
    if args.json:
        print(json.dumps(contents.to_json(), indent=1, allow_nan=False))
        return 0
    if not contents.exists:
        print(f"cache {contents.root}: empty (no such directory)")
        return 0
    print(f"cache {contents.root}: {readable_size(contents.total_bytes)}")
    print(f"{NOUNS[cache_store.PRETRAINED]}: {len(contents.bases)}, {readable_size(contents.pretrained_bytes)}")
    if contents.bases:
        print(f"  {'arch':<13} {'input':>7} {'width':>5} {'steps':>6} {'source acc':>10} {'pretrain s':>10} "
              f"{'backend':<7} {'cnnbench':<8} {'size':>9}  entry")  # fmt: skip
    for base in contents.bases:
        print(_base_line(base))
    for name, size in contents.unfinished:
        print(f"  unfinished build (interrupted, or under way): {name}, {readable_size(size)}")
    programs = "; ".join(f"{p.backend}: {p.programs}, {readable_size(p.bytes)}" for p in contents.programs) or "none"
    print(f"{NOUNS[cache_store.XLA]} (XLA): {programs}")
    print(f"{NOUNS[cache_store.SIMILARITY]}: {contents.similarity_entries}, {readable_size(contents.similarity_bytes)}")
    if contents.weights_entries:
        print(f"{NOUNS[cache_store.WEIGHTS]}: {contents.weights_entries}, {readable_size(contents.weights_bytes)} "
              "(cnnbench weights list)")  # fmt: skip
    if contents.other_bytes:
        print(f"other files: {readable_size(contents.other_bytes)}")
    return 0


def _base_line(b: cache_store.Base) -> str:
    """A pretrained base's row of ``cache info``: ``-`` where its meta.json does not say, and why it is unusable."""
    shape = "-" if b.img_size is None else f"{b.img_size}×{b.img_size}×{b.in_chans}"
    width, steps, acc, seconds = (
        "-" if value is None else format(value, spec)
        for value, spec in ((b.width, "g"), (b.steps, "d"), (b.source_accuracy, ".1%"), (b.seconds, ".0f"))
    )
    rebuilt = "" if (b.problem or "").startswith("format ") else "; rebuilt on first use"  # old formats: never read
    problem = f": {b.problem}{rebuilt}" if b.problem else ""
    return (f"  {b.arch:<13} {shape:>7} {width:>5} {steps:>6} {acc:>10} {seconds:>10} {b.backend or '-':<7} "
            f"{b.cnnbench or '-':<8} {readable_size(b.bytes):>9}  {b.name}{problem}")  # fmt: skip


def _cache_clear(args: argparse.Namespace) -> int:
    """Empty the cache, or only its pretrained bases or compiled programs; say what went and the bytes freed."""
    root = _cache(args)
    parts = [part for part in cache_store.PARTS if getattr(args, part)] or list(cache_store.DEFAULT_PARTS)
    try:
        removed = cache_store.clear(root, parts)
    except OSError as exc:
        print(f"cnnbench cache clear: {exc}", file=sys.stderr)
        return 2
    for r in removed:
        print(f"removed {root / r.part}: {r.entries} {NOUNS[r.part]}, {readable_size(r.bytes)}")
    freed = sum(r.bytes for r in removed)
    print(f"freed {readable_size(freed)} ({freed:,} bytes) in {root}" if removed else f"nothing to clear in {root}")
    return 0


def _cache_key(args: argparse.Namespace) -> int:
    """The digest of the suite's pretrained bases (``cache_store.bases_key``), for a CI cache's key."""
    loaded = _suite_runner(args)
    if loaded is None:
        return 2
    print(cache_store.bases_key(*loaded))
    return 0


def _weights_import(args: argparse.Namespace) -> int:
    """Map a checkpoint file into a zoo arch and store it in the cache under a tag."""
    from cnnbench.engine import imported
    from cnnbench.weights import WeightsError
    from cnnbench.weights.convert import import_file

    path = Path(args.file)
    tag = args.name or f"{args.arch}-{path.name.split('.')[0]}"
    try:
        imported.destination(tag, _cache(args), replace=args.replace)  # a taken tag is told before the file is read
        result = import_file(path, args.arch, args.source)
        entry = imported.save(result, tag, path, _cache(args), replace=args.replace)
    except (WeightsError, KeyError) as exc:
        print(f"cnnbench weights import: {exc}", file=sys.stderr)
        return 2
    if entry.caveat:
        print(f"note: {entry.caveat}", file=sys.stderr)
    classes = f"{entry.num_classes} classes" if entry.num_classes else "no classifier"
    print(f"imported {path} as {entry.tag}: {entry.source} {entry.arch}, {classes}, input "
          f"{entry.img_size}×{entry.img_size}×{entry.in_chans}, {entry.preprocessing.describe()}")  # fmt: skip
    print(f"use it: pytest --cnnbench --cnnbench-pretrained {entry.tag}, or cnnbench.create_model({entry.arch!r}, "
          f"pretrained={entry.tag!r})")  # fmt: skip
    return 0


def _weights_list(args: argparse.Namespace) -> int:
    """The imported weights in the cache: a table, or ``--json``."""
    from cnnbench.engine import imported

    found = imported.entries(_cache(args))
    if args.json:
        print(json.dumps([e.to_json() if e else {"entry": str(p), "problem": why} for e, p, why in found], indent=1))
        return 0
    if not found:
        print(f"no imported weights in {imported.weights_dir(_cache(args))}")
        return 0
    print(f"{'tag':<24} {'arch':<13} {'source':<11} {'classes':>7} {'input':>11}  file")
    for entry, path, why in found:
        if entry is None:
            print(f"{path.name:<24} unusable: {why}")
        else:
            shape = f"{entry.img_size}×{entry.img_size}×{entry.in_chans}"
            print(
                f"{entry.tag:<24} {entry.arch:<13} {entry.source:<11} {entry.num_classes:>7} {shape:>11}  {entry.file}"
            )
    return 0


def _weights_export(args: argparse.Namespace) -> int:
    """Write imported weights, or a model a run kept (``--cnnbench-save-models``), as a torchvision state dict or a
    safetensors file."""
    from cnnbench.engine import imported, kept
    from cnnbench.weights import WeightsError
    from cnnbench.weights.convert import export_model

    suffix = ".pth" if args.to == "torchvision" else ".safetensors"
    output = Path(args.output or f"{Path(args.what).name}{suffix}")
    try:
        if kept.is_kept(Path(args.what)):
            meta, state = kept.load(Path(args.what))
            arch, source = meta["arch"], meta["source"]
            if source is None:
                raise WeightsError(f"{arch} has no reference implementation to export to")
            model = kept.as_zoo_model(meta, state)
        else:
            entry = imported.find(args.what, _cache(args))
            arch, source, model = entry.arch, entry.source, imported.load_model(args.what, _cache(args))
        export_model(model, arch, source, output, args.to,
                     {"arch": arch, "source": source, "cnnbench": cnnbench.__version__})  # fmt: skip
    except (WeightsError, KeyError, OSError) as exc:
        print(f"cnnbench weights export: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {output}: {arch} under {source}'s names, {readable_size(output.stat().st_size)}")
    return 0


def _archs(command: argparse.ArgumentParser, help: str = "zoo names") -> None:
    help = f"{help}, as several arguments or comma-separated (default: the suite's archs)"
    command.add_argument("archs", nargs="*", default=[], action=_Listed, metavar="ARCH", help=help)


def _suite(command: argparse.ArgumentParser, default: str, kind: str = "suite") -> None:
    command.add_argument("--suite", metavar="NAME|PATH", default=default,
                         help=f"a built-in {kind}'s name or a TOML path (default: {default})")  # fmt: skip


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cnnbench", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"cnnbench {cnnbench.__version__}")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="leave out the engine's progress on stderr (warnings and errors still show)")  # fmt: skip
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _inspection_commands(commands)
    _report_commands(commands)
    _cache_commands(commands)
    _weights_commands(commands)
    return parser


def _inspection_commands(commands: Any) -> None:
    """``zoo``, ``pretrain``, ``similarity``, ``suites`` and ``bench``."""
    zoo = commands.add_parser("zoo", help="the model zoo as a table (or --json)")
    zoo.add_argument("names", nargs="*", default=[], action=_Listed, metavar="NAME",
                     help="only these models, as several arguments or comma-separated")  # fmt: skip
    zoo.add_argument("--json", action="store_true", help="one JSON object per model")
    zoo.set_defaults(run=_zoo)
    for name, run, summary in (
        ("pretrain", _suite_command(_pretrain_rows, _print_pretrain),
         "pretrain bases on the source domain with a suite's recipe (fills the cache pytest uses)"),
        ("similarity", _suite_command(_similarity_rows, _print_similarity),
         "measured similarity of a suite's targets to the source domain, per arch"),
    ):  # fmt: skip
        command = commands.add_parser(name, help=summary)
        _archs(command)
        _suite(command, "smoke")
        command.add_argument("--cache", metavar="DIR", help=CACHE_HELP)
        command.add_argument("--json", action="store_true", help="print JSON rows instead of a table")
        command.set_defaults(run=run)
    suites = commands.add_parser("suites", help="the built-in suites (or --schema)")
    suites.add_argument("--schema", action="store_true",
                        help="print the JSON Schema of the suite format instead, for editors to check and complete "
                             "suite files")  # fmt: skip
    suites.set_defaults(run=_suites)
    bench = commands.add_parser("bench", help="time archs at their canonical config: img/s, memory, GMACs, "
                                "utilisation per batch × precision × mode (the hardware suite)")  # fmt: skip
    _archs(bench)
    _suite(bench, "hardware", "hardware suite")
    for option, what, example in (("batch", "batch sizes", "1,32"), ("precision", "fp32 and/or bf16", "fp32,bf16"),
                                  ("mode", "train and/or infer", "train,infer")):  # fmt: skip
        help = f"{what}, repeated or comma-separated: --{option} {example} (default: the suite's)"
        bench.add_argument(f"--{option}", metavar="LIST", default=[], action=_Listed, help=help)
    bench.add_argument("--rounds", metavar="N", type=int, help="timed rounds per point (default: the suite's)")
    bench.add_argument("--warmup", metavar="N", type=int, help="untimed calls before the rounds (default: the suite's)")
    bench.add_argument("--report", metavar="DIR", help="also write the report (json, md, html, csv) under DIR")
    bench.add_argument("--json", action="store_true", help="print the rows as a JSON list instead of a table")
    bench.set_defaults(run=_bench)


def _report_commands(commands: Any) -> None:
    """``compare``, ``merge``, ``gate`` and ``export``: commands over stored reports (no JAX)."""
    report = "a report.json or a run directory holding one"
    compare = commands.add_parser("compare", help="run reports side by side against the first (markdown; --html, "
                                  "--json); --fail-on-regression gates them")  # fmt: skip
    compare.add_argument("reference", metavar="A", help=f"the reference: {report}")
    compare.add_argument("others", metavar="B", nargs="+", help="the reports to compare with A (files or run dirs)")
    compare.add_argument("--markdown", metavar="PATH", help="also write the markdown to PATH")
    compare.add_argument("--html", metavar="PATH", help="write the comparison as a self-contained HTML page to PATH")
    compare.add_argument("--json", action="store_true",
                         help="print the comparison as JSON (schema cnnbench-compare/1, see cnnbench.report.compare; "
                              "its gate key: each later report's gate section with --fail-on-regression, else null) "
                              "instead of markdown")  # fmt: skip
    compare.add_argument("--fail-on-regression", action="store_true",
                         help="judge each later report against A as cnnbench gate does (the gate's rule, and the "
                              "tolerances and groups the report records) and exit 1 when any regressed")  # fmt: skip
    compare.set_defaults(run=_compare)
    merge = commands.add_parser("merge", help="join the reports of a suite's parts (--cnnbench-shard K/N) into one")
    merge.add_argument("reports", metavar="REPORT", nargs="+", help="each part's report.json (or its run directory)")
    merge.add_argument("-o", "--output", metavar="DIR", required=True,
                       help="directory the merged report (json, md, html, csv) is written into")  # fmt: skip
    merge.add_argument("--partial", action="store_true",
                       help="merge even when parts of the split are missing or did not finish")  # fmt: skip
    merge.set_defaults(run=_merge)
    gate = commands.add_parser("gate", help="judge a report (a whole run's or a merged one) against a baseline; "
                               "exit 1 on a regression")  # fmt: skip
    gate.add_argument("report", metavar="REPORT", help=report)
    gate.add_argument("--baseline", metavar="PATH", required=True, help="the stored baseline report.json")
    gate.add_argument("-o", "--output", metavar="DIR", help="also write the gated report (json, md, html, csv) here")
    gate.set_defaults(run=_gate)
    export = commands.add_parser("export", help="many runs' rows (results.csv's) as one CSV or JSON Lines table",
                                 description="Concatenate the flat rows of many runs, one per scenario (or bench "
                                 "point), each with its run's identity, as in each run's results.csv. Transfer and "
                                 "hardware runs have different columns: export each kind on its own (mixing them is "
                                 "refused).")  # fmt: skip
    export.add_argument("reports", metavar="REPORT", nargs="+", help=report)
    form = export.add_mutually_exclusive_group(required=True)
    form.add_argument("--csv", action="store_true", help="CSV with one header row")
    form.add_argument("--jsonl", action="store_true", help="JSON Lines: one object a row with the CSV's keys")
    export.add_argument("-o", "--output", metavar="PATH", help="write the table to PATH (default: stdout)")
    export.set_defaults(run=_export)


def _cache_commands(commands: Any) -> None:
    """``cache info``, ``cache clear`` and ``cache key``."""
    cache = commands.add_parser("cache", help="where the cache is and what it holds; empty it; its key for CI")
    actions = cache.add_subparsers(dest="action", required=True, metavar="ACTION")
    info = actions.add_parser("info", help="the cache's path, pretrained bases, compiled programs, similarity "
                              "entries and sizes")  # fmt: skip
    info.add_argument("--json", action="store_true", help="print it as one JSON object")
    info.set_defaults(run=_cache_info)
    clear = actions.add_parser("clear", help="empty the cache (or one part; imported weights only with --weights); "
                               "print what went and the bytes freed")  # fmt: skip
    part = clear.add_mutually_exclusive_group()
    part.add_argument("--pretrained", action="store_true",
                      help="only the pretrained bases (and the similarities measured with them)")  # fmt: skip
    part.add_argument("--programs", action="store_true", help="only XLA's compiled programs")
    part.add_argument(
        "--weights",
        action="store_true",
        help="only the imported weights (cnnbench weights import), which clear leaves otherwise",
    )
    clear.set_defaults(run=_cache_clear)
    for command in (info, clear):
        command.add_argument("--cache", metavar="DIR", help=CACHE_HELP)
    key = actions.add_parser("key", help="a digest of the suite's pretrained bases, for a CI cache's key: it changes "
                             "exactly when a base the suite would cache changes")  # fmt: skip
    _archs(key)
    _suite(key, "smoke")
    key.set_defaults(run=_cache_key, command="cache key", cache=None)


def _weights_commands(commands: Any) -> None:
    """``weights import``, ``weights list`` and ``weights export``."""
    weights = commands.add_parser("weights", help="import torchvision, timm or Keras checkpoints into the zoo; list "
                                  "them; export them back")  # fmt: skip
    actions = weights.add_subparsers(dest="action", required=True, metavar="ACTION")
    load = actions.add_parser("import", help="map a checkpoint file (.pth/.pt, .safetensors, Keras .weights.h5/.h5/"
                              ".keras) into a zoo arch and store it in the cache")  # fmt: skip
    load.add_argument("file", metavar="FILE", help="the checkpoint")
    load.add_argument("--arch", required=True, metavar="NAME", help="the zoo arch it is for (cnnbench zoo lists them)")
    load.add_argument("--from", dest="source", choices=("torchvision", "timm", "keras"),
                      help="whose names the file uses (default: keras for Keras files, else torchvision where it "
                      "defines the arch, timm where only timm does)")  # fmt: skip
    load.add_argument("--name", metavar="TAG", help="the tag to store it under (default: ARCH-<file name>)")
    load.add_argument("--replace", action="store_true", help="overwrite weights already stored under the tag")
    load.set_defaults(run=_weights_import)
    listing = actions.add_parser("list", help="the imported weights in the cache")
    listing.add_argument("--json", action="store_true", help="print one JSON object per entry")
    listing.set_defaults(run=_weights_list)
    export = actions.add_parser("export", help="write imported weights, or a model a run kept, as a torchvision "
                                "state dict or a safetensors file")  # fmt: skip
    export.add_argument("what", metavar="TAG|DIR", help="imported weights' tag, or a kept model's folder "
                        "(--cnnbench-save-models DIR: DIR/<scenario id>)")  # fmt: skip
    export.add_argument("--to", choices=("torchvision", "safetensors"), default="torchvision",
                        help="torchvision: a .pth state dict for load_state_dict; safetensors: the same names in a "
                        ".safetensors file (default: torchvision)")  # fmt: skip
    export.add_argument(
        "-o", "--output", metavar="PATH", help="the file to write (default: <TAG or DIR's name>.pth or .safetensors)"
    )
    export.set_defaults(run=_weights_export)
    for command in (load, listing, export):
        command.add_argument("--cache", metavar="DIR", help=CACHE_HELP)


@contextmanager
def _progress_on_stderr(level: int) -> Iterator[None]:
    """The ``cnnbench`` logger's records at ``level`` and above as plain lines on stderr while a command runs."""
    logger = logging.getLogger("cnnbench")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    previous = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False  # a root handler (absl's logging.basicConfig under orbax) would print them twice
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.level, logger.propagate = previous


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``cnnbench`` command line ``argv`` (default: the process's); returns its exit status."""
    args = _parser().parse_args(argv)
    with _progress_on_stderr(logging.WARNING if args.quiet else logging.INFO):
        return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
