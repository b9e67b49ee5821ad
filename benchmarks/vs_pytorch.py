"""cnnbench's compiled train step against PyTorch eager on the same models, in rounds interleaved in one process.

Needs one virtualenv with cnnbench and torchvision (``torch==2.14.1 torchvision==0.29.1``, the pair whose torchvision
imports; a 5.5 GB CPU-capable build, so not a cnnbench dependency)::

    python3 -m venv /tmp/vs-venv && /tmp/vs-venv/bin/pip install -e . torch==2.14.1 torchvision==0.29.1
    /tmp/vs-venv/bin/python benchmarks/vs_pytorch.py [ARCH ...] [--rounds 5] [--json]

The models and the engine's step are ``engine_cases``'s: the engine's own train step (the program every
scenario runs, as ``scratch``) against torchvision's blocks built to the same widths, in eager mode, channels_last
and contiguous; the two sides' trainable parameter counts are asserted equal. Both train with the ``standard``
suite's recipe: AdamW with the base's and the head's weight decay, the gradient clipped to the suite's global
norm, softmax cross-entropy. Each round times every side in turn for at least ``--min-round-s``; a side's figure
is its median round.

For the benchmark-scale archs it also runs the ``fit`` loop of a ``scratch`` scenario on ``q1`` (chunks of steps
per dispatch, batches gathered on the device, evaluation) and ``q3`` (plus augmentation on the device) of the
``standard`` suite, and divides its images/s by the steady-state step's (one step per dispatch): how much of the
step the loop around it keeps.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import jax
import numpy as np
import torch
import torchvision
from engine_cases import CASES, Case, engine_step, interleaved, standard_recipe
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck

from cnnbench.config.scenario import Scenario
from cnnbench.config.suite import load_suite
from cnnbench.engine.catalog import registry_catalog
from cnnbench.engine.runner import Runner
from cnnbench.engine.timing import measure
from cnnbench.zoo.layers import make_divisible, scale_channels

# ------------------------------------------------------------------------------------------- PyTorch side


class LeNet5(nn.Module):
    """The zoo's LeNet-5 base (tanh, average pooling, C5 as a 5×5 conv) under the gap head."""

    def __init__(self, in_chans: int, width: float, classes: int) -> None:
        super().__init__()
        c1, c3, c5 = (scale_channels(c, width) for c in (6, 16, 120))
        self.features = nn.Sequential(nn.Conv2d(in_chans, c1, 5), nn.Tanh(), nn.AvgPool2d(2), nn.Conv2d(c1, c3, 5),
                                      nn.Tanh(), nn.AvgPool2d(2), nn.Conv2d(c3, c5, 5), nn.Tanh())  # fmt: skip
        self.fc = nn.Linear(c5, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).mean((2, 3)))


class ScaledResNet(torchvision.models.ResNet):
    """torchvision's ResNet with every channel count scaled by ``width`` (the zoo's ``scale_channels``) and
    ``in_chans`` input channels; torchvision's own constructor fixes 64 stem channels."""

    def __init__(self, block: type, layers: list[int], in_chans: int, width: float, classes: int) -> None:
        nn.Module.__init__(self)
        self._norm_layer, self.dilation, self.groups, self.base_width = nn.BatchNorm2d, 1, 1, 64
        self.inplanes = scale_channels(64, width)
        self.conv1 = nn.Conv2d(in_chans, self.inplanes, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        planes = [scale_channels(p, width) for p in (64, 128, 256, 512)]
        self.layer1 = self._make_layer(block, planes[0], layers[0])
        self.layer2 = self._make_layer(block, planes[1], layers[1], stride=2)
        self.layer3 = self._make_layer(block, planes[2], layers[2], stride=2)
        self.layer4 = self._make_layer(block, planes[3], layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(planes[3] * block.expansion, classes)


def _mobilenetv2(in_chans: int, width: float, classes: int) -> nn.Module:
    model = torchvision.models.mobilenet_v2(width_mult=width, num_classes=classes)
    model.features[0][0] = nn.Conv2d(in_chans, make_divisible(32 * width), 3, 2, 1, bias=False)
    model.classifier = nn.Linear(model.last_channel, classes)  # the gap head: no dropout
    return model


def _densenet121(in_chans: int, width: float, classes: int) -> nn.Module:
    stem = scale_channels(64, width)
    model = torchvision.models.DenseNet(scale_channels(32, width), (6, 12, 24, 16), stem, num_classes=classes)
    model.features.conv0 = nn.Conv2d(in_chans, stem, 7, 2, 3, bias=False)
    return model


TORCH_MODELS: dict[str, Callable[[int, float, int], nn.Module]] = {
    "lenet5": LeNet5,
    "resnet18": lambda c, w, n: ScaledResNet(BasicBlock, [2, 2, 2, 2], c, w, n),
    "resnet50": lambda c, w, n: ScaledResNet(Bottleneck, [3, 4, 6, 3], c, w, n),
    "mobilenetv2": _mobilenetv2,
    "densenet121": _densenet121,
}
HEAD_PARAMS = ("fc.", "classifier.")  # the PyTorch models' head, in the head's optimizer group


def torch_step(case: Case, recipe: dict, head_decay: float, x: np.ndarray, y: np.ndarray, channels_last: bool):
    """One PyTorch train step of ``case`` (eager), and its trainable parameter count."""
    torch.manual_seed(0)
    model = TORCH_MODELS[case.arch](case.in_chans, case.width, case.classes)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt).train()
    groups: dict[bool, list] = {True: [], False: []}
    for name, p in model.named_parameters():
        groups[name.startswith(HEAD_PARAMS)].append(p)
    optimizer = torch.optim.AdamW([{"params": groups[False], "weight_decay": recipe["weight_decay"]},
                                   {"params": groups[True], "weight_decay": head_decay}],
                                  lr=recipe["learning_rate"])  # fmt: skip
    xt = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(memory_format=fmt)
    yt = torch.from_numpy(y).long()
    loss_fn = nn.CrossEntropyLoss()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(xt), yt)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), recipe["clip_norm"])
        optimizer.step()

    return step, sum(p.numel() for p in model.parameters() if p.requires_grad)


