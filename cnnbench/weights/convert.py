"""One checkpoint file into one zoo model (:func:`import_file`), and a zoo model out to a file (:func:`export_model`).

The file is checked against the model's every tensor before anything is built at full size; a file that does not
fit says which tensors are missing, unused or misshapen and, when the zoo has an arch its tensors fit, which.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from flax import nnx

from cnnbench.zoo import ZooModel, create_model, get_spec, list_models

from .conventions import CONVENTIONS, SOURCES, Convention, Preprocessing, families, get_convention
from .files import Tensors, WeightsError, file_kind, read_tensors, write_safetensors, write_torch
from .mapping import check, extract, fill, ignored, num_classes, slots

EXPORT_FORMATS = ("torchvision", "safetensors")


@dataclass
class Imported:
    """A zoo model holding a file's weights, and what a run needs to know about them."""

    model: ZooModel
    arch: str
    source: str
    num_classes: int  # the file's classifier's (0: the file had none)
    preprocessing: Preprocessing
    caveat: str | None


def reference_source(arch: str) -> str | None:
    """The framework whose reference model the zoo's ``arch`` reproduces (torchvision before timm before Keras), None
    for an arch without one (lenet5)."""
    family = get_spec(arch).family
    return next((source for source in SOURCES if family in families(source)), None)


def default_source(path: Path, arch: str) -> str:
    """The source a file most likely comes from: Keras for ``.h5``/``.keras``; else torchvision where it defines the
    arch's family, timm where only timm does."""
    if file_kind(Path(path)) == "keras":
        return "keras"
    family = get_spec(arch).family
    return "torchvision" if family in families("torchvision") else "timm"


@functools.cache  # read only: the shapes of an arch's slots, asked for again by look_alike
def _abstract(arch: str, classes: int | None = None) -> ZooModel:
    return nnx.eval_shape(lambda: create_model(arch, num_classes=classes))


def _fits(arch: str, tensors: Tensors, convention: Convention) -> float:
    """The share of the file's tensors and the arch's slots that pair up at the right shape (1.0: an exact fit)."""
    named = convention.normalise(tensors)
    plan = slots(_abstract(arch, num_classes(arch, named, slots(_abstract(arch), convention))), convention)
    fitting = sum(1 for s in plan if s.key in named and tuple(named[s.key].shape) == s.source_shape)
    return fitting / max(len(plan), sum(not ignored(convention, k) for k in named))


def look_alike(tensors: Tensors, source: str, exclude: str) -> str | None:
    """A sentence naming the zoo arch the file's tensors fit under ``source``'s names, or fit best (over half of
    them), other than ``exclude``; None when none comes close."""
    scores = []
    for arch in list_models():
        family = get_spec(arch).family
        if arch == exclude or f"{source}/{family}" not in CONVENTIONS:
            continue
        try:
            scores.append((_fits(arch, tensors, get_convention(source, family)), arch))
        except WeightsError:
            continue
    if not scores:
        return None
    score, arch = max(scores)
    if score == 1.0:
        return f"its tensors are exactly those of {arch}: use --arch {arch}"
    return f"its tensors look most like {arch} ({score:.0%} fit)" if score > 0.5 else None


def import_file(path: Path, arch: str, source: str | None = None) -> Imported:
    """The zoo model ``arch`` at its canonical input config holding the checkpoint at ``path`` (a ``source`` file:
    torchvision, timm or keras; default :func:`default_source`), with the file's class count."""
    spec = get_spec(arch)
    source = source or default_source(path, arch)
    convention = get_convention(source, spec.family)
    raw = read_tensors(Path(path))
    tensors = convention.normalise(raw)
    classes = num_classes(arch, tensors, slots(_abstract(arch), convention))
    what = f"{path} as {source} {arch}"
    try:
        check(slots(_abstract(arch, classes), convention), tensors, convention, what)
    except WeightsError as exc:
        hint = look_alike(raw, source, exclude=arch)
        raise WeightsError(f"{exc}\n  {hint}" if hint else str(exc)) from None
    model = create_model(arch, num_classes=classes)
    fill(model, tensors, convention, what)
    return Imported(model, arch, source, classes, convention.preprocessing, convention.caveat)


def export_model(model: ZooModel, arch: str, source: str, path: Path, fmt: str, metadata: dict[str, str]) -> Path:
    """Write ``model`` (arch ``arch``, canonical input config) under ``source``'s names: ``fmt`` ``torchvision``
    writes a PyTorch state dict (``.pth``), ``safetensors`` a safetensors file with ``metadata`` in its header."""
    if fmt not in EXPORT_FORMATS:
        raise WeightsError(f"unknown export format {fmt!r}; known: {', '.join(EXPORT_FORMATS)}")
    if fmt == "torchvision" and get_convention(source, get_spec(arch).family).framework != "torch":
        raise WeightsError(f"{arch}'s reference is {source}'s, not a PyTorch model: export it --to safetensors (the "
                           f"tensors under {source}'s layer names)")  # fmt: skip
    tensors = extract(model, get_convention(source, get_spec(arch).family))
    path = Path(path)
    if fmt == "torchvision":
        write_torch(tensors, path)
    else:
        write_safetensors(tensors, path, metadata)
    return path
