"""What training a group's seeds in one program would buy: S seeds' train steps vmapped into one program against
the same S steps run as S programs, in rounds interleaved in one process.

Issue 15 asks for a group's seeds to train together, vmapped over stacked states. Before building that into the
runner, this script measures it on this device with the engine's own step (``engine.train._train_steps``, the
program every scenario runs) on the ``engine_cases`` models: S independently initialised models, stacked, one
dispatch of a chunk of steps for all of them, against S dispatches of the single-model program on the same
batches. It prints ms per seed-step both ways and their ratio::

    python benchmarks/seeds_vmapped.py [ARCH ...] [--seeds 3] [--rounds 5] [--min-round-s 1]
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import replace
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from engine_cases import CASES, case_arguments, interleaved, standard_recipe
from flax import nnx

from cnnbench.engine.batches import chunk_steps
from cnnbench.engine.heads import create_head
from cnnbench.engine.train import TransferModel, _train_steps, optimizer, trainable_filter
from cnnbench.zoo import create_model


def _states(arch: str, seed: int) -> tuple:
    case = CASES[arch]
    base = create_model(case.arch, num_classes=0, img_size=case.img_size, in_chans=case.in_chans, width=case.width,
                        rngs=nnx.Rngs(seed))  # fmt: skip
    head = create_head("gap", base.feature_shape, case.classes, seed=seed)
    model = TransferModel.build(base, head, case.classes, seed=seed)
    model.train()
    graphdef, trainable, rest = nnx.split(model, trainable_filter(()), ...)
    return graphdef, trainable, rest, optimizer("adamw").init(trainable), head.loss


def drivers(arch: str, seeds: int) -> tuple[dict[str, Callable[[], None]], int]:
    """The S seeds' chunk of k steps as one vmapped program and as S programs, each a function that blocks when
    done, and k."""
    case = CASES[arch]
    config = replace(standard_recipe(), batch_size=case.batch)
    x, y = case.batch_data()
    k = chunk_steps(x.nbytes)
    hyper = {"lr_base": np.float32(config.learning_rate), "lr_head": np.float32(config.learning_rate),
             "wd_base": np.float32(config.weight_decay), "wd_head": np.float32(1e-4),
             "clip_norm": np.float32(config.clip_norm)}  # fmt: skip
    built = [_states(arch, s) for s in range(seeds)]
    graphdef, loss = built[0][0], built[0][4]
    static = (graphdef, (), loss, "adamw")
    ones = np.ones(k, np.float32)
    xs, ys = jnp.asarray(np.broadcast_to(x, (k, *x.shape))), jnp.asarray(np.broadcast_to(y, (k, *y.shape)))

    single = jax.jit(partial(_train_steps, *static), donate_argnums=(0, 1, 2))
    carries = [list(b[1:4]) for b in built]

    def one_per_seed() -> None:
        out = []
        for carry in carries:
            carry[0], carry[1], carry[2], losses = single(*carry, hyper, ones, xs, ys, k)
            out.append(losses)
        jax.block_until_ready(out)

    stacked = [jax.tree.map(lambda *a: jnp.stack(a), *[b[i] for b in built]) for i in (1, 2, 3)]
    in_axes = (0, 0, 0, None, None, 0, 0, None)
    vmapped = jax.jit(jax.vmap(partial(_train_steps, *static), in_axes=in_axes), donate_argnums=(0, 1, 2))
    xss, yss = jnp.stack([xs] * seeds), jnp.stack([ys] * seeds)

    def together() -> None:
        stacked[0], stacked[1], stacked[2], losses = vmapped(*stacked, hyper, ones, xss, yss, k)
        jax.block_until_ready(losses)

    return {"vmapped": together, "one program per seed": one_per_seed}, k


def main() -> None:
    parser = case_arguments(__doc__)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    print("| model | seeds | ms per seed-step, vmapped | ms per seed-step, a program per seed | vmapped speed-up |")
    print("|---|---:|---:|---:|---:|")
    for arch in args.archs:
        fns, k = drivers(arch, args.seeds)
        times = interleaved(fns, args.rounds, args.min_round_s)
        vmapped, serial = (statistics.median(t) / (k * args.seeds) * 1e3 for t in times.values())
        print(f"| {CASES[arch].name} | {args.seeds} | {vmapped:.2f} | {serial:.2f} | {serial / vmapped:.2f} |",
              flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
