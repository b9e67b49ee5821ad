"""The ``cnnbench`` command: look at the zoo and the built-in suites, pretrain bases, measure similarity and compare
reports, without running pytest.

Only the config layer is imported at the top: each command imports the engine (and with it JAX), the zoo or the
report layer when it runs, so ``cnnbench --help``, ``cnnbench suites`` and ``cnnbench compare`` never load JAX.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

from cnnbench.config.hardware import HardwareSuite
from cnnbench.config.schema import suite_json_schema
from cnnbench.config.suite import SuiteError, builtin_suites, load_suite, read_suite
from cnnbench.fileio import atomic_write
from cnnbench.registry import UnknownNameError


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
    return Runner(suite, Path(args.cache), log=lambda line: print(line, file=sys.stderr, flush=True)), archs


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

    def values(text: str) -> tuple[str, ...]:
        return tuple(v.strip() for v in text.split(",") if v.strip())

    try:
        suite = read_suite(args.suite, registry_catalog())
        if not isinstance(suite, HardwareSuite):
            raise SuiteError(f"suite {suite.path} is a transfer suite; `cnnbench bench` runs a hardware suite "
                             "(kind = \"hardware\"), such as the built-in `hardware`")  # fmt: skip
        try:
            batches = tuple(int(b) for b in values(args.batch))
        except ValueError:
            raise ValueError(f"--batch {args.batch!r}: expected batch sizes such as 1,32,128") from None
        if (args.rounds is not None and args.rounds < 1) or (args.warmup is not None and args.warmup < 0):
            raise ValueError(f"--rounds must be at least 1 and --warmup not negative, got {args.rounds}, {args.warmup}")
        suite = narrow(suite, tuple(args.archs), batches, values(args.precision), values(args.mode))
        suite = replace(suite, bench=replace(suite.bench, **{k: v for k, v in
                        (("rounds", args.rounds), ("warmup", args.warmup)) if v is not None}))  # fmt: skip
    except ValueError as exc:  # SuiteError, or a batch size that is not an integer
        print(f"cnnbench bench: {exc}", file=sys.stderr)
        return 2
    log = partial(print, file=sys.stderr, flush=True)
    session = HardwareSession(suite, suite.points(), Path(args.report or "reports"), log=log,
                              writes_reports=bool(args.report))  # fmt: skip
    timer = Timer(suite.bench.rounds, suite.bench.min_round_s)
    for point in session.points:
        row = session.run(point, timer)
        log(f"{row.id}: {row.status}" + (f", {row.images_per_s:,.1f} img/s" if row.images_per_s else "")
            + (f" ({row.error})" if row.error else ""))  # fmt: skip
    if args.report:
        log(f"report: {session.write(finished=True)}")
    if args.json:
        print(json.dumps([row.to_json() for row in session.records], indent=1))
        return 0
    report = build_report(session.run_id, session.started, None, session.environment or {}, [], [],
                          hardware=session.records)  # fmt: skip
    print("\n".join(terminal.render(hardware.terminal_document(report), 120)))
    return 0


def _compare(args: argparse.Namespace) -> int:
    # the report layer is imported when the command runs, so `cnnbench --help` stays light
    from cnnbench.report.compare import compare, load_runs, render_html, render_markdown

    try:
        comparison = compare(load_runs([args.reference, *args.others]))
    except ValueError as exc:  # a path that is missing, not JSON or not a cnnbench/1 report
        print(f"cnnbench compare: {exc}", file=sys.stderr)
        return 2
    markdown = render_markdown(comparison)
    print(markdown, end="")
    for path, render in ((args.markdown, lambda: markdown), (args.html, lambda: render_html(comparison))):
        if not path:
            continue
        try:
            atomic_write(Path(path), render())
        except OSError as exc:
            print(f"cnnbench compare: cannot write {path}: {exc}", file=sys.stderr)
            return 2
    return 0


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
        baseline = gate.load_baseline(args.baseline)
        summary = gate.judge_run(baseline, report.scenarios, report.environment, report.suite)
        records = tuple(gate.judged(report.scenarios, summary))
        gated = with_fields(report, scenarios=records, gate=summary, summary=StatusSummary.of(records))
        if args.output:
            write_report_into(gated, Path(args.output))
    except (ValueError, OSError) as exc:  # BaselineError, UngatableReport, a malformed report, an unwritable dir
        print(f"cnnbench gate: {exc}", file=sys.stderr)
        return 2
    print("\n".join(terminal_summary(gated, width=100)))
    failed = [*summary.regressed, *summary.throughput_regressed]
    print(
        f"gate: {len(summary.regressed)} group(s) regressed in accuracy, {len(summary.throughput_regressed)} "
        f"program(s) in throughput, against {args.baseline}" + (f"; report: {args.output}" if args.output else "")
    )
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cnnbench", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    zoo = commands.add_parser("zoo", help="the model zoo as a table (or --json)")
    zoo.add_argument("names", nargs="*", help="only these models")
    zoo.add_argument("--json", action="store_true", help="one JSON object per model")
    zoo.set_defaults(run=_zoo)
    for name, run, summary in (
        ("pretrain", _suite_command(_pretrain_rows, _print_pretrain),
         "pretrain bases on the source domain with a suite's recipe (fills the cache pytest uses)"),
        ("similarity", _suite_command(_similarity_rows, _print_similarity),
         "measured similarity of a suite's targets to the source domain, per arch"),
    ):  # fmt: skip
        command = commands.add_parser(name, help=summary)
        command.add_argument("archs", nargs="*", help="zoo names (default: the suite's archs)")
        command.add_argument("--suite", default="smoke", help="built-in suite name or TOML path (default: smoke)")
        command.add_argument("--cache", default=".cnnbench-cache", help="cache directory (default: .cnnbench-cache)")
        command.add_argument("--json", action="store_true", help="print JSON rows instead of a table")
        command.set_defaults(run=run)
    suites = commands.add_parser("suites", help="the built-in suites (or --schema)")
    suites.add_argument("--schema", action="store_true",
                        help="print the JSON Schema of the suite format instead, for editors to check and complete "
                             "suite files")  # fmt: skip
    suites.set_defaults(run=_suites)
    bench = commands.add_parser("bench", help="time archs at their canonical config: img/s, memory, GMACs, "
                                "utilisation per batch × precision × mode (the hardware suite)")  # fmt: skip
    bench.add_argument("archs", nargs="*", help="zoo names (default: the suite's archs)")
    bench.add_argument("--suite", default="hardware", help="a hardware suite's name or TOML path (default: hardware)")
    bench.add_argument("--batch", default="", help="batch sizes, comma-separated (default: the suite's)")
    bench.add_argument("--precision", default="", help="fp32 and/or bf16, comma-separated (default: the suite's)")
    bench.add_argument("--mode", default="", help="train and/or infer, comma-separated (default: the suite's)")
    bench.add_argument("--rounds", type=int, help="timed rounds per point (default: the suite's)")
    bench.add_argument("--warmup", type=int, help="untimed calls before the rounds (default: the suite's)")
    bench.add_argument("--report", metavar="DIR", help="also write the report (json, md, html, csv) under DIR")
    bench.add_argument("--json", action="store_true", help="print the rows as a JSON list instead of a table")
    bench.set_defaults(run=_bench)
    compare = commands.add_parser("compare", help="run reports side by side against the first (markdown; --html)")
    compare.add_argument("reference", metavar="A", help="the reference: a report.json or a run directory holding one")
    compare.add_argument("others", metavar="B", nargs="+", help="the reports to compare with A (files or run dirs)")
    compare.add_argument("--markdown", metavar="PATH", help="also write the markdown to PATH")
    compare.add_argument("--html", metavar="PATH", help="write the comparison as a self-contained HTML page to PATH")
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
    gate.add_argument("report", metavar="REPORT", help="a report.json or a run directory holding one")
    gate.add_argument("--baseline", metavar="B", required=True, help="the stored baseline report.json")
    gate.add_argument("-o", "--output", metavar="DIR", help="also write the gated report (json, md, html, csv) here")
    gate.set_defaults(run=_gate)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
