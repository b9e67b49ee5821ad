"""How much of its own train step a scenario's whole ``fit`` loop keeps, for the first fit of new programs and for a
second fit of the same programs, in one process.

A ``scratch`` scenario of the ``standard`` suite (gap head) is fitted twice on ``q1`` and twice on ``q3``; each
fit's images/s over its training clock is divided by its step's (one step per dispatch, median of 5 rounds). The
first fit pays the first runs of its just-compiled programs; the second shows the loop itself::

    python benchmarks/fit_loop.py [ARCH]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from cnnbench.config.scenario import Scenario
from cnnbench.config.suite import load_suite
from cnnbench.engine.catalog import registry_catalog
from cnnbench.engine.runner import Runner
from cnnbench.engine.timing import measure


def main() -> None:
    arch = sys.argv[1] if len(sys.argv) > 1 else "lenet5"
    print("| fit | quadrant | loop img/s | step img/s | loop / step |")
    print("|---|---|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as cache:
        runner = Runner(load_suite("standard", registry_catalog()), Path(cache))
        for quadrant in ("q1", "q3"):
            for which in ("first", "second"):
                plan = runner.plan(Scenario(arch, "scratch", quadrant, "gap", 0))
                fitted = runner.fit(plan)
                assert fitted.step is not None
                loop = plan.config.steps * plan.config.batch_size / fitted.train_s
                step = plan.config.batch_size / measure(fitted.step.replay(), 5, 0.5).median
                print(f"| {which} | {quadrant} | {loop:,.0f} | {step:,.0f} | {loop / step:.2f} |", flush=True)


if __name__ == "__main__":
    main()
