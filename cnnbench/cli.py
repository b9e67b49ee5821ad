"""The ``cnnbench`` command: look at the zoo and the built-in suites, and pretrain bases, without running pytest."""

from __future__ import annotations

import argparse
import json
import sys


def _zoo_rows(names: list[str]) -> list[dict]:
    """One row per model: canonical params and, at benchmark scale, params and GFLOPs (from XLA cost analysis)."""
    import jax
    from flax import nnx

    from cnnbench.train import flops
    from cnnbench.zoo import count_params, create_model, get_spec

    rows = []
    for name in names:
        spec = get_spec(name)
        bench = dict(spec.bench_config)
        model = nnx.eval_shape(lambda: create_model(name, **bench))  # abstract: nothing is allocated
        model.eval()
        graphdef, state = nnx.split(model)
        x = jax.ShapeDtypeStruct((1, bench["img_size"], bench["img_size"], bench["in_chans"]), "float32")
        compiled = jax.jit(lambda s, x: nnx.merge(graphdef, s)(x)).lower(state, x).compile()
        rows.append({
            "name": name,
            "family": spec.family,
            "paper": spec.paper,
            "year": spec.year,
            "params": spec.params,
            "bench_config": bench,
            "bench_params": count_params(model)[0],
            "bench_gflops": (flops(compiled) or 0.0) / 1e9,
            "stages": list(spec.stages),
        })
    return rows


def _zoo(args: argparse.Namespace) -> int:
    from cnnbench.registry import UnknownNameError
    from cnnbench.zoo import get_spec, list_models

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
    print(f"{'name':<13} {'family':<11} {'year':>4} {'canonical params':>16} {'bench params':>12} "
          f"{'bench GFLOPs':>12}  stages")
    for r in rows:
        print(f"{r['name']:<13} {r['family']:<11} {r['year']:>4} {r['params']:>16,} {r['bench_params']:>12,} "
              f"{r['bench_gflops']:>12.4f}  {', '.join(r['stages'])}")
    return 0


def _pretrain(args: argparse.Namespace) -> int:
    from pathlib import Path

    from cnnbench.registry import UnknownNameError
    from cnnbench.scenario import Runner
    from cnnbench.suite import SuiteError, load_suite
    from cnnbench.zoo import get_spec

    try:
        suite = load_suite(args.suite)
        archs = args.archs or list(suite.archs)
        for arch in archs:
            get_spec(arch)
    except (SuiteError, UnknownNameError) as exc:
        print(f"cnnbench pretrain: {exc}", file=sys.stderr)
        return 2
    runner = Runner(suite, Path(args.cache), log=lambda line: print(line, file=sys.stderr, flush=True))
    rows = []
    for arch in archs:
        result = runner.pretrained(arch)
        rows.append({
            "arch": arch,
            "width": suite.width(arch),
            "source_accuracy": result.source_accuracy,
            "seconds": result.seconds,
            "cache_hit": result.cache_hit,
            "path": str(result.path),
        })
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(f"{'arch':<13} {'width':>5} {'source accuracy':>15} {'pretrain s':>10}  cache")
    for r in rows:
        print(f"{r['arch']:<13} {r['width']:>5g} {r['source_accuracy']:>15.1%} {r['seconds']:>10.0f}  "
              f"{'hit' if r['cache_hit'] else 'built'} {r['path']}")
    return 0


def _suites(_: argparse.Namespace) -> int:
    from cnnbench.suite import builtin_suites, load_suite

    for name in builtin_suites():
        suite = load_suite(name)
        print(f"{name:<10} {len(suite.scenarios()):>4} scenarios  {suite.description}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cnnbench", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    zoo = commands.add_parser("zoo", help="the model zoo as a table (or --json)")
    zoo.add_argument("names", nargs="*", help="only these models")
    zoo.add_argument("--json", action="store_true", help="one JSON object per model")
    zoo.set_defaults(run=_zoo)
    pretrain = commands.add_parser(
        "pretrain", help="pretrain bases on the source domain with a suite's recipe (fills the cache pytest uses)"
    )
    pretrain.add_argument("archs", nargs="*", help="zoo names (default: the suite's archs)")
    pretrain.add_argument("--suite", default="smoke", help="built-in suite name or TOML path (default: smoke)")
    pretrain.add_argument("--cache", default=".cnnbench-cache", help="cache directory (default: .cnnbench-cache)")
    pretrain.add_argument("--json", action="store_true", help="one JSON object per arch")
    pretrain.set_defaults(run=_pretrain)
    commands.add_parser("suites", help="the built-in suites").set_defaults(run=_suites)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
