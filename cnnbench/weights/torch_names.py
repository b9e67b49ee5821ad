"""torchvision's and timm's module names for the zoo families they define.

Each namer takes a zoo module's dotted name (``layer1.0.conv1.bn``, Sequential lists unnested) and returns the
reference model's (``layer1.0.bn1``); the tensors within a module and their layouts are PyTorch's for every family
(:mod:`cnnbench.weights.mapping`). The names were read off ``torchvision.models.<arch>().state_dict()`` and
``timm.create_model(<arch>).state_dict()``; ``tests/test_weights.py`` checks every one against those models.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, cast

from cnnbench.zoo import ZooModel

from .conventions import SIGNED, Convention, register, rename

_RESNET = (
    (r"stem\.conv\.conv", "conv1"),
    (r"stem\.conv\.bn", "bn1"),
    (r"(layer\d\.\d+)\.conv(\d)\.conv", r"\1.conv\2"),
    (r"(layer\d\.\d+)\.conv(\d)\.bn", r"\1.bn\2"),
    (r"(layer\d\.\d+)\.downsample\.conv", r"\1.downsample.0"),
    (r"(layer\d\.\d+)\.downsample\.bn", r"\1.downsample.1"),
    (r"classifier", "fc"),
)  # SE modules (timm's seresnet50) keep their names: layer1.0.se.fc1


def resnet(name: str, model: ZooModel) -> str:
    """torchvision's ResNet (and timm's, which names ResNet and SE-ResNet the same way)."""
    return rename(name, _RESNET)


def _offsets(model: ZooModel, stages: tuple[str, ...], start: int = 0) -> dict[str, int]:
    """The index in the reference's one flat Sequential at which each zoo stage's layers begin."""
    offsets = {}
    for stage in stages:
        offsets[stage] = start
        start += len(cast(Any, getattr(model, stage)).layers)
    return offsets


def vgg(name: str, model: ZooModel) -> str:
    """torchvision's VGG: the five zoo blocks are one ``features`` Sequential (conv, [bn,] relu, …, pool)."""
    match = re.fullmatch(r"(block\d)\.(\d+)", name)
    if match:
        return f"features.{_offsets(model, model.stage_names)[match[1]] + int(match[2])}"
    return name  # classifier.0 / .3 / .6: the same Sequential indices


def _flattened_input(pool: int) -> Any:
    def flattened(model: ZooModel) -> Mapping[str, tuple[int, int, int]]:
        if model.classifier is None:
            return {}
        first = next(i for i, layer in enumerate(cast(Any, model.classifier).layers) if hasattr(layer, "kernel"))
        return {f"classifier.{first}": (pool, pool, model.num_features)}

    return flattened


_ALEXNET = {"conv1.0": "features.0", "conv2.0": "features.3", "conv3.0": "features.6", "conv4.0": "features.8",
            "conv5.0": "features.10"}  # fmt: skip


def alexnet(name: str, model: ZooModel) -> str:
    """torchvision's AlexNet: conv layers at ``features`` 0, 3, 6, 8, 10; the classifier Sequential as the zoo's."""
    return _ALEXNET.get(name, name)


def mobilenetv2(name: str, model: ZooModel) -> str:
    """torchvision's MobileNetV2: stem ``features.0``, the 17 inverted residual blocks ``features.1``–``17`` (each a
    ``conv`` Sequential: [expand conv-BN,] depthwise conv-BN, project conv, project BN), head ``features.18``."""
    stages = tuple(s for s in model.stage_names if s.startswith("stage"))
    offsets = _offsets(model, stages, start=1)
    match = re.fullmatch(r"(stage\d)\.(\d+)\.(expand|depthwise|project)\.(conv|bn)", name)
    if match:
        stage, block, part, layer = match[1], int(match[2]), match[3], match[4]
        expands = cast(Any, getattr(model, stage)).layers[block].expand is not None
        index = ("expand", "depthwise", "project").index(part) - (0 if expands else 1)
        inner = f"{index}.{'0' if layer == 'conv' else '1'}" if part != "project" else str(index + (layer == "bn"))
        return f"features.{offsets[stage] + block}.conv.{inner}"
    last = 1 + sum(len(cast(Any, getattr(model, s)).layers) for s in stages)
    return rename(name, ((r"stem\.conv", "features.0.0"), (r"stem\.bn", "features.0.1"),
                         (r"head\.conv", f"features.{last}.0"), (r"head\.bn", f"features.{last}.1")))  # fmt: skip


