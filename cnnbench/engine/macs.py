"""Multiply-accumulates (MACs) of a forward pass, counted exactly from its jaxpr, without allocating or compiling.

SPEC §2's reference figures (GMACs per image at each model's canonical input size) are MAC counts as
torchvision and timm publish them (what fvcore and ptflops report): one MAC per weight tap per output element of
every convolution and matrix product. XLA's cost analysis is not that number — it adds the element-wise work
(BatchNorm, activations, pooling, residual adds) and, at small sizes, drops the taps that fall on padding — so
this module counts MACs itself, by tracing the forward pass abstractly (``jax.make_jaxpr`` over ``nnx.split`` /
``nnx.merge`` with ``jax.ShapeDtypeStruct`` inputs) and summing over the jaxpr's equations:

* ``conv_general_dilated``: output elements × kernel taps × input channels per group (the kernel's ``I``
  dimension, already divided by ``feature_group_count``). Taps that fall on padding count, as fvcore and ptflops
  count them; ``rhs_dilation`` spreads the taps without adding any. With ``lhs_dilation`` (a transposed
  convolution) only the taps that land on real input samples count — input elements × kernel taps × output
  channels per group, the reference tools' ConvTranspose figure — not those on the inserted zeros.
* ``dot_general`` (dense layers, einsums, attention): output elements × the size of the contracted dimensions.
* Depthwise convolutions written as shifted multiply-adds (``cnnbench.zoo.layers.shifted_depthwise``, which
  MobileNetV2 and Xception use because its gradient is faster on XLA:CPU): each ``mul`` of a non-constant
  operand by one tap of a depthwise kernel — a per-channel vector sliced from a 4-D array of shape
  ``(kh, kw, 1, C)`` — counts one MAC per output element; the ``add`` that accumulates the taps does not count
  again. This equals what the grouped ``conv_general_dilated`` it replaces counts (padded taps included).
* Sub-jaxprs (``jit``/``pjit``, ``custom_jvp``/``custom_vjp`` calls, ``remat``, ``cond``, ``while``, ``scan``)
  are counted recursively: a ``scan`` body times its length, a ``while`` body once (its trip count is not known
  when tracing), a ``cond`` as its most expensive branch.

Not MACs: pooling, normalisation, activations and other element-wise work — and matrix products or convolutions
with a trace-time constant (an operand that depends on no argument of the traced function), which are fixed
resampling maps rather than learned layers: the zoo's ``adaptive_avg_pool`` is an einsum with constant averaging
matrices and counts as the pooling it implements. Learned weights are arguments when a module is counted (its
state is traced as an input); a plain function must take its weights as arguments too, or they count as constants.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.extend
import jax.numpy as jnp
from flax import nnx

from cnnbench.zoo import create_model, get_spec

__all__ = ["canonical_gmacs", "count_macs", "jaxpr_macs"]

# Ops that only move, reshape or cast values: a tap sliced from a depthwise kernel keeps its origin through them.
_STRUCTURAL = frozenset(
    {
        "slice",
        "squeeze",
        "broadcast_in_dim",
        "reshape",
        "convert_element_type",
        "dynamic_slice",
        "gather",
        "copy",
        "copy_p",
        "transpose",
        "reduce_precision",
    }
)


@dataclass(frozen=True)
class _Info:
    """What the counter knows of a value: whether it is a trace-time constant, and the shape of the root array
    (an argument or constant of the traced function) it was sliced or reshaped from, if any."""

    const: bool
    root_shape: tuple[int, ...] | None = None


_UNKNOWN = _Info(const=False)


def count_macs(
    model_or_fn: nnx.Module | Callable[[jax.Array], Any], input_shape: Sequence[int], dtype: Any = jnp.float32
) -> int:
    """MACs of one forward pass of ``model_or_fn`` on an input of ``input_shape`` (batch included: divide by the
    batch size for a per-image figure, which does not depend on it).

    A module is traced through ``nnx.split``/``nnx.merge`` in its current mode (call ``.eval()`` first for the
    inference figure) and may be abstract (built under ``nnx.eval_shape``); a function takes the input only, so
    any weights it closes over count as constants (see the module docstring). Nothing is allocated or compiled.
    """
    x = jax.ShapeDtypeStruct(tuple(input_shape), dtype)
    if isinstance(model_or_fn, nnx.Module):
        graphdef, state = nnx.split(model_or_fn)

        def forward(state: Any, x: jax.Array) -> Any:
            return nnx.merge(graphdef, state)(x)

        return jaxpr_macs(jax.make_jaxpr(forward)(state, x))
    return jaxpr_macs(jax.make_jaxpr(model_or_fn)(x))


def canonical_gmacs(name: str) -> float:
    """GMACs per image of zoo model ``name`` in eval mode at its canonical config (``get_spec(name)``: input size,
    channels and classes), the figure SPEC §2 and the published model tables give."""
    spec = get_spec(name)
    model = nnx.eval_shape(lambda: create_model(name))  # abstract: nothing is allocated
    model.eval()
    return count_macs(model, (1, spec.img_size, spec.img_size, spec.in_chans)) / 1e9


def jaxpr_macs(closed: jax.extend.core.ClosedJaxpr) -> int:
    """MACs of a closed jaxpr (from ``jax.make_jaxpr``): its arguments are variables, its constants constants."""
    jaxpr = closed.jaxpr
    env: dict[Any, _Info] = {}
    for var in jaxpr.constvars:
        env[var] = _Info(const=True, root_shape=tuple(var.aval.shape))
    for var in jaxpr.invars:
        env[var] = _Info(const=False, root_shape=tuple(var.aval.shape))
    return _walk(jaxpr, env)[0]


def _walk(jaxpr: Any, env: dict[Any, _Info]) -> tuple[int, list[_Info]]:
    """MACs of ``jaxpr`` given what is known of its inputs in ``env``, and what is known of its outputs."""
    total = 0
    for eqn in jaxpr.eqns:
        ins = [_lookup(env, v) for v in eqn.invars]
        macs, outs = _eqn_macs(eqn, ins)
        total += macs
        for var, info in zip(eqn.outvars, outs, strict=True):
            env[var] = info
    return total, [_lookup(env, v) for v in jaxpr.outvars]


def _lookup(env: dict[Any, _Info], var: Any) -> _Info:
    if isinstance(var, jax.extend.core.Literal):
        return _Info(const=True)
    return env.get(var, _UNKNOWN)


def _eqn_macs(eqn: Any, ins: list[_Info]) -> tuple[int, list[_Info]]:
    """MACs of one equation and what is known of its outputs."""
    name = eqn.primitive.name
    const = all(i.const for i in ins)
    default = [_Info(const=const)] * len(eqn.outvars)
    if name == "conv_general_dilated":
        return (0 if any(i.const for i in ins) else _conv_macs(eqn)), default
    if name == "dot_general":
        return (0 if any(i.const for i in ins) else _dot_macs(eqn)), default
    if name == "mul":
        return _tap_macs(eqn, ins), default
    if name in _STRUCTURAL:
        return 0, [_Info(const=ins[0].const, root_shape=ins[0].root_shape)]
    sub = _sub_jaxprs(eqn)
    if not sub:
        return 0, default
    if name == "scan":
        macs, _ = _call(sub[0], [_Info(const=i.const) for i in ins])
        return macs * int(eqn.params["length"]), default
    if name == "cond":  # invars: the branch index, then the operands
        return max(_call(j, [_Info(const=i.const) for i in ins[1:]])[0] for j in sub), default
    if name == "while":  # invars: cond consts, body consts, carry; the body runs an unknown number of times
        n_cond = int(eqn.params["cond_nconsts"])
        macs, _ = _call(eqn.params["body_jaxpr"], [_Info(const=i.const) for i in ins[n_cond:]])
        return macs, default
    # a call (jit/pjit, custom_jvp/vjp, remat, ...): its first sub-jaxpr takes the operands one to one
    macs, outs = _call(sub[0], ins)
    return macs, outs if len(outs) == len(eqn.outvars) else default


def _sub_jaxprs(eqn: Any) -> list[Any]:
    found: list[Any] = []
    for value in eqn.params.values():
        for item in value if isinstance(value, tuple | list) else (value,):
            if isinstance(item, jax.extend.core.ClosedJaxpr | jax.extend.core.Jaxpr):
                found.append(item)
    return found


def _call(sub: Any, ins: list[_Info]) -> tuple[int, list[_Info]]:
    jaxpr = sub.jaxpr if isinstance(sub, jax.extend.core.ClosedJaxpr) else sub
    env: dict[Any, _Info] = {var: _Info(const=True) for var in jaxpr.constvars}
    if len(ins) == len(jaxpr.invars):
        env.update(zip(jaxpr.invars, ins, strict=True))
    return _walk(jaxpr, env)


def _conv_macs(eqn: Any) -> int:
    lhs, rhs = (v.aval.shape for v in eqn.invars)
    out = eqn.outvars[0].aval.shape
    dn = eqn.params["dimension_numbers"]
    lhs_spatial, rhs_spatial, out_spatial = dn.lhs_spec[2:], dn.rhs_spec[2:], dn.out_spec[2:]
    per_group_in = rhs[dn.rhs_spec[1]]  # the kernel's I dimension: input channels / feature_group_count
    non_spatial = math.prod(out) // math.prod(out[d] for d in out_spatial)  # batch × output channels
    taps = 1
    for i in range(len(rhs_spatial)):
        taps *= _tap_pairs(
            n=lhs[lhs_spatial[i]],
            k=rhs[rhs_spatial[i]],
            out=out[out_spatial[i]],
            stride=eqn.params["window_strides"][i],
            pad_lo=eqn.params["padding"][i][0],
            lhs_dilation=eqn.params["lhs_dilation"][i],
            rhs_dilation=eqn.params["rhs_dilation"][i],
        )
    return non_spatial * per_group_in * taps


def _tap_pairs(*, n: int, k: int, out: int, stride: int, pad_lo: int, lhs_dilation: int, rhs_dilation: int) -> int:
    """(output position, kernel tap) pairs along one spatial dimension: all of them (padding included) for a
    plain convolution; those on real input samples, not on the inserted zeros, for a transposed one."""
    if lhs_dilation == 1:
        return out * k
    span = (n - 1) * lhs_dilation  # last real sample's position in the dilated input
    pairs = 0
    for o in range(out):
        for t in range(k):
            q = o * stride + t * rhs_dilation - pad_lo
            pairs += 0 <= q <= span and q % lhs_dilation == 0
    return pairs


def _dot_macs(eqn: Any) -> int:
    (lhs_contract, _), _ = eqn.params["dimension_numbers"]
    lhs = eqn.invars[0].aval.shape
    return math.prod(eqn.outvars[0].aval.shape) * math.prod(lhs[d] for d in lhs_contract)


def _tap_macs(eqn: Any, ins: list[_Info]) -> int:
    """One MAC per output element when a non-constant value is multiplied by one tap of a depthwise kernel."""
    for tap, other, var in ((ins[0], ins[1], eqn.invars[0]), (ins[1], ins[0], eqn.invars[1])):
        root = tap.root_shape
        if (
            root is not None
            and len(root) == 4
            and root[2] == 1
            and math.prod(var.aval.shape) == root[3]
            and not other.const
            and other.root_shape != root
        ):
            return math.prod(eqn.outvars[0].aval.shape)
    return 0
