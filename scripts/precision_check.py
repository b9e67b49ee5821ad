"""bf16 mixed precision against fp32 on a suite's scenarios: test accuracy per strategy and seed, and the largest
difference against the spread over seeds (the figures behind tests/test_precision.py's tolerance).

    python scripts/precision_check.py lenet5 --suite smoke --quadrants q2,q4 --seeds 0,1,2

Each precision gets its own Runner over one cache (the pretrained base is shared: bases pretrain in fp32).
Accuracy only; nothing is timed, so it may run beside other work.
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import replace

from cnnbench.config.precision import PRECISIONS
from cnnbench.config.scenario import Scenario
from cnnbench.config.suite import load_suite
from cnnbench.engine.catalog import registry_catalog
from cnnbench.engine.runner import Runner
from cnnbench.engine.timing import Timer, measure


class _Once(Timer):
    """Times each step once: accuracy is the point here."""

    def timed(self, fn):  # type: ignore[no-untyped-def]
        return measure(fn, rounds=1, min_round_s=0.0)

    inference = timed


def main() -> None:
    logging.basicConfig(format="%(message)s")  # cnnbench's progress (pretraining, targets) on stderr
    logging.getLogger("cnnbench").setLevel(logging.INFO)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("arch")
    parser.add_argument("--suite", default="smoke")
    parser.add_argument("--quadrants", default="q2,q4")
    parser.add_argument("--strategies", default="s1,s2,s3,scratch")
    parser.add_argument("--head", default="gap")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--cache", default=".cnnbench-cache")
    args = parser.parse_args()
    suite = load_suite(args.suite, registry_catalog())
    quadrants, strategies = args.quadrants.split(","), args.strategies.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]
    accuracy: dict[tuple[str, str, str, int], float] = {}
    for precision in PRECISIONS:
        runner = Runner(replace(suite, precision=precision), args.cache)
        for quadrant in quadrants:
            for strategy in strategies:
                for seed in seeds:
                    scenario = Scenario(args.arch, strategy, quadrant, args.head, seed, precision=precision)
                    outcome = runner.run(scenario, _Once())
                    if outcome.measurement is None:
                        sys.exit(f"{scenario.id} {precision}: {outcome.status}: {outcome.error}")
                    accuracy[precision, quadrant, strategy, seed] = outcome.measurement.metrics.test_accuracy or 0.0
    print("| arch | quadrant | strategy | fp32 mean % | seed spread pts | bf16 mean % | max abs(bf16 − fp32) pts |")
    print("|---|---|---|---:|---:|---:|---:|")
    for quadrant in quadrants:
        for strategy in strategies:
            fp32 = [accuracy["fp32", quadrant, strategy, s] for s in seeds]
            bf16 = [accuracy["bf16", quadrant, strategy, s] for s in seeds]
            gap = max(abs(a - b) for a, b in zip(fp32, bf16, strict=True))
            means = (100 * sum(fp32) / len(seeds), 100 * (max(fp32) - min(fp32)), 100 * sum(bf16) / len(seeds))
            print(f"| {args.arch} | {quadrant} | {strategy} | {means[0]:.1f} | {means[1]:.1f} | {means[2]:.1f} | "
                  f"{100 * gap:.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()
