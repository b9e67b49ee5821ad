"""Trained models a run keeps (``--cnnbench-save-models DIR``), so the winner of a transfer run can be carried out.

Each passed scenario's deployed model — its base and new head — goes to ``DIR/<scenario id>/``: an orbax ``state/``, a
``meta.json`` (the scenario, the arch and its input config, the head, the class count, the imported weights it started
from and the preprocessing its images had, its test accuracy) and a ``SHA256SUMS`` written last. :func:`as_zoo_model`
turns one back into a zoo model with the head as the arch's own classifier, which ``cnnbench weights export`` writes
as a torchvision or timm state dict: a head that pools globally into one dense layer (``gap``, ``svm``) is exactly the
classifier of the archs that pool globally (ResNet, SE-ResNet, DenseNet, MobileNetV2, GoogLeNet, Xception).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from flax import nnx

from cnnbench.engine import hosts, integrity
from cnnbench.engine.train import TransferModel
from cnnbench.fileio import atomic_write
from cnnbench.weights import WeightsError
from cnnbench.zoo import ZooModel, create_model

WEIGHT_KINDS = (nnx.Param, nnx.BatchStat)
GLOBAL_HEADS = ("gap", "svm")  # global average pooling, then one dense layer: an avg-pool arch's own classifier


def save(directory: Path, model: TransferModel, meta: dict[str, Any]) -> Path | None:
    """Write ``model``'s parameters and BatchNorm statistics and ``meta`` to ``directory`` (replacing what is there);
    in a multi-process job process 0 alone writes (None elsewhere)."""
    if not hosts.leader():
        return None
    directory = Path(directory).absolute()
    tmp = directory.with_name(directory.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    state = jax.tree.map(np.asarray, nnx.to_pure_dict(nnx.state(model, WEIGHT_KINDS)))
    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save(tmp / "state", state)
    checkpointer.wait_until_finished()
    atomic_write(tmp / "meta.json", json.dumps(meta, indent=1))
    integrity.write_sums(tmp)
    if directory.exists():
        shutil.rmtree(directory)
    os.replace(tmp, directory)
    return directory


def is_kept(path: Path) -> bool:
    """Whether ``path`` is a folder :func:`save` wrote."""
    return (Path(path) / "meta.json").is_file() and (Path(path) / "state").is_dir()


def load(directory: Path) -> tuple[dict[str, Any], dict]:
    """The meta and state (a pure dict: ``base``, ``head``, ``aux``) of a kept model, checked against its digests."""
    directory = Path(directory).absolute()
    try:
        integrity.check_sums(directory)
        meta = json.loads((directory / "meta.json").read_text())
    except (OSError, ValueError) as exc:
        raise WeightsError(f"{directory}: not a sound kept model ({exc})") from None
    state = ocp.StandardCheckpointer().restore(directory / "state")
    return meta, jax.tree.map(np.asarray, state)


def as_zoo_model(meta: dict[str, Any], state: dict) -> ZooModel:
    """The kept model as zoo arch ``meta["arch"]`` whose classifier is the trained head, for export; an error says
    why when the head or the width has no place in the arch's reference model."""
    arch, head, width = meta["arch"], meta["head"], meta["width"]
    where = f"{meta['scenario']} ({arch}, {head} head)"
    if width != 1.0:
        raise WeightsError(f"{where}: trained at width {width:g}; the reference models have width 1, so only a run at "
                           "canonical scale (imported weights, or the full suite) exports")  # fmt: skip
    dense = _classifier_dense(arch)
    if head not in GLOBAL_HEADS or dense is None:
        raise WeightsError(f"{where}: the {head} head has no place in {arch}'s reference classifier; a gap or svm head "
                           "on a globally pooling arch (resnet, seresnet50, densenet121, mobilenetv2, googlenet, "
                           "xception) exports")  # fmt: skip
    model = create_model(arch, num_classes=meta["num_classes"], in_chans=meta["in_chans"], img_size=meta["img_size"])
    current = nnx.state(model, WEIGHT_KINDS)
    pure = nnx.to_pure_dict(current)
    pure.update(state["base"])
    target = pure["classifier"]
    for part in dense:
        target = target[part]
    target.update(state["head"]["out"])
    if "aux" in pure["classifier"] and state.get("aux"):
        pure["classifier"]["aux"] = state["aux"]
    nnx.replace_by_pure_dict(current, pure)
    nnx.update(model, current)
    return model


def _classifier_dense(arch: str) -> tuple[Any, ...] | None:
    """The path, inside the arch's classifier, of its one dense layer on globally pooled features; None where the
    classifier is something else (VGG's and AlexNet's MLP on a flattened map, LeNet's)."""
    model = nnx.eval_shape(lambda: create_model(arch, num_classes=2))
    if model.global_pool != "avg":
        return None
    dense = [path for path, node in nnx.iter_graph(model.classifier)
             if isinstance(node, nnx.Linear) and "aux" not in path]  # fmt: skip
    return tuple(dense[0]) if len(dense) == 1 else None
