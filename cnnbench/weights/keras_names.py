"""Keras applications' layer names for Xception, the zoo family Keras defines.

Keras files name layers two ways. Keras 2's HDF5 files (what ``keras.applications`` downloads) use the layer names
(``block2_sepconv1``, ``block2_sepconv1_bn``), except the four residual projections, which are unnamed and numbered
by whatever session built them (``conv2d_1`` …, ``batch_normalization_1`` …). Keras 3's ``.weights.h5`` and
``.keras`` files name every layer by its class and rank among that class's layers (``separable_conv2d_3``).
:func:`xception_names` turns both into the layer names below, the residuals as ``block<i>_residual[_bn]``.
"""

from __future__ import annotations

import re

from cnnbench.zoo import ZooModel

from .conventions import SIGNED, Convention, register, rename
from .files import WeightsError

_DOWN = (2, 3, 4, 13)  # the blocks with a strided residual projection


def _layers() -> list[tuple[str, str]]:
    """(name, Keras 3 class name) of every layer with weights, in ``keras.applications.Xception().layers`` order."""
    layers = [("block1_conv1", "conv2d"), ("block1_conv1_bn", "batch_normalization"),
              ("block1_conv2", "conv2d"), ("block1_conv2_bn", "batch_normalization")]  # fmt: skip
    for block in range(2, 15):
        for sep in range(1, 3 if block in (*_DOWN, 14) else 4):
            layers += [(f"block{block}_sepconv{sep}", "separable_conv2d"),
                       (f"block{block}_sepconv{sep}_bn", "batch_normalization")]  # fmt: skip
        if block in _DOWN:
            layers += [(f"block{block}_residual", "conv2d"), (f"block{block}_residual_bn", "batch_normalization")]
    return [*layers, ("predictions", "dense")]


LAYERS = _layers()


def _rank(name: str, stem: str) -> int | None:
    """The number Keras appended to a layer's class name: ``conv2d`` is 0, ``conv2d_3`` is 3; None for others."""
    match = re.fullmatch(rf"{stem}(?:_(\d+))?", name)
    return None if match is None else int(match[1] or 0)


def xception_names(tensors: dict) -> dict:
    """A Keras Xception file's ``<layer>/<var>`` tensors under the layer names of :data:`LAYERS`."""
    layers = {key.split("/")[0] for key in tensors}
    ranked: dict[str, list[str]] = {}
    for stem in ("conv2d", "batch_normalization", "separable_conv2d", "dense"):
        ranked[stem] = sorted((n for n in layers if _rank(n, stem) is not None), key=lambda n: _rank(n, stem) or 0)
    if ranked["separable_conv2d"]:  # Keras 3: every layer by class and rank
        wanted = {stem: [name for name, cls in LAYERS if cls == stem] for stem in ranked}
    else:  # Keras 2: names, but for the unnamed residual projections
        wanted = {"conv2d": [n for n, _ in LAYERS if n.endswith("_residual")],
                  "batch_normalization": [n for n, _ in LAYERS if n.endswith("_residual_bn")]}  # fmt: skip
    renamed: dict[str, str] = {}
    for stem, names in ranked.items():
        targets = wanted.get(stem, [])
        if names and len(names) != len(targets):
            raise WeightsError(
                f"the file has {len(names)} Keras {stem} layers ({', '.join(names[:4])}, …) where Xception has "
                f"{len(targets)}: not a Keras Xception checkpoint"
            )
        renamed.update(zip(names, targets, strict=False))
    out = {}
    for key, value in tensors.items():
        layer, _, var = key.partition("/")
        out[f"{renamed.get(layer, layer)}/{var}"] = value
    return out


_XCEPTION = (
    (r"stem\.conv(\d)\.conv", r"block1_conv\1"),
    (r"stem\.conv(\d)\.bn", r"block1_conv\1_bn"),
    (r"exit\.sep(\d)\.sepconv\.(depthwise|pointwise)", r"block14_sepconv\1/\2"),
    (r"exit\.sep(\d)\.bn", r"block14_sepconv\1_bn"),
    (r"classifier", "predictions"),
)


# entry<i> (block i+1), middle.<j> (block j+5) or exit.block13; then a separable conv, its BN, or the residual's
_BLOCK = re.compile(r"(entry(\d)|middle\.(\d+)|exit\.block13)\.(sep(\d)\.sepconv\.(\w+)|sep(\d)\.bn|residual\.(\w+))")


def xception(name: str, model: ZooModel) -> str:
    """Keras' Xception: ``block<n>_sepconv<k>[_bn]`` (a separable conv's two zoo convs as ``/depthwise`` and
    ``/pointwise`` of one Keras layer), ``block1_conv<k>``, ``predictions``."""
    match = _BLOCK.fullmatch(name)
    if match is None:
        return rename(name, _XCEPTION)
    block = 1 + int(match[2]) if match[2] else 5 + int(match[3]) if match[3] else 13
    if match[5]:
        return f"block{block}_sepconv{match[5]}/{match[6]}"
    if match[7]:
        return f"block{block}_sepconv{match[7]}_bn"
    return f"block{block}_residual" + ("_bn" if match[8] == "bn" else "")


register(Convention("keras", "keras", "xception", xception, SIGNED, normalise=xception_names))
