"""The tensor-by-tensor correspondence between a zoo model and a checkpoint file, both ways.

:func:`slots` lists every variable of a zoo model (parameters and BatchNorm statistics) with the name and shape of
the tensor that fills it in a source's files and the layout change between them: PyTorch stores a convolution's
kernel as (out, in, kh, kw) and a dense one as (out, in), where flax has (kh, kw, in, out) and (in, out); a dense
layer that reads a flattened map (VGG's and AlexNet's first) takes it in (C, H, W) order, flax's in (H, W, C);
Keras stores a depthwise kernel as (kh, kw, C, 1), flax as (kh, kw, 1, C). :func:`fill` checks a file against the
slots — every tensor used, every slot filled, every shape right — before it writes a single value, and
:func:`extract` writes a model back out under the source's names.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from flax import nnx

from cnnbench.zoo import ZooModel, get_spec

from .conventions import Convention
from .files import Tensors, WeightsError

_TORCH_LEAF = {"kernel": "weight", "scale": "weight", "bias": "bias", "mean": "running_mean", "var": "running_var"}
_KERAS_INDEX = {"kernel": 0, "scale": 0, "bias": 1, "mean": 2, "var": 3}
_KERAS_PART = {"depthwise": 0, "pointwise": 1}  # the two kernels of one SeparableConv2D
TORCH_BN_COUNTER = "num_batches_tracked"  # a PyTorch BatchNorm buffer with no zoo counterpart (unused at eval)
SHOWN = 12  # names listed per kind of mismatch in an error


@dataclass(frozen=True)
class Layout:
    """How a source tensor becomes a zoo one: its columns reordered from (C, H, W) to (H, W, C) (``chw``, the
    map's (h, w, c)), then its axes permuted (``perm``)."""

    perm: tuple[int, ...] | None = None
    chw: tuple[int, int, int] | None = None

    def to_zoo(self, a: np.ndarray) -> np.ndarray:
        if self.chw is not None:
            h, w, c = self.chw
            a = a.reshape(a.shape[0], c, h, w).transpose(0, 2, 3, 1).reshape(a.shape[0], -1)
        return a if self.perm is None else a.transpose(self.perm)

    def to_source(self, a: np.ndarray) -> np.ndarray:
        if self.perm is not None:
            a = a.transpose(np.argsort(self.perm))
        if self.chw is not None:
            h, w, c = self.chw
            a = a.reshape(a.shape[0], h, w, c).transpose(0, 3, 1, 2).reshape(a.shape[0], -1)
        return a

    def source_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return shape if self.perm is None else tuple(shape[i] for i in np.argsort(self.perm))


@dataclass(frozen=True)
class Slot:
    """One zoo variable and the source tensor that fills it."""

    path: tuple[Any, ...]  # the variable's path in the model's graph
    key: str  # the tensor's name in the source's files
    shape: tuple[int, ...]  # the zoo's shape
    source_shape: tuple[int, ...]
    layout: Layout


def module_name(path: tuple[Any, ...], modules: Mapping[tuple[Any, ...], Any]) -> str:
    """A module's dotted name with ``nnx.Sequential``'s list unnested: ``layer1.0.conv1`` for
    ``('layer1', 'layers', 0, 'conv1')``."""
    parts = [
        str(p) for i, p in enumerate(path) if not (p == "layers" and isinstance(modules.get(path[:i]), nnx.Sequential))
    ]
    return ".".join(parts)


def _leaf_layout(framework: str, module: Any, leaf: str, chw: tuple[int, int, int] | None) -> Layout:
    if leaf != "kernel":
        return Layout()
    if isinstance(module, nnx.Conv):
        depthwise = module.feature_group_count > 1
        if framework == "torch":
            return Layout((2, 3, 1, 0))
        return Layout((0, 1, 3, 2)) if depthwise else Layout()
    if framework == "torch":  # nnx.Linear
        return Layout((1, 0), chw)
    return Layout()


def _key(framework: str, name: str, leaf: str) -> str:
    if framework == "torch":
        return f"{name}.{_TORCH_LEAF[leaf]}"
    layer, _, part = name.partition("/")
    return f"{layer}/{_KERAS_PART[part] if part else _KERAS_INDEX[leaf]}"


def slots(model: ZooModel, convention: Convention) -> list[Slot]:
    """Every parameter and BatchNorm statistic of ``model`` (concrete or from ``nnx.eval_shape``), in graph order,
    with the name, shape and layout of the tensor that holds it under ``convention``."""
    nodes = list(nnx.iter_graph(model))
    modules = {path: node for path, node in nodes if isinstance(node, nnx.Module)}
    flattened = convention.flattened(model)
    out = []
    for path, node in nodes:
        if not isinstance(node, nnx.Param | nnx.BatchStat):
            continue
        owner = modules[path[:-1]]
        leaf = str(path[-1])
        if not isinstance(owner, nnx.Conv | nnx.Linear | nnx.BatchNorm) or leaf not in _TORCH_LEAF:
            raise WeightsError(f"{type(owner).__name__} variable {'.'.join(map(str, path))}: no mapping for it")
        zoo_name = module_name(path[:-1], modules)
        layout = _leaf_layout(convention.framework, owner, leaf, flattened.get(zoo_name))
        shape = tuple(node.shape)
        key = _key(convention.framework, convention.module_name(zoo_name, model), leaf)
        out.append(Slot(path, key, shape, layout.source_shape(shape), layout))
    return out


def ignored(convention: Convention, key: str) -> bool:
    """A file tensor that fills nothing by design: PyTorch's BatchNorm counters."""
    return convention.framework == "torch" and key.endswith(f".{TORCH_BN_COUNTER}")


def _listing(items: list[str]) -> str:
    more = f", … ({len(items) - SHOWN} more)" if len(items) > SHOWN else ""
    return ", ".join(items[:SHOWN]) + more


def check(slots_: list[Slot], tensors: Mapping[str, np.ndarray], convention: Convention, what: str) -> None:
    """Raise a :class:`WeightsError` naming every missing, unused and misshapen tensor of ``tensors`` for
    ``slots_``; return when each slot has its tensor at its shape and every tensor fills one."""
    wanted = {s.key: s for s in slots_}
    missing = [f"{s.key} {list(s.source_shape)}" for s in slots_ if s.key not in tensors]
    unused = [f"{k} {list(np.shape(v))}" for k, v in tensors.items() if k not in wanted and not ignored(convention, k)]
    misshapen = [
        f"{k}: file {list(np.shape(tensors[k]))}, model {list(s.source_shape)}"
        for k, s in wanted.items()
        if k in tensors and tuple(np.shape(tensors[k])) != s.source_shape
    ]
    if missing or unused or misshapen:
        lines = [f"{what}: the file does not fit ({len(slots_)} tensors expected, {len(tensors)} found)"]
        if missing:
            lines.append(f"  missing from the file ({len(missing)}): {_listing(missing)}")
        if unused:
            lines.append(f"  in the file but unused ({len(unused)}): {_listing(unused)}")
        if misshapen:
            lines.append(f"  wrong shape ({len(misshapen)}): {_listing(misshapen)}")
        raise WeightsError("\n".join(lines))


def fill(model: ZooModel, tensors: Mapping[str, np.ndarray], convention: Convention, what: str) -> None:
    """Load ``tensors`` (a file's, under ``convention``'s names) into ``model`` in place, after :func:`check`
    found that they fit exactly; nothing is written when they do not."""
    plan = slots(model, convention)
    check(plan, tensors, convention, what)
    state = nnx.state(model, (nnx.Param, nnx.BatchStat))
    pure = nnx.to_pure_dict(state)
    for slot in plan:
        *parents, leaf = slot.path
        node = pure
        for part in parents:
            node = node[part]
        node[leaf] = np.asarray(slot.layout.to_zoo(np.asarray(tensors[slot.key])), dtype=np.asarray(node[leaf]).dtype)
    nnx.replace_by_pure_dict(state, pure)
    nnx.update(model, state)


def _value(state: Any, path: tuple[Any, ...]) -> np.ndarray:
    for part in path:
        state = state[part]
    return np.asarray(state)


def extract(model: ZooModel, convention: Convention) -> Tensors:
    """``model``'s variables as a file of ``convention`` would hold them (PyTorch's BatchNorm counters as 0)."""
    out: Tensors = {}
    pure = nnx.to_pure_dict(nnx.state(model, (nnx.Param, nnx.BatchStat)))
    for slot in slots(model, convention):
        out[slot.key] = np.ascontiguousarray(slot.layout.to_source(_value(pure, slot.path)))
        if convention.framework == "torch" and slot.key.endswith(".running_var"):
            out[slot.key.removesuffix("running_var") + TORCH_BN_COUNTER] = np.array(0, np.int64)
    return out


def num_classes(arch: str, tensors: Mapping[str, np.ndarray], canonical: list[Slot]) -> int:
    """The class count the file's classifier was trained for: the length of the tensors that fill the canonical
    model's classifier biases (0 when the file has no classifier, a base saved without its head)."""
    spec = get_spec(arch)
    biases = [
        s.key
        for s in canonical
        if s.path[0] == "classifier" and s.path[-1] == "bias" and s.shape == (spec.num_classes,)
    ]
    found = {int(np.shape(tensors[k])[0]) for k in biases if k in tensors and np.ndim(tensors[k]) == 1}
    if not any(k in tensors for k in (s.key for s in canonical if s.path[0] == "classifier")):
        return 0
    return found.pop() if len(found) == 1 else spec.num_classes
