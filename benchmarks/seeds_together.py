"""What training a group's seeds together costs against training them one by one, through the runner itself:
``Runner.train`` of S seeds' scenarios at once (one program vmapped over their stacked states, as
``--cnnbench-seeds-together on`` runs them) against S calls of one seed each, in rounds interleaved in one process.

Each round trains the smoke suite's ``s1`` scenario with the gap head on one quadrant — planning, the fit with its
evaluation points, the test evaluation — both ways, after one untimed round that compiles and pretrains. It prints
the wall seconds per round both ways and their ratio (above 1: together is faster)::

    python benchmarks/seeds_together.py [ARCH ...] [--seeds 3] [--rounds 3] [--quadrant q4]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from cnnbench.config.scenario import Scenario
from cnnbench.config.suite import load_suite
from cnnbench.engine.catalog import registry_catalog
from cnnbench.engine.runner import Runner, Trained


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("archs", nargs="*", default=["lenet5", "resnet18"])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quadrant", default="q4")
    args = parser.parse_args()
    print("| model | quadrant | seeds | s per round, together | s per round, one by one | together speed-up |")
    print("|---|---|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as cache:
        suite = load_suite("smoke", registry_catalog())
        runner = Runner(replace(suite, seeds=tuple(range(args.seeds))), Path(cache))
        for arch in args.archs:
            group = [Scenario(arch, "s1", args.quadrant, "gap", s, multi_seed=True) for s in range(args.seeds)]

            def together(group: list[Scenario] = group) -> None:
                assert all(isinstance(t, Trained) for t in runner.train(group))

            def one_by_one(group: list[Scenario] = group) -> None:
                assert all(isinstance(runner.train([s])[0], Trained) for s in group)

            systems: dict[str, Callable[[], None]] = {"together": together, "one by one": one_by_one}
            for fn in systems.values():  # compiles, and pretrains the arch once
                fn()
            times: dict[str, list[float]] = {name: [] for name in systems}
            for _ in range(args.rounds):
                for name, fn in systems.items():
                    t0 = time.perf_counter()
                    fn()
                    times[name].append(time.perf_counter() - t0)
            a, b = (statistics.median(times[name]) for name in systems)
            print(f"| {arch} | {args.quadrant} | {args.seeds} | {a:.1f} | {b:.1f} | {b / a:.2f} |", flush=True)


if __name__ == "__main__":
    main()
