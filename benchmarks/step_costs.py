"""The measured train step of every zoo arch at benchmark scale, as a scenario's training loop runs it: the table
``cnnbench.engine.cost.STEP_S`` that balances ``--cnnbench-shard`` parts.

Each arch at its benchmark config (32×32 grey, the zoo's benchmark width) under the ``gap`` head with 10 classes,
batch 64, every parameter training with the ``standard`` recipe, is fitted for one chunk of 64 steps (one dispatch
of the engine's train program, as ``fit`` runs a scenario) after a first fit that compiles; the step is that fit's
training seconds over its steps, the median of ``--rounds`` fits. Run it alone on the machine::

    python benchmarks/step_costs.py [ARCH ...]   # default: every zoo arch

and paste the printed table into ``cnnbench/engine/cost.py``.
"""

from __future__ import annotations

import argparse
import statistics
from dataclasses import replace

from engine_cases import Case, standard_recipe

from cnnbench.engine.batches import MAX_CHUNK, StepBatches
from cnnbench.engine.heads import create_head
from cnnbench.engine.train import TransferModel, fit
from cnnbench.zoo import create_model, get_spec, list_models


def loop_step(case: Case, rounds: int) -> tuple[float, float]:
    """Median seconds per step of ``rounds`` fits of one 64-step chunk, and the first fit's compile seconds."""
    config = replace(standard_recipe(), steps=MAX_CHUNK, eval_points=1, warmup_steps=0, batch_size=case.batch)
    x, y = case.batch_data()
    seconds, compile_s = [], 0.0
    for i in range(rounds + 1):  # the first fit compiles and runs the programs for the first time
        base = create_model(case.arch, num_classes=0, img_size=case.img_size, in_chans=case.in_chans,
                            width=case.width)  # fmt: skip
        head = create_head("gap", base.feature_shape, case.classes, seed=0)
        fitted = fit(TransferModel.build(base, head, case.classes, seed=0), (), head.loss,
                     StepBatches(lambda _: (x, y)), (x, y), config, lr_base=config.learning_rate,
                     lr_head=config.learning_rate, weight_decay_head=head.weight_decay)  # fmt: skip
        if i == 0:
            compile_s = fitted.compile_s
        else:
            seconds.append(fitted.train_s / config.steps)
    return statistics.median(seconds), compile_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("archs", nargs="*", default=list_models(), help="zoo names (default: all)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rows = {}
    for arch in args.archs:
        bench = get_spec(arch).bench_config
        case = Case(arch, bench["img_size"], bench["in_chans"], bench["width"], 10, 64)
        rows[arch], compile_s = loop_step(case, args.rounds)
        print(f"{arch}: {1e3 * rows[arch]:.1f} ms per step in the loop (compile {compile_s:.1f} s)", flush=True)
    print("STEP_S = {")
    for arch, seconds in rows.items():
        print(f'    "{arch}": {seconds:.4f},')
    print("}")


if __name__ == "__main__":
    main()