_DENSENET = (
    (r"stem\.conv", "features.conv0"),
    (r"stem\.norm", "features.norm0"),
    (r"dense4\.norm", "features.norm5"),
    (r"trans(\d)\.(norm|conv)", r"features.transition\1.\2"),
)
# torchvision's own DenseNet checkpoints predate its module names: "denselayer1.norm.1.weight" for "norm1.weight".
_DENSENET_OLD = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$"
)


def densenet(name: str, model: ZooModel) -> str:
    """torchvision's DenseNet: ``features.denseblock<b>.denselayer<i+1>``, transitions, ``norm5``."""
    match = re.fullmatch(r"dense(\d)\.layers\.(\d+)\.(\w+)", name)
    if match:
        return f"features.denseblock{match[1]}.denselayer{int(match[2]) + 1}.{match[3]}"
    return rename(name, _DENSENET)


def densenet_names(tensors: dict) -> dict:
    """Old torchvision DenseNet names (``norm.1``) as current ones (``norm1``), as torchvision's loader does."""
    return {_DENSENET_OLD.sub(lambda m: m[1] + m[2], k): v for k, v in tensors.items()}


_GOOGLENET = (
    (r"stem\.(conv\d)\.(conv|bn)", r"\1.\2"),
    (r"inception(\d)\.([a-e])\.branch4\.(conv|bn)", r"inception\1\2.branch4.1.\3"),  # branch4 = (pool, conv)
    (r"inception(\d)\.([a-e])\.(.*)", r"inception\1\2.\3"),
    (r"classifier\.fc", "fc"),
    (r"classifier\.aux\.(aux\d)\.(.*)", r"\1.\2"),
)


def googlenet(name: str, model: ZooModel) -> str:
    """torchvision's GoogLeNet (``inception4a``, ``aux1``, ``fc``)."""
    return rename(name, _GOOGLENET)


def googlenet_flattened(model: ZooModel) -> Mapping[str, tuple[int, int, int]]:
    """The auxiliary heads' fc1 reads their 4×4 pooled conv map, flattened."""
    aux = getattr(model.classifier, "aux", None)
    if aux is None:
        return {}
    return {f"classifier.aux.{a}.fc1": (4, 4, getattr(aux, a).conv.conv.out_features) for a in ("aux1", "aux2")}


register(Convention("torchvision", "torch", "resnet", resnet))
register(Convention("torchvision", "torch", "vgg", vgg, flattened=_flattened_input(7)))
register(
    Convention(
        "torchvision",
        "torch",
        "alexnet",
        alexnet,
        flattened=_flattened_input(6),
        caveat="torchvision's AlexNet has no local response normalisation; cnnbench's adds the paper's after conv1 and "
        "conv2, so these weights compute torchvision's logits only with LRN inserted there",
    )
)
register(Convention("torchvision", "torch", "mobilenetv2", mobilenetv2))
register(Convention("torchvision", "torch", "densenet", densenet, normalise=densenet_names))
# torchvision's pretrained GoogLeNet sets transform_input: it maps ImageNet-normalised input back to [-1, 1].
register(Convention("torchvision", "torch", "googlenet", googlenet, SIGNED, flattened=googlenet_flattened))
register(Convention("timm", "torch", "resnet", resnet))
register(Convention("timm", "torch", "senet", resnet))
