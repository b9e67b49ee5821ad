"""How one scenario's train step scales over data-parallel devices: the engine's train program at batch 64 on 1, 2
and 4 devices (``DataParallel``), the same global batch split over them.

On a CPU the devices are forced host devices (``XLA_FLAGS=--xla_force_host_platform_device_count``), all sharing
the machine's cores, so this measures what splitting costs there, not a speed-up; on a GPU or TPU machine run it with
the real devices. Each device count runs in its own process (the flag is read when JAX starts)::

    python benchmarks/data_parallel.py [ARCH ...] [--devices 1,2,4]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from dataclasses import replace

CHILD = "--child"


def child(arch: str, devices: int, rounds: int) -> dict:
    """In a process that sees ``devices`` devices: the median seconds of one train step (a dispatch of one step)
    of ``arch`` at benchmark scale over all of them."""
    from engine_cases import CASES, Case, standard_recipe

    from cnnbench.engine.batches import StepBatches
    from cnnbench.engine.heads import create_head
    from cnnbench.engine.mesh import DataParallel
    from cnnbench.engine.timing import measure
    from cnnbench.engine.train import TransferModel, fit
    from cnnbench.zoo import create_model, get_spec

    bench = get_spec(arch).bench_config
    case = CASES.get(arch) or Case(arch, bench["img_size"], bench["in_chans"], bench["width"], 10, 64)
    parallel = DataParallel.of(devices)
    x, y = case.batch_data()
    config = replace(standard_recipe(), steps=1, eval_points=1, warmup_steps=0, batch_size=case.batch)
    base = create_model(arch, num_classes=0, img_size=case.img_size, in_chans=case.in_chans, width=case.width)
    head = create_head("gap", base.feature_shape, case.classes, seed=0)
    fitted = fit(TransferModel.build(base, head, case.classes, seed=0), (), head.loss, StepBatches(lambda _: (x, y)),
                 (x, y), config, lr_base=config.learning_rate, lr_head=config.learning_rate,
                 weight_decay_head=head.weight_decay, parallel=parallel)  # fmt: skip
    assert fitted.step is not None
    return {"arch": arch, "devices": parallel.size, "step_s": measure(fitted.step.replay(), rounds, 1.0).median}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("archs", nargs="*", default=["lenet5", "resnet18"])
    parser.add_argument("--devices", default="1,2,4")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(CHILD, action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    counts = [int(d) for d in args.devices.split(",")]
    if args.child:
        print(json.dumps(child(args.archs[0], counts[0], args.rounds)))
        return
    print("| arch | devices | ms / step (global batch 64) | vs 1 device |")
    print("|---|---:|---:|---:|")
    for arch in args.archs:
        first = None
        for devices in counts:
            env = os.environ | {"XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}
            command = [sys.executable, __file__, arch, "--devices", str(devices), "--rounds", str(args.rounds), CHILD]
            out = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
            row = json.loads(out.stdout.strip().splitlines()[-1])
            first = first or row["step_s"]
            print(f"| {arch} | {devices} | {1e3 * row['step_s']:.1f} | {first / row['step_s']:.2f}× |", flush=True)


if __name__ == "__main__":
    main()
