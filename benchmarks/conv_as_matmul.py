"""XLA's convolution against the same convolution as one matrix product over shifted input patches, forward and
backward, for every distinct convolution of a zoo model, in rounds interleaved in one process.

Small channel counts are where a convolution kernel has least to work with: a 3×3 convolution of 16 channels is
a product with an inner dimension of 144. ``cnnbench.zoo.layers.patch_conv`` builds the patches from the input's
``kh × kw`` strided slices and multiplies them by the kernel reshaped to ``(kh·kw·cin, cout)``: the same numbers
through XLA's dot, whose CPU kernels are the better tuned, and its gradient through the dot's and the slices' (pads
and adds). The zoo takes that path for every 1×1 convolution, and for larger kernels below ``layers.PATCH_LIMIT``
patch elements per image; this script finds the convolutions of an arch's forward pass (from its jaxpr, at the
arch's benchmark scale, or its canonical config with ``--canonical``, and batch 64 unless told), and times, for each
distinct one, a train step's worth of work on it — the output and the gradients with respect to the input and the
kernel — both ways; grouped and depthwise convolutions are left out. The last line weighs each convolution by how
often the model runs it::

    python benchmarks/conv_as_matmul.py [ARCH ...] [--batch 64] [--canonical] [--rounds 5] [--steps ARCH ...]

``--steps`` adds the engine's whole train step (``engine_cases``) of the cases named, compiled once with every
convolution as XLA's and once as the zoo builds it, timed in interleaved rounds.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from engine_cases import CASES, engine_step, interleaved, standard_recipe, use_xla_convolutions

from cnnbench.zoo import create_model, get_spec, layers

Conv = tuple[tuple[int, ...], tuple[int, ...], tuple[int, int], tuple[tuple[int, int], ...]]  # x, w, strides, pads


def convolutions(arch: str, batch: int, canonical: bool = False) -> Counter[Conv]:
    """Each distinct ungrouped NHWC convolution of ``arch``'s forward pass, at benchmark scale or at its canonical
    config, and how often it runs."""
    spec = get_spec(arch)
    config = {"img_size": spec.img_size, "in_chans": spec.in_chans} if canonical else dict(spec.bench_config)
    model = create_model(arch, **config)
    model.eval()  # no BatchNorm statistics to update inside the trace
    use_xla_convolutions(model)  # to find every convolution in the jaxpr
    size, chans = config.get("img_size", 32), config.get("in_chans", 1)
    jaxpr = jax.make_jaxpr(lambda x: model(x))(jnp.zeros((batch, size, size, chans), jnp.float32))
    found: Counter[Conv] = Counter()

    def visit(eqns: list) -> None:
        for eqn in eqns:
            for param in eqn.params.values():  # the bodies of nested calls (pjit, custom_vjp, remat)
                for sub in param if isinstance(param, tuple | list) else (param,):
                    inner = getattr(sub, "jaxpr", sub)
                    if hasattr(inner, "eqns"):
                        visit(inner.eqns)
            if eqn.primitive.name != "conv_general_dilated" or eqn.params["feature_group_count"] != 1:
                continue
            dn = eqn.params["dimension_numbers"]
            assert (dn.lhs_spec, dn.rhs_spec) == ((0, 3, 1, 2), (3, 2, 0, 1)), dn  # NHWC input, HWIO kernel
            x, w = (tuple(v.aval.shape) for v in eqn.invars[:2])
            found[(x, w, tuple(eqn.params["window_strides"]), tuple(map(tuple, eqn.params["padding"])))] += 1

    visit(jaxpr.jaxpr.eqns)
    return found


@contextmanager
def patch_limit(elements: int) -> Iterator[None]:
    """``layers.PATCH_LIMIT`` set to ``elements`` while tracing: a huge limit sends every ungrouped convolution to
    the product."""
    saved, layers.PATCH_LIMIT = layers.PATCH_LIMIT, elements
    try:
        yield
    finally:
        layers.PATCH_LIMIT = saved


def train_work(as_product: bool, conv_args: Conv) -> tuple[Callable[[], None], Any]:
    """A compiled function computing the convolution's output and its gradients with respect to input and kernel
    (what a train step asks of it), as XLA's convolution or as ``layers.patch_conv``'s product; the call that runs
    it once, and its outputs for the equality check."""
    x_shape, w_shape, strides, pads = conv_args
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal(x_shape, dtype=np.float32))
    w = jnp.asarray(rng.standard_normal(w_shape, dtype=np.float32) / np.sqrt(np.prod(w_shape[:3])))
    dn = jax.lax.conv_dimension_numbers(x_shape, w_shape, ("NHWC", "HWIO", "NHWC"))

    conv = layers.patch_conv if as_product else jax.lax.conv_general_dilated

    def loss(x: jax.Array, w: jax.Array) -> jax.Array:
        return jnp.sum(jnp.tanh(conv(x, w, strides, pads, dimension_numbers=dn)))

    with patch_limit(sys.maxsize):
        fn = jax.jit(jax.value_and_grad(loss, argnums=(0, 1))).lower(x, w).compile()
    out = fn(x, w)
    return lambda: jax.block_until_ready(fn(x, w)), out


def whole_steps(archs: list[str], rounds: int) -> None:
    """The engine's whole train step of each ``engine_cases`` case with every convolution as XLA's and with the
    zoo's own choice, in interleaved rounds of at least 1 s."""
    print("\n| model | XLA convolutions ms | the zoo's (products) ms | speed-up | compile s, XLA's → the zoo's |")
    print("|---|---:|---:|---:|---|")
    config = standard_recipe()
    for arch in archs:
        case = CASES[arch]
        x, y = case.batch_data()
        xla = engine_step(case, config, x, y, xla_convolutions=True)
        zoo = engine_step(case, config, x, y)
        times = interleaved({"xla": xla.step, "zoo": zoo.step}, rounds, 1.0)
        ms = {k: 1e3 * statistics.median(v) for k, v in times.items()}
        print(f"| {case.name} | {ms['xla']:.1f} | {ms['zoo']:.1f} | {ms['xla'] / ms['zoo']:.2f} "
              f"| {xla.compile_s:.1f} → {zoo.compile_s:.1f} |")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("archs", nargs="*", default=["lenet5", "resnet18"])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--canonical", action="store_true", help="the archs' canonical configs (e.g. resnet50 at "
                        "224 px), not their benchmark scale")  # fmt: skip
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--min-round-s", type=float, default=0.2)
    parser.add_argument("--steps", nargs="*", default=[], metavar="ARCH", help=f"also time the engine's whole train "
                        f"step of these cases ({', '.join(CASES)})")  # fmt: skip
    args = parser.parse_args()
    print("| arch | input | kernel | stride | runs | XLA conv ms | as matmul ms | speed-up |")
    print("|---|---|---|---|---:|---:|---:|---:|")
    for arch in args.archs:
        total = {"conv": 0.0, "matmul": 0.0}
        for conv_args, runs in convolutions(arch, args.batch, args.canonical).items():
            (a, a_out), (b, b_out) = train_work(False, conv_args), train_work(True, conv_args)
            for p, q in zip(jax.tree.leaves(a_out), jax.tree.leaves(b_out), strict=True):
                p, q = np.asarray(p), np.asarray(q)  # a gradient summed over a large batch×map: atol grows with it
                np.testing.assert_allclose(p, q, rtol=2e-3, atol=max(2e-3, 2e-5 * float(np.abs(q).max())))
            times = interleaved({"conv": a, "matmul": b}, args.rounds, args.min_round_s)
            ms = {k: 1e3 * statistics.median(v) for k, v in times.items()}
            for k in total:
                total[k] += runs * ms[k]
            x, w, strides, _ = conv_args
            print(f"| {arch} | {'×'.join(map(str, x))} | {'×'.join(map(str, w))} | {strides[0]} | {runs} "
                  f"| {ms['conv']:.3f} | {ms['matmul']:.3f} | {ms['conv'] / ms['matmul']:.2f} |")  # fmt: skip
        print(f"| {arch} | **every convolution, weighted by runs** | | | | {total['conv']:.2f} | {total['matmul']:.2f} "
              f"| {total['conv'] / total['matmul']:.2f} |")  # fmt: skip

    if args.steps:
        whole_steps(args.steps, args.rounds)


if __name__ == "__main__":
    main()