# ------------------------------------------------------------------------------------------- cnnbench side


def fit_loop(runner: Runner, arch: str, quadrant: str) -> tuple[float, float]:
    """images/s of a ``scratch`` scenario's whole ``fit`` loop on ``quadrant``, and of its steady-state step
    afterwards (median of 5 rounds)."""
    plan = runner.plan(Scenario(arch, "scratch", quadrant, "gap", 0))
    fitted = runner.fit(plan)
    loop = plan.config.steps * plan.config.batch_size / fitted.train_s
    assert fitted.step is not None
    return loop, plan.config.batch_size / measure(fitted.step.replay(), 5, 0.5).median


LOOP_ARCHS = ("lenet5", "resnet18", "mobilenetv2", "densenet121")


def main() -> None:
    logging.basicConfig(format="%(message)s")  # cnnbench's progress (pretraining, targets) on stderr
    logging.getLogger("cnnbench").setLevel(logging.INFO)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("archs", nargs="*", default=list(CASES), help=f"any of {', '.join(CASES)} (default: all)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--min-round-s", type=float, default=1.0)
    parser.add_argument("--no-loop", action="store_true", help="skip the fit-loop measurement")
    parser.add_argument("--json", action="store_true", help="JSON rows instead of a markdown table")
    args = parser.parse_args()
    unknown = [a for a in args.archs if a not in CASES]
    if unknown:
        parser.error(f"unknown arch {', '.join(unknown)}; this table has {', '.join(CASES)}")
    config = standard_recipe()
    recipe = {"learning_rate": config.learning_rate, "weight_decay": config.weight_decay,
              "clip_norm": config.clip_norm}  # fmt: skip
    rows = []
    for arch in args.archs:
        case = CASES[arch]
        x, y = case.batch_data()
        ours = engine_step(case, config, x, y)
        ours_params, head_decay = ours.params, ours.head_decay
        steps = {"cnnbench": ours.step}
        for layout in ("channels_last", "contiguous"):
            step, params = torch_step(case, recipe, head_decay, x, y, layout == "channels_last")
            if params != ours_params:
                raise AssertionError(f"{arch}: PyTorch has {params:,} trainable parameters, cnnbench {ours_params:,}")
            steps[f"torch {layout}"] = step
        times = interleaved(steps, args.rounds, args.min_round_s)
        rate = {name: case.batch / statistics.median(t) for name, t in times.items()}
        best = max(rate["torch channels_last"], rate["torch contiguous"])
        row = {"arch": arch, "case": case.name, "params": ours_params, "batch": case.batch,
               **{f"{name} img/s": r for name, r in rate.items()},
               "vs best torch": rate["cnnbench"] / best}  # fmt: skip
        print(f"{case.name}: " + ", ".join(f"{k} {v:,.1f}" for k, v in rate.items()), file=sys.stderr)
        rows.append(row)
    if not args.no_loop:
        with tempfile.TemporaryDirectory() as cache:
            suite = load_suite("standard", registry_catalog())
            runner = Runner(suite, Path(cache))
            for row in rows:
                if row["arch"] in LOOP_ARCHS:
                    for quadrant in ("q1", "q3"):
                        loop, step = fit_loop(runner, row["arch"], quadrant)
                        row[f"fit {quadrant} / step"] = loop / step
    if args.json:
        print(json.dumps(rows, indent=1))
        return
    print(f"torch {torch.__version__} ({torch.get_num_threads()} threads), jax {jax.__version__}, "
          f"{jax.devices()[0].device_kind}")  # fmt: skip
    print("| model | params | cnnbench img/s | torch channels_last | torch contiguous | cnnbench / best torch "
          "| fit q1 / step | fit q3 / step |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        loops = [f"{r[k]:.2f}" if k in r else "-" for k in ("fit q1 / step", "fit q3 / step")]
        print(f"| {r['case']} | {r['params']:,} | {r['cnnbench img/s']:,.1f} | {r['torch channels_last img/s']:,.1f} "
              f"| {r['torch contiguous img/s']:,.1f} | {r['vs best torch']:.2f} | {' | '.join(loops)} |")  # fmt: skip


if __name__ == "__main__":
    main()
