"""Many train steps per dispatch against one, on the same compiled program, in rounds interleaved in one process.

``fit`` runs a chunk of up to ``batches.MAX_CHUNK`` steps in one dispatch of its train program; a program
dispatched once per step pays the launch, the transfer of the step's arguments and Python's loop every step. This
script times both on the engine cases (``engine_cases``): a chunk of k steps in one dispatch, and the same k steps
dispatched one by one without blocking in between (the loop ``fit`` ran before chunks), and prints ms per step::

    python benchmarks/steps_per_dispatch.py [ARCH ...] [--rounds 5] [--min-round-s 1]
"""

from __future__ import annotations

import statistics
from collections.abc import Callable

import jax
import numpy as np
from engine_cases import CASES, case_arguments, engine_step, interleaved, standard_recipe

from cnnbench.engine.batches import chunk_steps


def drivers(arch: str) -> tuple[dict[str, Callable[[], None]], int]:
    """The two ways of running k steps of ``arch``'s train program, each a function that blocks when done, and
    k."""
    case = CASES[arch]
    x, y = case.batch_data()
    step = engine_step(case, standard_recipe(), x, y).train_step
    k = chunk_steps(x.nbytes)
    carry = [step.trainable, step.rest, step.opt_state]
    ones = np.ones(k, np.float32)

    def run(n: int) -> jax.Array:
        carry[0], carry[1], carry[2], losses = step.program.compiled(*carry, step.hyper, ones, step.xs, step.ys, n)
        return losses

    def chunked() -> None:
        jax.block_until_ready(run(k))

    def one_by_one() -> None:
        jax.block_until_ready([run(1) for _ in range(k)])

    return {f"{k} steps per dispatch": chunked, "1 step per dispatch": one_by_one}, k


def main() -> None:
    parser = case_arguments(__doc__)
    args = parser.parse_args()
    print("| model | steps per chunk | ms per step, chunked | ms per step, one per dispatch | chunked speed-up |")
    print("|---|---:|---:|---:|---:|")
    for arch in args.archs:
        fns, k = drivers(arch)
        times = interleaved(fns, args.rounds, args.min_round_s)
        chunked, single = (statistics.median(t) / k * 1e3 for t in times.values())
        print(f"| {CASES[arch].name} | {k} | {chunked:.2f} | {single:.2f} | {single / chunked:.2f} |", flush=True)


if __name__ == "__main__":
    main()
